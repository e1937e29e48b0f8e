"""What every administrator operation shares: the refusal it raises, the transaction that turns
the database's own refusals into one, and the checks of names, addresses, rates, passwords and
`identifier=level` words."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from daemon.access.principals import level_name
from daemon.db.pool import user_error
from daemon.passwords import hash_password, password_problem
from daemon.queries import audit as audit_q
from daemon.queries import sessions as sessions_q

# the same rules as the CHECK constraints of the schema, checked first for a clearer message
_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_RATE = Decimal("99999999.99")  # numeric(10, 2)
ON_OFF = ("off", "on")


class AdminError(Exception):
    """Bad input from an administrator: a one-line reason; nothing was changed."""


@contextlib.asynccontextmanager
async def change(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """One transaction; a refusal raised by the database (trigger, constraint) becomes an
    AdminError carrying the database's own words. Errors that are bugs stay errors."""
    try:
        async with conn.transaction():
            yield
    except asyncpg.PostgresError as exc:
        message = user_error(exc)
        if message is None:
            raise
        raise AdminError(message) from None


def checked_name(value: str, what: str, max_len: int) -> str:
    name = (value or "").strip()
    if not name:
        raise AdminError(f"{what} must not be empty")
    if len(name) > max_len:
        raise AdminError(f"{what} must have at most {max_len} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise AdminError(f"{what} must not contain control characters")
    return name


def checked_username(value: str) -> str:
    if not _USERNAME.match(value or ""):
        raise AdminError(f'invalid username "{value}": use 1 to 100 letters, digits and . _ @ + -')
    return value


def checked_email(value: str, *, required: bool) -> str:
    email = (value or "").strip()
    if not email and not required:
        return ""
    if not _EMAIL.match(email) or len(email) > 254:
        raise AdminError(f'invalid email address "{value}"')
    return email


def checked_rate(value: str | Decimal | int | float) -> Decimal:
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise AdminError(f'invalid hourly rate "{value}": give a number such as 85 or 72.50') from None
    if not rate.is_finite() or rate < 0 or rate > MAX_RATE:
        raise AdminError(f'invalid hourly rate "{value}": it must be between 0 and {MAX_RATE}')
    return rate.quantize(Decimal("0.01"))


async def password_hash_of(password: str | None) -> str | None:
    if password is None:
        return None
    problem = password_problem(password)
    if problem:
        raise AdminError(problem)
    # argon2 costs tens of milliseconds of CPU: keep it off the loop and outside the transaction
    return await asyncio.to_thread(hash_password, password)


async def set_password(conn: asyncpg.Connection, *, actor: str, kind: str, username: str,
                       password: str, find: Callable[..., Awaitable[asyncpg.Record]],
                       store: Callable[[asyncpg.Connection, int, str], Awaitable[None]]) -> dict[str, Any]:
    """Set a web user's or an employee's password (`kind` names the audit action and target),
    and end every session of theirs: a reset is what an administrator does when someone else
    may know the old one."""
    password_hash = await password_hash_of(password)
    assert password_hash is not None
    async with change(conn):
        row = await find(conn, username, lock=True)
        await store(conn, row["id"], password_hash)
        ended = await sessions_q.delete_all(conn, kind="customer" if kind == "webuser" else "employee",
                                            user_id=row["id"])
        # never the hash itself: only whether one was set
        await audit_q.record(conn, actor=actor, action=f"{kind}.set_password",
                             target=f"{kind}:{row['username']}",
                             before={"has_password": row["has_password"]},
                             after={"has_password": True, "sessions_ended": ended})
    return {"username": row["username"], "password": "changed", "sessions_ended": ended}


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """`identifier=level` words (as typed on the command line) into a mapping."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise AdminError(f'"{pair}" is not of the form IDENTIFIER=LEVEL')
        if key in result:
            raise AdminError(f'"{key}" is given twice')
        result[key] = value
    if not result:
        raise AdminError("give at least one IDENTIFIER=LEVEL")
    return result


def levels_to_columns(levels: Mapping[str, str], known: Mapping[str, tuple[str, ...]],
                      what: str) -> dict[str, Any]:
    """Validate identifier → level names against `known`; off/on become booleans."""
    if not levels:
        raise AdminError(f"give at least one {what}=LEVEL")
    values: dict[str, Any] = {}
    for identifier, level in levels.items():
        allowed = known.get(identifier)
        if allowed is None:
            raise AdminError(f'unknown {what} "{identifier}" (known: {", ".join(known)})')
        if level not in allowed:
            raise AdminError(f'unknown level "{level}" for {identifier} (levels: {", ".join(allowed)})')
        values[identifier] = (level == "on") if allowed == ON_OFF else level
    return values


def levels_of(row: asyncpg.Record, known: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {identifier: level_name(row[identifier]) for identifier in known}
