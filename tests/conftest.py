"""Real parts only: a private PostgreSQL started for the session (or PORTALD_TEST_DSN), one
migrated template database cloned per test, and a real aiosmtpd server per test."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from daemon import migrations
from daemon.config import Config, load_config
from tests.smtp_sink import SmtpSink

TEMPLATE_DB = "portald_template"
_db_counter = itertools.count(1)


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of a server where tests may create databases (the `postgres` maintenance db)."""
    given = os.environ.get("PORTALD_TEST_DSN")
    if given:
        yield given
        return
    from daemon.embedded import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="portald-test-pg-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root, fast_unsafe=True)
    dsn = server.start()
    try:
        yield _with_database(dsn, "postgres")
    finally:
        server.stop(force=True)
        shutil.rmtree(root, ignore_errors=True)


async def _admin_execute(server_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        for stmt in statements:
            await conn.execute(stmt)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_dsn(pg_server: str) -> str:
    """A migrated database that each test clones (CREATE DATABASE … TEMPLATE is fast)."""
    suffix = f"_{os.getpid()}"
    name = TEMPLATE_DB + suffix

    async def build() -> None:
        await _admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(_with_database(pg_server, name))
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield _with_database(pg_server, name)

    async def drop() -> None:
        await _admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    asyncio.run(drop())


_strategy_clause: str | None = None


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


@pytest.fixture
async def dsn(pg_server: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"portald_t{os.getpid()}_{next(_db_counter)}"
    template = urlsplit(template_dsn).path.lstrip("/")
    await _admin_execute(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"{await _strategy(pg_server)}')
    yield _with_database(pg_server, name)
    await _admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A separate connection: what 'another program writing the database' does."""
    c = await asyncpg.connect(dsn)
    yield c
    await c.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def config(dsn: str, smtp_sink: SmtpSink, tmp_path: Path) -> Config:
    """A configuration pointing at this test's database and SMTP sink."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
dsn = "{dsn}"
[http]
host = "127.0.0.1"
port = 8080
public_url = "http://portal.test"
[smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
from = "portald <portald@portal.test>"
[mail]
poll_interval_s = 1
[state]
dir = "{tmp_path / 'state'}"
"""
    )
    return load_config(path)


@pytest.fixture
def app(config: Config, dsn: str):
    """The portal without the mail worker and scheduler."""
    from daemon.app import build_app

    return build_app(config, dsn, background=False)


@pytest.fixture
async def client(aiohttp_client, app):
    return await aiohttp_client(app)
