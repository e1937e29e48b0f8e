"""Real parts only: a private PostgreSQL started for the session (or PORTALD_TEST_DSN), one
migrated template database cloned per test, and a real aiosmtpd server per test."""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from daemon.config import Config, load_config
from daemon.db import migrations
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
    from daemon.db.embedded import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="portald-test-pg-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root, fast_unsafe=True)
    dsn = server.start()
    try:
        yield _with_database(dsn, "postgres")
    finally:
        server.destroy()


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


def write_test_config(directory: Path, dsn: str, smtp_port: int) -> Config:
    """A config.toml in `directory` for the database `dsn` and an SMTP server on `smtp_port`."""
    path = directory / "config.toml"
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
port = {smtp_port}
from = "portald <portald@portal.test>"
[mail]
poll_interval_s = 1
[state]
dir = "{directory / 'state'}"
"""
    )
    return load_config(path)


@pytest.fixture
def config(dsn: str, smtp_sink: SmtpSink, tmp_path: Path) -> Config:
    """A configuration pointing at this test's database and SMTP sink."""
    return write_test_config(tmp_path, dsn, smtp_sink.port)


@pytest.fixture
def app(config: Config, dsn: str):
    """The portal without the mail worker and scheduler."""
    from daemon.app import build_app
    from web.routes import setup_web

    return build_app(config, dsn, setup_web=setup_web, background=False)


@pytest.fixture
async def client(app, aiohttp_client):
    # `app` (and so the database) first: the client, torn down first, stops the daemon before
    # the database is dropped under it
    return await aiohttp_client(app)


# -- the demo data set (daemon/demo.py), loaded once per session into a second template ------

DEMO_TEMPLATE_DB = "portald_demo_template"


@pytest.fixture(scope="session")
def demo_template_dsn(pg_server: str, template_dsn: str) -> Iterator[str]:
    """The migrated template with `load_demo` run once; each demo test clones it."""
    from daemon.dev.demo import load_demo

    name = f"{DEMO_TEMPLATE_DB}_{os.getpid()}"
    template = urlsplit(template_dsn).path.lstrip("/")

    async def build() -> None:
        await _admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}"',
                             f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        conn = await asyncpg.connect(_with_database(pg_server, name))
        try:
            await load_demo(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield _with_database(pg_server, name)
    asyncio.run(_admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def demo_dsn(pg_server: str, demo_template_dsn: str) -> AsyncIterator[str]:
    """A fresh database of this test's own holding the demo data."""
    name = f"portald_d{os.getpid()}_{next(_db_counter)}"
    template = urlsplit(demo_template_dsn).path.lstrip("/")
    await _admin_execute(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _with_database(pg_server, name)
    await _admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def demo_config(demo_dsn: str, smtp_sink: SmtpSink, tmp_path: Path) -> Config:
    """Like `config`, on the demo database."""
    return write_test_config(tmp_path, demo_dsn, smtp_sink.port)


@pytest.fixture
def demo_app(demo_config: Config, demo_dsn: str):
    """The portal on the demo data, without the mail worker and scheduler."""
    from daemon.app import build_app
    from web.routes import setup_web

    return build_app(demo_config, demo_dsn, setup_web=setup_web, background=False)


@pytest.fixture
async def demo_client(demo_app, aiohttp_client):
    # as for `client`: the daemon stops before its database is dropped
    return await aiohttp_client(demo_app)


async def database_fingerprint(dsn: str) -> dict[str, str]:
    """Every table of the database → a digest of all its rows: equal fingerprints mean that
    nothing was written (used to prove that refused commands and repeated loads change nothing)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r["t"] for r in await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        # one round trip for all tables
        rows = await conn.fetch(" UNION ALL ".join(
            f"SELECT '{t}' AS t, count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS d"
            f" FROM {t} x" for t in tables))
        return {r["t"]: r["d"] for r in rows}
    finally:
        await conn.close()


# -- a small, exact data set for privilege, auth, hot-reload and explain tests ---------------

SEED_PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def seed_password_hash() -> str:
    """argon2 costs ~50 ms a hash: hash once for every seeded login."""
    from daemon.passwords import hash_password

    return hash_password(SEED_PASSWORD)


class Seed(dict):
    """Ids of the seeded rows by name: seed["acme"], seed["sub1"], seed["t_acme_sub1"], …"""


@pytest.fixture
async def seed(conn: asyncpg.Connection, seed_password_hash: str) -> Seed:
    """The seed data set (see `seed_database`) in this test's database."""
    return await seed_database(conn, seed_password_hash)


async def seed_database(conn: asyncpg.Connection, password_hash: str) -> Seed:
    """Accounts Acme/Globex/Initech; web users full@acme (Full), limited@acme (Limited),
    custom@acme (custom group `Custom`, a copy of Full), full@globex; employees admin, tech
    (Standard, all accounts), sub1 (Acme), sub2 (Globex, Initech); tickets per account, and on
    t_acme_sub1 children by sub1, by tech and by the customer, public and not."""
    s = Seed()
    h = password_hash
    for name in ("Acme", "Globex", "Initech"):
        s[name.lower()] = await conn.fetchval("INSERT INTO accounts (name) VALUES ($1) RETURNING id", name)
    s["g_full"], s["g_limited"] = [
        await conn.fetchval("SELECT id FROM customer_groups WHERE name = $1", n) for n in ("Full", "Limited")]
    s["g_custom"] = await conn.fetchval(
        """INSERT INTO customer_groups (name, tickets_add, tickets_edit, priority, ticket_asset, charges,
               assets, asset_config_note, history_notes, contracts, public_emails, documents, upload_files,
               kb, quotes, change_password)
           SELECT 'Custom', tickets_add, tickets_edit, priority, ticket_asset, charges, assets,
                  asset_config_note, history_notes, contracts, public_emails, documents, upload_files,
                  kb, quotes, change_password FROM customer_groups WHERE name = 'Full' RETURNING id""")
    for username, account, group in (("full@acme", "acme", "g_full"), ("limited@acme", "acme", "g_limited"),
                                      ("custom@acme", "acme", "g_custom"), ("full@globex", "globex", "g_full")):
        s[username] = await conn.fetchval(
            """INSERT INTO customer_web_users (account_id, group_id, username, full_name, password_hash)
               VALUES ($1, $2, $3, $4, $5) RETURNING id""", s[account], s[group], username,
            username.split("@")[0].title() + " User", h)
    groups = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM employee_groups")}
    s["eg_admin"], s["eg_standard"], s["eg_sub"] = (
        groups["Administrators"], groups["Standard"], groups["Subcontractors"])
    for username, group, all_accounts, accounts in (
            ("admin", "Administrators", True, ()), ("tech", "Standard", True, ()),
            ("sub1", "Subcontractors", False, ("acme",)), ("sub2", "Subcontractors", False, ("globex", "initech"))):
        s[username] = await conn.fetchval(
            """INSERT INTO employees (username, full_name, email, group_id, all_accounts, password_hash)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            username, username.title(), f"{username}@msp.example", groups[group], all_accounts, h)
        for a in accounts:
            await conn.execute("INSERT INTO employee_accounts VALUES ($1, $2)", s[username], s[a])
    for name, account, assigned in (("t_acme_sub1", "acme", "sub1"), ("t_acme_tech", "acme", "tech"),
                                    ("t_acme_none", "acme", None), ("t_globex_sub2", "globex", "sub2"),
                                    ("t_globex_sub1", "globex", "sub1"), ("t_initech_sub2", "initech", "sub2")):
        s[name] = await conn.fetchval(
            "INSERT INTO tickets (account_id, description, assigned_to) VALUES ($1, $2, $3) RETURNING id",
            s[account], f"ticket {name}", s[assigned] if assigned else None)
    t = s["t_acme_sub1"]
    for key, author_e, author_w in (("n_sub1", "sub1", None), ("n_tech", "tech", None),
                                    ("n_customer", None, "full@acme")):
        s[key] = await conn.fetchval(
            """INSERT INTO history_notes (ticket_id, author_employee_id, author_webuser_id, body)
               VALUES ($1, $2, $3, $4) RETURNING id""", t, s[author_e] if author_e else None,
            s[author_w] if author_w else None, f"note {key}")
    for key, emp, kind in (("c_sub1", "sub1", "labor"), ("c_tech", "tech", "part")):
        s[key] = await conn.fetchval(
            """INSERT INTO charges (ticket_id, kind, quantity, unit_price, employee_id)
               VALUES ($1, $2, 2, 50, $3) RETURNING id""", t, kind, s[emp])
    for key, by, public in (("e_public_tech", "tech", True), ("e_private_tech", "tech", False),
                            ("e_private_sub1", "sub1", False)):
        s[key] = await conn.fetchval(
            """INSERT INTO ticket_emails (ticket_id, subject, is_public, filed_by)
               VALUES ($1, $2, $3, $4) RETURNING id""", t, key, public, s[by])
    blob = await conn.fetchval("INSERT INTO blobs (data) VALUES ('x') RETURNING id")
    for key, by, public in (("a_public_sub1", "sub1", True), ("a_private_tech", "tech", False)):
        s[key] = await conn.fetchval(
            """INSERT INTO attachments (ticket_id, filename, size, blob_id, is_public, uploaded_by_employee)
               VALUES ($1, $2, 1, $3, $4, $5) RETURNING id""", t, f"{key}.txt", blob, public, s[by])
    for key, account, public in (("d_acme_public", "acme", True), ("d_acme_private", "acme", False),
                                 ("d_globex_public", "globex", True)):
        s[key] = await conn.fetchval(
            """INSERT INTO documents (account_id, title, filename, size, blob_id, is_public)
               VALUES ($1, $2, $3, 1, $4, $5) RETURNING id""", s[account], key, f"{key}.txt", blob, public)
    for key, public in (("kb_public", True), ("kb_internal", False)):
        s[key] = await conn.fetchval(
            "INSERT INTO kb_articles (title, is_public) VALUES ($1, $2) RETURNING id", key, public)
    for key, account in (("q_acme", "acme"), ("q_globex", "globex")):
        s[key] = await conn.fetchval(
            "INSERT INTO quotes (account_id, number, title, amount) VALUES ($1, $2, $3, 100) RETURNING id",
            s[account], key.upper(), key)
    return s


async def login_as(client, username: str, password: str = SEED_PASSWORD) -> str:
    """Log `client` in through the API; returns the CSRF token."""
    resp = await client.post("/api/v1/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf_token"]


class SeededDatabase:
    """A seeded database shared by the read-only tests of one module:
    `async with SeededDatabase(pg_server, template_dsn, hash, "label") as (dsn, conn, seed)`."""

    def __init__(self, pg_server: str, template_dsn: str, password_hash: str, label: str) -> None:
        self.server, self.hash = pg_server, password_hash
        self.template = urlsplit(template_dsn).path.lstrip("/")
        self.name = f"portald_{label}_{os.getpid()}"
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> tuple[str, asyncpg.Connection, Seed]:
        await _admin_execute(self.server, f'DROP DATABASE IF EXISTS "{self.name}"',
                             f'CREATE DATABASE "{self.name}" TEMPLATE "{self.template}"')
        dsn = _with_database(self.server, self.name)
        self.conn = await asyncpg.connect(dsn)
        return dsn, self.conn, await seed_database(self.conn, self.hash)

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()
        await _admin_execute(self.server, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture
async def demo_dsn_twin(pg_server: str, demo_template_dsn: str) -> AsyncIterator[str]:
    """A second, independent clone of the demo data in the same test: one side of a
    comparison (e.g. the admin pages on `demo_dsn`, the CLI on this one)."""
    name = f"portald_d{os.getpid()}_{next(_db_counter)}"
    template = urlsplit(demo_template_dsn).path.lstrip("/")
    await _admin_execute(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _with_database(pg_server, name)
    await _admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the JSON API tests (tests/api_support.py) ------------------------------------------------


@pytest.fixture
async def users(demo_client):
    """`await users.login("full@acme")` → an `Api` with its own cookies, on the demo data."""
    from tests.api_support import Users

    u = Users(demo_client)
    yield u
    await u.close()


@pytest.fixture
async def demo_db(demo_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A separate connection to this test's demo database."""
    c = await asyncpg.connect(demo_dsn)
    yield c
    await c.close()
