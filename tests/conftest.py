"""The fixtures of every tier. Real parts only: a private PostgreSQL started for the session
(or PORTALD_TEST_DSN), one migrated template database cloned per test (and a second one holding
the demo data), and a real aiosmtpd server per test. Helpers live in tests/support/."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from daemon.access import scope
from daemon.app import build_app
from daemon.config import Config
from daemon.db import migrations
from daemon.db.embedded import EmbeddedPostgres
from daemon.dev.demo import load_demo
from daemon.passwords import hash_password
from tests.support import tracebacks
from tests.support.api import Users
from tests.support.config import write_test_config
from tests.support.db import clone, create_template, drop, with_database
from tests.support.seed import SEED_PASSWORD, Seed, seed
from tests.support.smtp import SmtpSink
from web.routes import setup_web


@pytest.fixture(scope="session", autouse=True)
def traceback_records() -> Iterator[None]:
    handler = tracebacks.install()
    yield
    logging.getLogger().removeHandler(handler)


@pytest.fixture(autouse=True)
def no_traceback_in_the_daemons_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test during which a daemon (in this process or a process of its own) logged
    a traceback (tests/support/tracebacks.py)."""
    start = tracebacks.mark()
    yield
    found = tracebacks.since(start)
    if found and request.node.get_closest_marker("allows_traceback") is None:
        pytest.fail("a traceback in the daemon's log:\n" + "\n---\n".join(found), pytrace=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of a server where tests may create databases (the `postgres` maintenance db)."""
    given = os.environ.get("PORTALD_TEST_DSN")
    if given:
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="portald-test-pg-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root, fast_unsafe=True)
    dsn = server.start()
    try:
        yield with_database(dsn, "postgres")
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def template_dsn(pg_server: str) -> Iterator[str]:
    """A migrated database that each test clones (CREATE DATABASE … TEMPLATE is fast)."""
    dsn = asyncio.run(create_template(pg_server, f"portald_template_{os.getpid()}", migrations.migrate))
    yield dsn
    asyncio.run(drop(pg_server, dsn))


@pytest.fixture(scope="session")
def demo_template_dsn(pg_server: str, template_dsn: str) -> Iterator[str]:
    """The migrated template with `load_demo` run once; each demo test clones it."""
    dsn = asyncio.run(create_template(pg_server, f"portald_demo_template_{os.getpid()}", load_demo,
                                source=template_dsn))
    yield dsn
    asyncio.run(drop(pg_server, dsn))


@pytest.fixture
async def dsn(pg_server: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    async with clone(pg_server, template_dsn, "t") as d:
        yield d


@pytest.fixture
async def demo_dsn(pg_server: str, demo_template_dsn: str) -> AsyncIterator[str]:
    """A fresh database of this test's own holding the demo data."""
    async with clone(pg_server, demo_template_dsn, "d") as d:
        yield d


@pytest.fixture
async def demo_dsn_twin(pg_server: str, demo_template_dsn: str) -> AsyncIterator[str]:
    """A second, independent clone of the demo data in the same test: one side of a
    comparison (e.g. the admin pages on `demo_dsn`, the CLI on this one)."""
    async with clone(pg_server, demo_template_dsn, "d") as d:
        yield d


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A separate connection: what 'another program writing the database' does."""
    c = await asyncpg.connect(dsn)
    yield c
    await c.close()


@pytest.fixture
async def demo_db(demo_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A separate connection to this test's demo database."""
    c = await asyncpg.connect(demo_dsn)
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
    return write_test_config(tmp_path, dsn, smtp_sink.port)


@pytest.fixture
def demo_config(demo_dsn: str, smtp_sink: SmtpSink, tmp_path: Path) -> Config:
    """Like `config`, on the demo database."""
    return write_test_config(tmp_path, demo_dsn, smtp_sink.port)


@pytest.fixture
def app(config: Config, dsn: str) -> web.Application:
    """The portal without the mail worker and scheduler."""
    return build_app(config, dsn, setup_web=setup_web, background=False)


@pytest.fixture
def demo_app(demo_config: Config, demo_dsn: str) -> web.Application:
    """The portal on the demo data, without the mail worker and scheduler."""
    return build_app(demo_config, demo_dsn, setup_web=setup_web, background=False)


@pytest.fixture
async def client(app, aiohttp_client):
    # `app` (and so the database) first: the client, torn down first, stops the daemon before
    # the database is dropped under it
    return await aiohttp_client(app)


@pytest.fixture
async def demo_client(demo_app, aiohttp_client):
    # as for `client`: the daemon stops before its database is dropped
    return await aiohttp_client(demo_app)


@pytest.fixture
async def users(demo_client) -> AsyncIterator[Users]:
    """`await users.login("full@acme")` → an `Api` with its own cookies, on the demo data."""
    u = Users(demo_client)
    yield u
    await u.close()


@pytest.fixture(scope="session")
def seed_password_hash() -> str:
    """argon2 costs ~50 ms a hash: hash once for every seeded login."""
    return hash_password(SEED_PASSWORD)


@pytest.fixture(name="seed")
async def seed_fixture(conn: asyncpg.Connection, seed_password_hash: str) -> Seed:
    """The seed data set (tests/support/seed.py) in this test's database."""
    return await seed(conn, seed_password_hash)


@pytest.fixture(params=["both walls", "second wall only"])
def walls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a scope test twice: as the portal is, and with the query layer's scope conditions
    taken down (daemon/access/scope.py FIRST_WALL), so that only the database's row-level
    security keeps the boundary. A test switch, never a setting."""
    if request.param == "second wall only":
        monkeypatch.setattr(scope, "FIRST_WALL", False)
    return request.param
