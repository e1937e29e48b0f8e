"""config.toml → frozen dataclasses, with environment and systemd-credential overrides.

Precedence, lowest to highest: built-in defaults, the TOML file, `$CREDENTIALS_DIRECTORY/<section>_<key>`
files (systemd `LoadCredential=`), then `PORTALD_<SECTION>_<KEY>` environment variables.
Every problem names the key it concerns, and all problems are reported at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_CONFIG_PATH = Path("config.toml")


class ConfigError(Exception):
    """Raised with every problem found; each names its key as `section.key`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    dsn: str = ""  # empty: the embedded PostgreSQL under [state] dir
    pool_min: int = 2
    pool_max: int = 10


@dataclass(frozen=True, kw_only=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    upload_max_mb: int = 20
    session_idle_minutes: int = 120
    session_absolute_hours: int = 24
    login_attempts_per_15min: int = 10


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    tls: bool = False
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    from_: str = "portald <portald@localhost>"
    timeout_s: int = 30


@dataclass(frozen=True, kw_only=True)
class MailConfig:
    catcher: bool = False  # run a local SMTP catcher on [smtp] host:port (demo mode)
    batch_size: int = 50
    retry_max_hours: int = 72
    rate_per_minute: int = 0  # 0: no limit
    poll_interval_s: int = 5


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    reminder_hours: int = 0  # 0: off; remind assignees of open tickets untouched this long
    digest_time: str = ""  # "HH:MM" local time for the daily digest; empty: off
    cleanup_days: int = 30  # sent outbox rows older than this are removed


@dataclass(frozen=True, kw_only=True)
class StateConfig:
    dir: str = "var"


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    level: str = "INFO"


@dataclass(frozen=True, kw_only=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    state: StateConfig = field(default_factory=StateConfig)
    log: LogConfig = field(default_factory=LogConfig)
    path: Path | None = None

    @property
    def state_dir(self) -> Path:
        return Path(self.state.dir).resolve()

    @property
    def secure_cookies(self) -> bool:
        return self.http.public_url.startswith("https://")


SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "http": HttpConfig,
    "smtp": SmtpConfig,
    "mail": MailConfig,
    "scheduler": SchedulerConfig,
    "state": StateConfig,
    "log": LogConfig,
}


def _key_name(f: dataclasses.Field[Any]) -> str:
    # `from` is a Python keyword, so the field carries a trailing underscore.
    return f.name.rstrip("_")


def _coerce(raw: Any, typ: type, where: str, problems: list[str]) -> Any:
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        problems.append(f"{where}: must be true or false (got {raw!r})")
        return None
    if typ is int:
        if isinstance(raw, bool):
            problems.append(f"{where}: must be a whole number (got {raw!r})")
            return None
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        problems.append(f"{where}: must be a whole number (got {raw!r})")
        return None
    if isinstance(raw, str):
        return raw
    problems.append(f"{where}: must be a string (got {raw!r})")
    return None


def _field_types(cls: type) -> dict[str, type]:
    hints = {"bool": bool, "int": int, "str": str}
    return {f.name: hints[str(f.type)] for f in dataclasses.fields(cls)}


def _read_credential(section: str, key: str) -> str | None:
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if not cred_dir:
        return None
    path = Path(cred_dir) / f"{section}_{key}"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _validate(cfg: Config, problems: list[str]) -> None:
    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    h, s, m, sch, d = cfg.http, cfg.smtp, cfg.mail, cfg.scheduler, cfg.database
    check(1 <= h.port <= 65535, f"http.port: must be between 1 and 65535 (got {h.port})")
    check(bool(h.host), "http.host: must not be empty")
    parts = urlsplit(h.public_url)
    check(
        parts.scheme in ("http", "https") and bool(parts.netloc),
        f"http.public_url: must be an absolute http(s) URL (got {h.public_url!r})",
    )
    check(1 <= h.upload_max_mb <= 1024, f"http.upload_max_mb: must be 1..1024 (got {h.upload_max_mb})")
    check(h.session_idle_minutes >= 1, "http.session_idle_minutes: must be at least 1")
    check(h.session_absolute_hours >= 1, "http.session_absolute_hours: must be at least 1")
    check(h.login_attempts_per_15min >= 1, "http.login_attempts_per_15min: must be at least 1")
    check(1 <= s.port <= 65535, f"smtp.port: must be between 1 and 65535 (got {s.port})")
    check(bool(s.host), "smtp.host: must not be empty")
    check(not (s.tls and s.starttls), "smtp.tls: cannot be combined with smtp.starttls (choose one)")
    check("@" in s.from_ and "\n" not in s.from_ and "\r" not in s.from_,
          f"smtp.from: must be a mail address such as 'portald <portald@example.com>' (got {s.from_!r})")
    check(bool(s.username) or not s.password, "smtp.password: set without smtp.username")
    check(s.timeout_s >= 1, "smtp.timeout_s: must be at least 1")
    check(1 <= m.batch_size <= 1000, f"mail.batch_size: must be 1..1000 (got {m.batch_size})")
    check(m.retry_max_hours >= 1, "mail.retry_max_hours: must be at least 1")
    check(m.rate_per_minute >= 0, "mail.rate_per_minute: must be 0 (no limit) or more")
    check(m.poll_interval_s >= 1, "mail.poll_interval_s: must be at least 1")
    check(sch.reminder_hours >= 0, "scheduler.reminder_hours: must be 0 (off) or more")
    check(sch.cleanup_days >= 1, "scheduler.cleanup_days: must be at least 1")
    if sch.digest_time:
        try:
            time.fromisoformat(sch.digest_time)
        except ValueError:
            problems.append(f"scheduler.digest_time: must be HH:MM or empty (got {sch.digest_time!r})")
    check(1 <= d.pool_min <= d.pool_max, "database.pool_min: must be at least 1 and not above database.pool_max")
    if d.dsn:
        check(d.dsn.startswith(("postgresql://", "postgres://")),
              "database.dsn: must be a postgresql:// URL or empty for the embedded server")
    check(bool(cfg.state.dir), "state.dir: must not be empty")
    check(cfg.log.level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
          f"log.level: must be DEBUG, INFO, WARNING or ERROR (got {cfg.log.level!r})")


def load_config(path: Path | str | None = None, *, environ: dict[str, str] | None = None,
                require_file: bool = False) -> Config:
    """Read, override and validate the configuration; raise ConfigError naming every bad key."""
    env = os.environ if environ is None else environ
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    problems: list[str] = []
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    elif require_file:
        raise ConfigError([f"{path}: no such configuration file"])

    for name in data:
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section (known: {', '.join(SECTIONS)})")

    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name}: must be a table")
            table = {}
        types = _field_types(cls)
        known = {_key_name(f): f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in table.items():
            if key not in known:
                problems.append(f"{name}.{key}: unknown key")
                continue
            value = _coerce(raw, types[known[key]], f"{name}.{key}", problems)
            if value is not None:
                values[known[key]] = value
        for key, attr in known.items():
            cred = _read_credential(name, key)
            if cred is not None:
                value = _coerce(cred, types[attr], f"{name}.{key} (credential {name}_{key})", problems)
                if value is not None:
                    values[attr] = value
            env_name = f"PORTALD_{name.upper()}_{key.upper()}"
            if env_name in env:
                value = _coerce(env[env_name], types[attr], f"{name}.{key} (from {env_name})", problems)
                if value is not None:
                    values[attr] = value
        sections[name] = cls(**values)

    cfg = Config(**sections, path=path.resolve() if path.exists() else None)
    _validate(cfg, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


@dataclass
class Settings:
    """The live configuration: SIGHUP swaps `current`; readers take it at each use."""

    current: Config
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)
