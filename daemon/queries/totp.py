"""Two-factor login: TOTP secrets, recovery codes and pending logins (the statements are in
sql/totp.sql). A user is given as (kind, id); the statements take it as a pair of columns."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from daemon.access.scope import Kind
from daemon.queries.named import queries

Conn = asyncpg.Connection | asyncpg.Pool

SQL = queries("totp.sql")


def _who(kind: Kind, user_id: int) -> tuple[int | None, int | None]:
    return (user_id, None) if kind == "customer" else (None, user_id)


def kind_of(row: asyncpg.Record) -> tuple[Kind, int]:
    """The user a row with webuser_id / employee_id columns belongs to."""
    if row["webuser_id"] is not None:
        return "customer", row["webuser_id"]
    return "employee", row["employee_id"]


async def credential(conn: Conn, kind: Kind, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SQL["credential"], *_who(kind, user_id))


async def replace_credential(conn: asyncpg.Connection, kind: Kind, user_id: int, secret: str, *,
                             confirmed: bool) -> int:
    """A new secret in place of any earlier one (the caller's transaction)."""
    await conn.execute(SQL["delete_credential"], *_who(kind, user_id))
    return await conn.fetchval(SQL["insert_credential"], *_who(kind, user_id), secret, confirmed)


async def delete_credential(conn: Conn, kind: Kind, user_id: int) -> bool:
    status = await conn.execute(SQL["delete_credential"], *_who(kind, user_id))
    return status != "DELETE 0"


async def confirm_credential(conn: Conn, credential_id: int, step: int) -> bool:
    return await conn.fetchval(SQL["confirm_credential"], credential_id, step) is not None


async def use_step(conn: Conn, credential_id: int, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) already was."""
    return await conn.fetchval(SQL["use_step"], credential_id, step) is not None


async def replace_recovery_codes(conn: asyncpg.Connection, kind: Kind, user_id: int,
                                 hashes: Sequence[bytes]) -> None:
    await conn.execute(SQL["delete_recovery_codes"], *_who(kind, user_id))
    await conn.execute(SQL["insert_recovery_codes"], *_who(kind, user_id), list(hashes))


async def delete_recovery_codes(conn: Conn, kind: Kind, user_id: int) -> None:
    await conn.execute(SQL["delete_recovery_codes"], *_who(kind, user_id))


async def use_recovery_code(conn: Conn, kind: Kind, user_id: int, code_hash: bytes) -> bool:
    return await conn.fetchval(SQL["use_recovery_code"], *_who(kind, user_id), code_hash) is not None


async def recovery_codes_left(conn: Conn, kind: Kind, user_id: int) -> int:
    return await conn.fetchval(SQL["recovery_codes_left"], *_who(kind, user_id))


async def create_pending(conn: Conn, token_hash: bytes, kind: Kind, user_id: int, *,
                         ttl_s: int, ip: str) -> None:
    await conn.execute(SQL["create_pending"], token_hash, *_who(kind, user_id), ttl_s, ip)


async def pending(conn: Conn, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(SQL["pending"], token_hash)


async def lock_pending(conn: asyncpg.Connection, token_hash: bytes) -> bool:
    """Hold the pending login of `token_hash` until the caller's transaction ends; False when
    it is gone or expired."""
    return await conn.fetchval(SQL["lock_pending"], token_hash) is not None


async def take_pending(conn: Conn, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(SQL["take_pending"], token_hash)


async def purge_pending(conn: Conn) -> None:
    await conn.execute(SQL["purge_pending"])


async def enabled_ids(conn: Conn, kind: Kind) -> set[int]:
    """The users of a kind with two-factor login on (the admin pages show it)."""
    name = "enabled_webusers" if kind == "customer" else "enabled_employees"
    return {r[0] for r in await conn.fetch(SQL[name])}
