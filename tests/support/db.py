"""Test databases: a migrated template cloned per test (CREATE DATABASE … TEMPLATE is fast),
short reads and writes on a database by its DSN, and a fingerprint of every row to prove that
something changed nothing. The `*_now` forms wait for the answer, for tests that drive the
synchronous CLI and so cannot await."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

_counter = itertools.count(1)
_strategy_clause: str | None = None


def with_database(dsn: str, name: str) -> str:
    """`dsn` pointing at the database `name` of the same server."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def admin_execute(server_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        for stmt in statements:
            await conn.execute(stmt)
    finally:
        await conn.close()


async def _strategy(server_dsn: str) -> str:
    """FILE_COPY clones a small template much faster than the WAL_LOG default (PG >= 15)."""
    global _strategy_clause
    if _strategy_clause is None:
        conn = await asyncpg.connect(server_dsn)
        try:
            version = conn.get_server_version().major
        finally:
            await conn.close()
        _strategy_clause = " STRATEGY FILE_COPY" if version >= 15 else ""
    return _strategy_clause


async def create_clone(server_dsn: str, template_dsn: str, name: str) -> str:
    """A new database `name` cloned from the template (replacing one of that name)."""
    await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}"',
                        f'CREATE DATABASE "{name}" TEMPLATE "{database_of(template_dsn)}"'
                        f'{await _strategy(server_dsn)}')
    return with_database(server_dsn, name)


async def drop(server_dsn: str, dsn: str) -> None:
    await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{database_of(dsn)}" WITH (FORCE)')


async def create_template(server_dsn: str, name: str,
                          fill: Callable[[asyncpg.Connection], Awaitable[Any]], *,
                          source: str | None = None) -> str:
    """A database `name` to clone tests' databases from: cloned from `source` or empty, then
    filled by `fill(conn)` (migrations, the demo data)."""
    if source is None:
        await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        dsn = with_database(server_dsn, name)
    else:
        dsn = await create_clone(server_dsn, source, name)
    conn = await asyncpg.connect(dsn)
    try:
        await fill(conn)
    finally:
        await conn.close()
    return dsn


@contextlib.asynccontextmanager
async def clone(server_dsn: str, template_dsn: str, prefix: str = "t") -> AsyncIterator[str]:
    """A fresh clone of the template for one test, dropped after it."""
    dsn = await create_clone(server_dsn, template_dsn, f"portald_{prefix}{os.getpid()}_{next(_counter)}")
    try:
        yield dsn
    finally:
        await drop(server_dsn, dsn)


# -- short reads and writes --------------------------------------------------------------------


async def rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def val(dsn: str, sql: str, *args: Any) -> Any:
    found = await rows(dsn, sql, *args)
    return found[0][0] if found else None


async def execute(dsn: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def fingerprint(dsn: str) -> dict[str, str]:
    """Every table of the database → a digest of all its rows: equal fingerprints mean that
    nothing was written (used to prove that refused commands and repeated loads change nothing)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r["t"] for r in await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        # one round trip for all tables
        found = await conn.fetch(" UNION ALL ".join(
            f"SELECT '{t}' AS t, count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS d"
            f" FROM {t} x" for t in tables))
        return {r["t"]: r["d"] for r in found}
    finally:
        await conn.close()


def rows_now(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(rows(dsn, sql, *args))


def val_now(dsn: str, sql: str, *args: Any) -> Any:
    return asyncio.run(val(dsn, sql, *args))


def fingerprint_now(dsn: str) -> dict[str, str]:
    return asyncio.run(fingerprint(dsn))
