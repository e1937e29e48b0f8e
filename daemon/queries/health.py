"""The smallest round trips: whether the database answers, and a notification sent the way
every change's notification travels (to check that a LISTEN connection still receives)."""

from __future__ import annotations

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def ping(conn: Conn) -> None:
    await conn.fetchval("SELECT 1")


async def notify(conn: Conn, channel: str, payload: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
