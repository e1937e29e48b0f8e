"""The keys that sign reply addresses (daemon/mail/reply_token.py; table of 009_reply_by_mail.sql).
Read at each use, never cached: a rotation by any instance or by the CLI holds everywhere at
once, and the table has a handful of rows."""

from __future__ import annotations

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

# a retired key is kept this long after it stopped verifying, so that a reply signed by it is
# refused as "expired" rather than as "unknown"
EXPIRED_KEPT = "30 days"


async def current(conn: Conn) -> asyncpg.Record | None:
    """The key that signs now."""
    return await conn.fetchrow("SELECT id, secret FROM reply_keys WHERE retires_at IS NULL")


async def verifying(conn: Conn) -> list[asyncpg.Record]:
    """Every key kept, and whether it still verifies now."""
    return await conn.fetch(
        """SELECT id, secret, retires_at, (retires_at IS NULL OR retires_at > now()) AS valid
             FROM reply_keys ORDER BY id DESC""")


async def listing(conn: Conn) -> list[asyncpg.Record]:
    """The keys without their secrets, newest first."""
    return await conn.fetch(
        """SELECT id, created_at, retires_at,
                  CASE WHEN retires_at IS NULL THEN 'current'
                       WHEN retires_at > now() THEN 'grace' ELSE 'expired' END AS state
             FROM reply_keys ORDER BY id DESC""")


async def rotate(conn: asyncpg.Connection, *, secret: bytes,
                 grace_s: float) -> tuple[int, asyncpg.Record | None]:
    """A new current key in the caller's transaction; the previous one verifies `grace_s`
    more seconds. Returns the new key's id and the previous key's id and retires_at."""
    # two rotations at once must not both retire the same key and race for the current slot
    await conn.execute("LOCK TABLE reply_keys IN SHARE ROW EXCLUSIVE MODE")
    previous = await conn.fetchrow(
        """UPDATE reply_keys SET retires_at = now() + make_interval(secs => $1)
            WHERE retires_at IS NULL RETURNING id, retires_at""", grace_s)
    await conn.execute(f"DELETE FROM reply_keys WHERE retires_at < now() - interval '{EXPIRED_KEPT}'")
    new_id = await conn.fetchval("INSERT INTO reply_keys (secret) VALUES ($1) RETURNING id", secret)
    return new_id, previous
