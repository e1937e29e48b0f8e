"""Customer web users: the people at an account who log in to the portal."""

from __future__ import annotations

import asyncpg

_SELECT = """
    SELECT u.id, u.username, u.full_name, u.email, u.active, u.account_id, u.group_id,
           u.password_hash IS NOT NULL AS has_password, u.created_at,
           a.name AS account, g.name AS "group"
      FROM customer_web_users u
      JOIN accounts a ON a.id = u.account_id
      JOIN customer_groups g ON g.id = u.group_id"""


async def find_by_username(conn: asyncpg.Connection, username: str, *,
                           lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        _SELECT + " WHERE lower(u.username) = lower($1)" + (" FOR UPDATE OF u" if lock else ""),
        username)


async def get(conn: asyncpg.Connection, user_id: int) -> asyncpg.Record:
    return await conn.fetchrow(_SELECT + " WHERE u.id = $1", user_id)


async def list_rows(conn: asyncpg.Connection, *, account_id: int | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        _SELECT + " WHERE ($1::bigint IS NULL OR u.account_id = $1) ORDER BY a.name, lower(u.username)",
        account_id)


async def insert(conn: asyncpg.Connection, *, account_id: int, group_id: int, username: str,
                 full_name: str, email: str, password_hash: str | None) -> int:
    return await conn.fetchval(
        """INSERT INTO customer_web_users (account_id, group_id, username, full_name, email, password_hash)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        account_id, group_id, username, full_name, email, password_hash,
    )


async def set_group(conn: asyncpg.Connection, user_id: int, group_id: int) -> None:
    await conn.execute("UPDATE customer_web_users SET group_id = $2 WHERE id = $1", user_id, group_id)


async def set_active(conn: asyncpg.Connection, user_id: int, active: bool) -> None:
    # deactivating ends the user's sessions (trigger end_sessions_of_deactivated)
    await conn.execute("UPDATE customer_web_users SET active = $2 WHERE id = $1", user_id, active)


async def set_password_hash(conn: asyncpg.Connection, user_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE customer_web_users SET password_hash = $2 WHERE id = $1",
                       user_id, password_hash)


async def username_taken(conn: asyncpg.Connection, username: str) -> bool:
    """Login names are one namespace across customer web users and employees."""
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM customer_web_users WHERE lower(username) = lower($1))
               OR EXISTS (SELECT 1 FROM employees WHERE lower(username) = lower($1))""",
        username)
