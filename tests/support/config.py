"""Configuration files for tests: one TOML writer, the settings most tests run with, and a
copy of a configuration with some keys replaced."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.config import Config, load_config
from daemon.db.embedded import free_port

Sections = Mapping[str, Mapping[str, Any]]


def write_config(path: Path, sections: Sections) -> Path:
    """`sections` as config.toml at `path`, checked here (not in a daemon that would start on
    it). TOML's basic strings read JSON's string escapes, so values are written as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(
        f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
        for name, keys in sections.items()))
    load_config(path, environ={})
    return path


def portal_sections(directory: Path, dsn: str, smtp_port: int, *,
                    http_port: int = 8080) -> dict[str, dict[str, Any]]:
    """The database `dsn` and an SMTP server on `smtp_port`, state under `directory`."""
    return {
        "database": {"dsn": dsn},
        "http": {"host": "127.0.0.1", "port": http_port, "public_url": "http://portal.test"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "from": "portald <portald@portal.test>"},
        "mail": {"poll_interval_s": 1},
        "state": {"dir": str(directory / "state")},
    }


def write_test_config(directory: Path, dsn: str, smtp_port: int) -> Config:
    """A config.toml in `directory` for the database `dsn` and an SMTP server on `smtp_port`."""
    return load_config(write_config(directory / "config.toml",
                                    portal_sections(directory, dsn, smtp_port)))


def write_daemon_config(directory: Path, dsn: str, smtp_port: int, **mail: Any) -> Path:
    """As write_test_config, for a daemon run as a process: its own port, a small pool, short
    SMTP timeouts, little logging; `mail` adds keys of [mail]."""
    sections = portal_sections(directory, dsn, smtp_port, http_port=free_port())
    sections["database"].update(pool_min=1, pool_max=8)
    sections["smtp"]["timeout_s"] = 2
    sections["mail"].update(mail)
    sections["log"] = {"level": "WARNING"}
    return write_config(directory / "config.toml", sections)


def with_settings(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy of `config` with some keys of some sections replaced."""
    return config.model_copy(update={
        name: getattr(config, name).model_copy(update=values) for name, values in sections.items()})


def run_config(path: Path, *, dsn: str, http_port: int, smtp_port: int, state: Path) -> Path:
    """No more than `portald run` needs: the database, where to listen, the SMTP port, state."""
    return write_config(path, {"database": {"dsn": dsn},
                               "http": {"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
                               "smtp": {"port": smtp_port}, "state": {"dir": str(state)}})
