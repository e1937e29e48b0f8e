"""The database: where it is (configured DSN or the embedded server), the pool, and errors.

Every query module takes an `asyncpg` connection or pool; nothing else opens connections,
except the privilege listener, which needs a dedicated one (see `listener.py`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from daemon.config import Config
from daemon.db.embedded import EmbeddedError, EmbeddedPostgres

log = logging.getLogger("portald.db")

CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 60


# Errors that mean "the database is away or the connection to it died" (a restart, a cut
# connection, a network fault), as opposed to a bug. asyncpg raises InternalClientError
# ("cannot switch to state …") when a connection is terminated in the middle of an operation.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
)


def is_outage(exc: BaseException) -> bool:
    """True for errors of a database or network that is away: worth a 503 or a retry with
    backoff, not a traceback."""
    return isinstance(exc, OUTAGE_ERRORS)


class DatabaseUnavailable(Exception):
    """The database cannot be reached or started; the message says why, without secrets."""


@dataclass
class DatabaseLocation:
    dsn: str
    embedded: EmbeddedPostgres | None = None

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def locate_database(cfg: Config) -> DatabaseLocation:
    """The configured DSN, or the embedded server under the state dir (started if needed)."""
    if cfg.database.dsn:
        return DatabaseLocation(cfg.database.dsn)
    embedded = EmbeddedPostgres(cfg.state_dir)
    try:
        return DatabaseLocation(embedded.start(), embedded)
    except EmbeddedError as exc:
        raise DatabaseUnavailable(f"embedded PostgreSQL: {exc}") from None


def describe_connect_error(exc: BaseException) -> str:
    # Never echo the DSN: it may carry a password.
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return "authentication failed (check the user and password of [database] dsn)"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "the database named in [database] dsn does not exist"
    if isinstance(exc, OSError | TimeoutError):
        return f"cannot connect ({exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc})"
    return f"{exc.__class__.__name__}: {exc}"


async def connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(describe_connect_error(exc)) from None


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg has already rolled back a transaction left open;
    its default would then send `RESET ALL`, `UNLISTEN *`, `CLOSE ALL` and
    `pg_advisory_unlock_all()`, a round trip on every release, to undo session state that no
    pooled connection of ours ever has: every setting is transaction-local (set_config(…,
    true), daemon/access/acting.py), every advisory lock a transaction's, and LISTEN lives on
    dedicated connections. Keep it that way, or reset here what you add."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    try:
        return await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, timeout=CONNECT_TIMEOUT_S,
            command_timeout=COMMAND_TIMEOUT_S,
            # our statements are few and hot; the default cache size fits them
            max_inactive_connection_lifetime=300,
            reset=keep_session,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(describe_connect_error(exc)) from None


@contextlib.asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


def user_error(exc: asyncpg.PostgresError) -> str | None:
    """The message of an error a user can cause (a refusal raised by our triggers or
    constraints), or None for errors that are bugs or outages."""
    if isinstance(exc, asyncpg.RaiseError | asyncpg.UniqueViolationError):
        return exc.args[0] if exc.args else str(exc)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return "it is still referenced by other data" if "still referenced" in str(exc) else str(exc)
    if isinstance(exc, asyncpg.CheckViolationError):
        return f"invalid value ({exc.constraint_name or 'check failed'})"
    return None
