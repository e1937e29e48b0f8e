"""Sessions, login candidates, failed-login throttling and password changes.

The session table stores only the SHA-256 of the cookie's token, so a leaked table or backup
cannot be replayed as cookies. Timeouts are checked in SQL against the database clock, which
every instance shares.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from daemon.access.scope import Kind

Conn = asyncpg.Connection | asyncpg.Pool

THROTTLE_WINDOW_S = 15 * 60
# Failed-login rows older than this are of no further use to throttling.
FAILURES_KEPT_S = 24 * 3600


async def resolve(conn: Conn, token_hash: bytes, *, idle_s: int, absolute_s: int,
                  touch_after_s: int) -> asyncpg.Record:
    """One round trip: the current privilege version, and the session if it is still alive
    (session columns are NULL otherwise). `stale` says last_seen_at deserves a touch."""
    return await conn.fetchrow(
        """SELECT p.version, s.webuser_id, s.employee_id, s.csrf_token, s.created_at,
                  s.last_seen_at < now() - make_interval(secs => $4) AS stale
             FROM privilege_state p
             LEFT JOIN sessions s ON s.token_hash = $1
                  AND s.expires_at > now()
                  AND s.created_at > now() - make_interval(secs => $3)
                  AND s.last_seen_at > now() - make_interval(secs => $2)""",
        token_hash, idle_s, absolute_s, touch_after_s)


async def resolve_acting(conn: asyncpg.Connection, token_hash: bytes, *, idle_s: int,
                         absolute_s: int, touch_after_s: int, role: str) -> asyncpg.Record:
    """`resolve` in an open transaction, and in the same round trip, when the session is
    alive: its last_seen_at touched when stale, then the rest of the transaction switched to
    `role` with the session's user named as principal (what `principals.act_as` does). The
    statement's own rights are checked as it starts, as the tables' owner."""
    return await conn.fetchrow(
        """WITH s AS (
               SELECT s.token_hash, s.webuser_id, s.employee_id, s.csrf_token,
                      s.last_seen_at < now() - make_interval(secs => $4) AS stale
                 FROM sessions s
                WHERE s.token_hash = $1 AND s.expires_at > now()
                  AND s.created_at > now() - make_interval(secs => $3)
                  AND s.last_seen_at > now() - make_interval(secs => $2)),
           touched AS (
               UPDATE sessions t SET last_seen_at = now() FROM s
                WHERE t.token_hash = s.token_hash AND s.stale RETURNING 1)
           SELECT p.version, s.webuser_id, s.employee_id, s.csrf_token, s.stale,
                  CASE WHEN s.csrf_token IS NOT NULL THEN set_config('role', $5, true) END AS role,
                  CASE WHEN s.csrf_token IS NOT NULL THEN portald_act_as(
                       CASE WHEN s.webuser_id IS NOT NULL THEN 'customer:' || s.webuser_id
                            ELSE 'employee:' || s.employee_id END) END AS principal
             FROM privilege_state p LEFT JOIN s ON true""",
        token_hash, idle_s, absolute_s, touch_after_s, role)


async def touch(conn: Conn, token_hash: bytes) -> None:
    await conn.execute("UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1", token_hash)


async def create(conn: Conn, *, token_hash: bytes, kind: Kind, user_id: int, csrf_token: str,
                 absolute_s: int, ip: str, user_agent: str) -> datetime:
    return await conn.fetchval(
        """INSERT INTO sessions (token_hash, webuser_id, employee_id, csrf_token, expires_at,
                                 ip, user_agent)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7)
           RETURNING expires_at""",
        token_hash, user_id if kind == "customer" else None,
        user_id if kind == "employee" else None, csrf_token, absolute_s, ip, user_agent[:500])


async def delete(conn: Conn, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hash = $1", token_hash)


async def delete_others(conn: Conn, *, kind: Kind, user_id: int, keep: bytes) -> int:
    """End every other session of a user (after a password change)."""
    column = "webuser_id" if kind == "customer" else "employee_id"
    status = await conn.execute(
        f"DELETE FROM sessions WHERE {column} = $1 AND token_hash <> $2", user_id, keep)
    return int(status.split()[-1])


async def delete_all(conn: Conn, *, kind: Kind, user_id: int) -> int:
    """End every session of a user (an administrator set a new password for them)."""
    column = "webuser_id" if kind == "customer" else "employee_id"
    status = await conn.execute(f"DELETE FROM sessions WHERE {column} = $1", user_id)
    return int(status.split()[-1])


async def purge_expired(conn: Conn) -> None:
    """Housekeeping done at login: dead sessions and old failed attempts."""
    await conn.execute("DELETE FROM sessions WHERE expires_at < now()")
    await conn.execute("DELETE FROM login_failures WHERE at < now() - make_interval(secs => $1)",
                       FAILURES_KEPT_S)


async def login_candidate(conn: Conn, username: str) -> asyncpg.Record | None:
    """Who a login name belongs to, with what is needed to let them in. `can_login` folds in
    deactivation and, for employees, a web-access license seat."""
    return await conn.fetchrow(
        """SELECT 'customer' AS kind, id, username, password_hash, active AS can_login
             FROM customer_web_users WHERE lower(username) = lower($1)
           UNION ALL
           SELECT 'employee', id, username, password_hash, active AND web_access
             FROM employees WHERE lower(username) = lower($1)
           LIMIT 1""",
        username)


async def password_hash(conn: Conn, kind: Kind, user_id: int) -> str | None:
    table = "customer_web_users" if kind == "customer" else "employees"
    return await conn.fetchval(f"SELECT password_hash FROM {table} WHERE id = $1", user_id)


async def set_password_hash(conn: Conn, kind: Kind, user_id: int, new_hash: str) -> None:
    table = "customer_web_users" if kind == "customer" else "employees"
    await conn.execute(f"UPDATE {table} SET password_hash = $2 WHERE id = $1", user_id, new_hash)


async def claim_attempt(conn: Conn, username: str, ip: str, limit: int) -> asyncpg.Record:
    """Count one login (or password) attempt unless this name or this address is at the limit
    of the throttle window: `retry_s` 0 and the counted `attempt_id`, or the seconds to wait.
    One atomic step across instances (migration 005's login_attempt)."""
    return await conn.fetchrow("SELECT retry_s, attempt_id FROM login_attempt($1, $2, $3, $4)",
                               username, ip, limit, THROTTLE_WINDOW_S)


async def forget_attempt(conn: Conn, attempt_id: int) -> None:
    """An attempt that turned out good (a password change) no longer counts."""
    await conn.execute("DELETE FROM login_failures WHERE id = $1", attempt_id)


async def clear_failures(conn: Conn, username: str) -> None:
    await conn.execute("DELETE FROM login_failures WHERE lower(username) = lower($1)", username)
