"""config.toml → one frozen settings object per section, with environment and systemd-credential
overrides, read through pydantic-settings.

Precedence, lowest to highest: built-in defaults, the TOML file, `$CREDENTIALS_DIRECTORY/
<section>_<key>` files (systemd `LoadCredential=`, pydantic-settings' secrets directory), then
`PORTALD_<SECTION>_<KEY>` environment variables. Every problem names the key it concerns (and
where a value came from when not from the file), and all problems are reported at once: a
value that fails its type is left at its default so that the checks across keys still run.
"""

from __future__ import annotations

import asyncio
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from daemon.config_values import Bool, Int, Networks, Str, Workers
from daemon.mail.reply_token import MAX_LOCAL_CHARS

DEFAULT_CONFIG_PATH = Path("config.toml")
ENV_PREFIX = "PORTALD_"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"  # set by systemd for LoadCredential=
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*\Z")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\Z")


class ConfigError(Exception):
    """Raised with every problem found; each names its key as `section.key`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class Section(BaseSettings):
    """One [section] of config.toml; `name` is also the middle of its variables' and its
    credential files' names."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, case_sensitive=False,
                                      env_prefix_target="all")
    name: ClassVar[str]


class DatabaseConfig(Section):
    model_config = SettingsConfigDict(env_prefix="PORTALD_DATABASE_")
    name: ClassVar[str] = "database"
    dsn: Str = ""  # empty: the embedded PostgreSQL under [state] dir
    pool_min: Int = 2
    pool_max: Int = 10


class HttpConfig(Section):
    model_config = SettingsConfigDict(env_prefix="PORTALD_HTTP_")
    name: ClassVar[str] = "http"
    host: Str = "127.0.0.1"
    port: Int = 8080
    public_url: Str = "http://127.0.0.1:8080"
    upload_max_mb: Int = 20
    session_idle_minutes: Int = 120
    session_absolute_hours: Int = 24
    login_attempts_per_15min: Int = 10
    # balancers whose X-Forwarded-For is believed (the rightmost hop not among them is the
    # client); from anyone else the header is ignored
    trusted_proxies: Networks = ()
    header_timeout_s: Int = 30  # a request's headers must arrive within this
    body_timeout_s: Int = 120  # and its body within this after them
    metrics_allow: Networks = ("127.0.0.0/8", "::1/128")  # who may read /metrics …
    metrics_token: Str = Field(default="", repr=False)  # … or anyone with this bearer token
    workers: Workers = 1  # serving processes on one port (SO_REUSEPORT); 1: no supervisor


class SmtpConfig(Section):
    model_config = SettingsConfigDict(env_prefix="PORTALD_SMTP_")
    name: ClassVar[str] = "smtp"
    host: Str = "127.0.0.1"
    port: Int = 8025
    tls: Bool = False
    starttls: Bool = False
    username: Str = ""
    password: Str = Field(default="", repr=False)
    # `from` is a Python keyword: the field carries a trailing underscore, the key does not
    from_: Str = Field(default="portald <portald@localhost>", alias="from")
    timeout_s: Int = 30
    # SMTP sessions the outbox worker keeps side by side, each carrying many mails: against a
    # relay some milliseconds away, mails per second grow with this (read at start-up)
    connections: Int = 4


class MailConfig(Section):
    model_config = SettingsConfigDict(env_prefix="PORTALD_MAIL_")
    name: ClassVar[str] = "mail"
    catcher: Bool = False  # run a local SMTP catcher on [smtp] host:port (demo mode)
    batch_size: Int = 50
    retry_max_hours: Int = 72
    rate_per_minute: Int = 0  # 0: no limit
    poll_interval_s: Int = 5


class SchedulerConfig(Section):
    model_config = SettingsConfigDict(env_prefix="PORTALD_SCHEDULER_")
    name: ClassVar[str] = "scheduler"
    reminder_hours: Int = 0  # 0: off; remind assignees of open tickets untouched this long
    digest_time: Str = ""  # "HH:MM" local time for the daily digest; empty: off
    cleanup_days: Int = 30  # sent outbox rows older than this are removed


class StateConfig(Section):
    model_config = SettingsConfigDict(env_prefix="PORTALD_STATE_")
    name: ClassVar[str] = "state"
    dir: Str = "var"


class InboundConfig(Section):
    """Reply by mail (SPEC §4): an SMTP listener the MTA relays `reply_address`'s domain to."""

    model_config = SettingsConfigDict(env_prefix="PORTALD_INBOUND_")
    name: ClassVar[str] = "inbound"
    enabled: Bool = False
    host: Str = "127.0.0.1"
    port: Int = 2525
    reply_address: Str = "portald-reply@localhost"  # local part + token @ domain


class LogConfig(Section):
    model_config = SettingsConfigDict(env_prefix="PORTALD_LOG_")
    name: ClassVar[str] = "log"
    level: Str = "INFO"


SECTIONS: tuple[type[Section], ...] = (DatabaseConfig, HttpConfig, SmtpConfig, MailConfig,
                                       SchedulerConfig, StateConfig, InboundConfig, LogConfig)


class Config(BaseModel):
    model_config = ConfigDict(frozen=True)

    database: DatabaseConfig
    http: HttpConfig
    smtp: SmtpConfig
    mail: MailConfig
    scheduler: SchedulerConfig
    state: StateConfig
    inbound: InboundConfig
    log: LogConfig
    path: Path | None = None

    @property
    def state_dir(self) -> Path:
        return Path(self.state.dir).resolve()

    @property
    def secure_cookies(self) -> bool:
        return self.http.public_url.startswith("https://")


@dataclass
class Settings:
    """The live configuration: SIGHUP swaps `current`; readers take it at each use."""

    current: Config
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)


# -- reading ---------------------------------------------------------------------------------


class _Environment(EnvSettingsSource):
    """PORTALD_<SECTION>_<KEY> from the given variables (the process's, or a test's own)."""

    def __init__(self, section: type[Section], environ: Mapping[str, str]) -> None:
        super().__init__(section)
        self.env_vars = {k.lower(): v for k, v in environ.items()}


def _layers(section: type[Section], table: Mapping[str, Any], environ: Mapping[str, str],
            credentials: Path | None) -> list[tuple[str, Mapping[str, Any]]]:
    """The section's values from each source, lowest precedence first, each with the words
    that say where a value came from (for the file: nothing)."""
    layers: list[tuple[str, Mapping[str, Any]]] = [("", table)]
    if credentials is not None:
        found = SecretsSettingsSource(section, secrets_dir=credentials,
                                      env_prefix=f"{section.name}_")()
        layers.append(("credential", found))
    layers.append(("env", _Environment(section, environ)()))
    return layers


def _origin(section: type[Section], key: str, layer: str) -> str:
    if layer == "credential":
        return f" (credential {section.name}_{key})"
    if layer == "env":
        return f" (from {ENV_PREFIX}{section.name.upper()}_{key.upper()})"
    return ""


def _read_section(section: type[Section], table: Mapping[str, Any], environ: Mapping[str, str],
                  credentials: Path | None, problems: list[str]) -> Section:
    """Each source's values are checked on their own, so that a bad value is named with its
    source even where a higher one overrides it; a bad value counts as not given (the one
    below it, or the default, stands), so the checks across keys still run."""
    values: dict[str, Any] = {}
    for layer, found in _layers(section, table, environ, credentials):
        bad: set[str] = set()
        try:
            section.model_validate(found)
        except ValidationError as exc:
            order = list(found)  # name the keys in the order the source gives them
            for error in sorted(exc.errors(), key=lambda e: order.index(str(e["loc"][0]))):
                key = str(error["loc"][0])
                bad.add(key)
                message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append(f"{section.name}.{key}{_origin(section, key, layer)}: {message}")
        values.update({k: v for k, v in found.items() if k not in bad})
    return section.model_validate(values)


def _read_file(path: Path, require_file: bool) -> dict[str, Any]:
    if path.exists():
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    if require_file:
        raise ConfigError([f"{path}: no such configuration file"])
    return {}


def _credentials_directory(environ: Mapping[str, str]) -> Path | None:
    where = environ.get(CREDENTIALS_ENV)
    return Path(where) if where and Path(where).is_dir() else None


def load_config(path: Path | str | None = None, *, environ: Mapping[str, str] | None = None,
                require_file: bool = False) -> Config:
    """Read, override and validate the configuration; raise ConfigError naming every bad key."""
    env = os.environ if environ is None else environ
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    data = _read_file(path, require_file)
    known = [s.name for s in SECTIONS]
    problems = [f"{name}: unknown section (known: {', '.join(known)})"
                for name in data if name not in known]
    # systemd sets CREDENTIALS_DIRECTORY for the process itself, never in a test's variables
    credentials = _credentials_directory(os.environ)
    sections: dict[str, Section] = {}
    for section in SECTIONS:
        table = data.get(section.name, {})
        if not isinstance(table, dict):
            problems.append(f"{section.name}: must be a table")
            table = {}
        sections[section.name] = _read_section(section, table, env, credentials, problems)
    cfg = Config(**sections, path=path.resolve() if path.exists() else None)
    problems += _problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


# -- checks ------------------------------------------------------------------------------------


def _inbound_problems(i: InboundConfig) -> list[str]:
    problems = []
    if not 1 <= i.port <= 65535:
        problems.append(f"inbound.port: must be between 1 and 65535 (got {i.port})")
    if not i.host:
        problems.append("inbound.host: must not be empty")
    local, at, domain = i.reply_address.rpartition("@")
    if not at or not _LOCAL_PART.match(local) or not _DOMAIN.match(domain):
        problems.append("inbound.reply_address: must be an address such as "
                        f"'portald-reply@reply.example.com', without '+' (got {i.reply_address!r})")
    elif len(local) > MAX_LOCAL_CHARS:
        # the token follows the local part, and a local part may have at most 64 characters
        problems.append(f"inbound.reply_address: the part before '@' may have at most "
                        f"{MAX_LOCAL_CHARS} characters, so that '+' and the token fit in 64 "
                        f"(got {len(local)})")
    return problems



def _problems(cfg: Config) -> list[str]:
    """What is wrong with values of the right type: ranges, forms, and keys that go together."""
    problems: list[str] = []

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
    check(1 <= h.header_timeout_s <= 3600, "http.header_timeout_s: must be 1..3600")
    check(1 <= h.body_timeout_s <= 86400, "http.body_timeout_s: must be 1..86400")
    check(1 <= s.port <= 65535, f"smtp.port: must be between 1 and 65535 (got {s.port})")
    check(bool(s.host), "smtp.host: must not be empty")
    check(not (s.tls and s.starttls), "smtp.tls: cannot be combined with smtp.starttls (choose one)")
    check("@" in s.from_ and "\n" not in s.from_ and "\r" not in s.from_,
          f"smtp.from: must be a mail address such as 'portald <portald@example.com>' (got {s.from_!r})")
    check(bool(s.username) or not s.password, "smtp.password: set without smtp.username")
    check(s.timeout_s >= 1, "smtp.timeout_s: must be at least 1")
    check(1 <= s.connections <= 64, f"smtp.connections: must be 1..64 (got {s.connections})")
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
    problems += _inbound_problems(cfg.inbound)
    check(cfg.log.level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
          f"log.level: must be DEBUG, INFO, WARNING or ERROR (got {cfg.log.level!r})")
    return problems
