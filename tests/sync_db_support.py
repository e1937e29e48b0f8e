"""Blocking reads of a test database, for tests that drive the synchronous CLI (`main()`)
and so cannot await."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.conftest import database_fingerprint


def q(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def val(dsn: str, sql: str, *args: Any) -> Any:
    rows = q(dsn, sql, *args)
    return rows[0][0] if rows else None


def fingerprint(dsn: str) -> dict[str, str]:
    """`database_fingerprint`, waited for."""
    return asyncio.run(database_fingerprint(dsn))
