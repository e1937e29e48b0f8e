"""License seats: the total bought and how many active employees with web access use."""

from __future__ import annotations

import asyncpg


async def usage(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow("SELECT seats, seats_in_use() AS in_use FROM licenses")


async def set_seats(conn: asyncpg.Connection, seats: int) -> None:
    # the licenses_check_reduce trigger refuses fewer seats than are in use
    await conn.execute("UPDATE licenses SET seats = $1", seats)
