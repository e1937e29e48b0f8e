"""The second wall (SPEC §8): every web request's work runs as portald_web with its principal
named, and the row-level security policies keep every boundary of daemon/access/scope.py by
themselves: reads and writes at the SQL level, without a principal, for a non-superuser owner,
and at one evaluation of the principal per statement. (The route-level scope tests run with the
query layer's conditions taken down too: the `walls` fixture of tests/conftest.py.)"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from daemon.access import scope
from daemon.access.acting import WEB_ROLE, acting_as
from daemon.access.principals import find_user
from daemon.app import build_app, log_database_role
from daemon.db import migrations
from daemon.db.embedded import EmbeddedPostgres
from daemon.queries import principals as principals_q
from tests.support.api import Api, demo_ids
from tests.support.config import write_test_config
from tests.support.db import admin_execute, with_database
from tests.support.seed import SEED_PASSWORD, seed
from web.routes import setup_web

# every table under row-level security (daemon/db/sql/008_row_level_security.sql)
PROTECTED = ("accounts", "tickets", "history_notes", "charges", "ticket_emails", "attachments",
             "ticket_recipients", "assets", "contracts", "quotes", "documents", "kb_articles",
             "kb_files")


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in PROTECTED}


async def test_the_helper_runs_as_portald_web_for_its_principal(demo_db) -> None:
    owner = await demo_db.fetchval("SELECT current_user")
    p = await find_user(demo_db, "full@acme")
    async with acting_as(demo_db, p):
        who = await principals_q.whoami(demo_db)
        assert (who["role"], who["principal"]) == (WEB_ROLE, f"customer:{p.id}")
        assert not await demo_db.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        accounts = {r["account_id"] for r in await demo_db.fetch("SELECT account_id FROM tickets")}
        assert accounts == {p.account_id}
    # both are gone with the transaction: the pooled connection is the owner again
    who = await principals_q.whoami(demo_db)
    assert who["role"] == owner and not who["principal"]
    assert len({r["account_id"] for r in await demo_db.fetch("SELECT account_id FROM tickets")}) == 3


async def test_portald_web_sees_no_row_without_a_principal(demo_db) -> None:
    everything = await _counts(demo_db)
    assert all(everything.values()), everything  # the demo has rows in each
    inactive = await demo_db.fetchval(
        "UPDATE customer_web_users SET active = false WHERE username = 'limited@acme' RETURNING id")
    gone = await demo_db.fetchval(
        "UPDATE employees SET active = false WHERE username = 'sub2' RETURNING id")
    for principal in (None, "", "customer:", "customer:abc", f"customer:{inactive}", f"employee:{gone}",
                      "employee:1 OR true", "root", f"webuser:{inactive}", "customer:99999999999"):
        # named as the helper names it, and set by hand without the attributes
        for how in ("SELECT portald_act_as($1)", "SELECT set_config('portald.principal', $1, true)"):
            async with demo_db.transaction():
                await demo_db.execute("SET LOCAL ROLE portald_web")
                if principal is not None:
                    await demo_db.execute(how, principal)
                assert set((await _counts(demo_db)).values()) == {0}, (principal, how)
    # the attributes read for one principal never serve another named later by other means
    full = await find_user(demo_db, "full@acme")
    async with acting_as(demo_db, full):
        assert await demo_db.fetchval("SELECT count(*) FROM tickets")
        await demo_db.execute("SELECT set_config('portald.principal', $1, true)",
                              f"customer:{(await find_user(demo_db, 'partial@acme')).id}")
        assert set((await _counts(demo_db)).values()) == {0}
    # not even the tables it may write can be written blind
    async with demo_db.transaction():
        await demo_db.execute("SET LOCAL ROLE portald_web")
        assert await demo_db.execute("UPDATE tickets SET description = 'x'") == "UPDATE 0"
        assert await demo_db.execute("DELETE FROM ticket_recipients") == "DELETE 0"


async def test_attribute_settings_count_only_under_the_current_principal_check(demo_db) -> None:
    """Every policy that reads an attribute setting bare (portald_setting) also checks that the
    settings are the current principal's; cleared by hand, they serve no one."""
    bare = await demo_db.fetch(
        "SELECT tablename, policyname FROM pg_policies WHERE roles = '{portald_web}'"
        " AND concat(qual, ' ', with_check) LIKE '%portald_setting(%'"
        " AND (qual IS NOT NULL AND qual NOT LIKE '%portald_attributes_current()%'"
        "      OR with_check IS NOT NULL AND with_check NOT LIKE '%portald_attributes_current()%')")
    assert not bare, bare
    full = await find_user(demo_db, "full@acme")
    for cleared in (("portald.principal",), ("portald.principal", "portald.attributes_of")):
        async with acting_as(demo_db, full):
            assert await demo_db.fetchval("SELECT count(*) FROM tickets")
            for name in cleared:
                await demo_db.execute("SELECT set_config($1, '', true)", name)
            assert set((await _counts(demo_db)).values()) == {0}, cleared


async def _refused(conn: asyncpg.Connection, sql: str, *args: Any) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with conn.transaction():  # a savepoint: the refusal undoes only itself
            await conn.execute(sql, *args)


async def test_writes_outside_the_scope_are_refused_by_the_database(demo_db) -> None:
    ids = await demo_ids(demo_db)
    globex_ticket, acme_ticket = ids["t_globex_main"], ids["t_acme_main"]
    customer = await find_user(demo_db, "full@acme")
    async with acting_as(demo_db, customer):
        await _refused(demo_db, "INSERT INTO tickets (account_id, description, created_by_webuser) "
                                "VALUES ($1, 'x', $2)", ids["globex"], customer.id)
        # raised in their own account, but in someone else's name
        await _refused(demo_db, "INSERT INTO tickets (account_id, description, created_by_webuser) "
                                "VALUES ($1, 'x', $2)", ids["acme"], ids["partial@acme"])
        await _refused(demo_db, "INSERT INTO history_notes (ticket_id, body, author_webuser_id) "
                                "VALUES ($1, 'x', $2)", globex_ticket, customer.id)
        blob = await demo_db.fetchval("SELECT min(blob_id) FROM attachments WHERE ticket_id = $1",
                                      acme_ticket)
        await _refused(demo_db, "INSERT INTO attachments (ticket_id, filename, size, blob_id, is_public, "
                                "uploaded_by_webuser) VALUES ($1, 'x', 1, $2, false, $3)",
                       acme_ticket, blob, customer.id)
        assert await demo_db.execute("UPDATE tickets SET description = 'x' WHERE id = $1",
                                     globex_ticket) == "UPDATE 0"
        assert await demo_db.execute("UPDATE quotes SET status = 'declined' WHERE account_id = $1",
                                     ids["globex"]) == "UPDATE 0"
        # their own: allowed, and recorded in their name only
        assert await demo_db.fetchval(
            "INSERT INTO tickets (account_id, description, created_by_webuser) VALUES ($1, 'y', $2) "
            "RETURNING id", ids["acme"], customer.id)
    sub1 = await find_user(demo_db, "sub1")
    async with acting_as(demo_db, sub1):
        tech_ticket = ids["t_acme_vpn"]  # Acme, assigned to tech: not sub1's
        await _refused(demo_db, "INSERT INTO charges (ticket_id, kind, quantity, unit_price, employee_id) "
                                "VALUES ($1, 'expense', 1, 1, $2)", tech_ticket, sub1.id)
        await _refused(demo_db, "INSERT INTO ticket_recipients VALUES ($1, $2)", tech_ticket, sub1.id)
        await _refused(demo_db, "INSERT INTO tickets (account_id, description, created_by_employee) "
                                "VALUES ($1, 'x', $2)", ids["globex"], sub1.id)
        assert await demo_db.execute("UPDATE tickets SET status = 'closed', closed_at = now() "
                                     "WHERE id = $1", tech_ticket) == "UPDATE 0"


async def test_an_own_scope_writer_gets_back_what_it_wrote_and_no_more(users, demo_db, walls) -> None:
    """INSERT/UPDATE … RETURNING must see the new row through the SELECT policy: an own-scope
    employee creating a ticket for someone else, or handing theirs on, gets the answer, and the
    ticket is out of their scope from the next request on."""
    ids = await demo_ids(demo_db)
    group_id = await demo_db.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, create_tickets, assign_tickets)
           VALUES ('Dispatch', 'own', 'own', true, true) RETURNING id""")
    await demo_db.execute("UPDATE employees SET group_id = $1 WHERE username = 'sub1'", group_id)
    sub1: Api = await users.login("sub1")
    created = await sub1.post("/api/v1/tickets", {"account_id": ids["acme"], "description": "for tech",
                                                  "assigned_to": ids["tech"]})
    assert created.status == 201 and created.body["assigned_to"] == ids["tech"]
    unassigned = await sub1.post("/api/v1/tickets", {"account_id": ids["acme"], "description": "for anyone"})
    assert unassigned.status == 201
    handed_on = await sub1.patch(f"/api/v1/tickets/{ids['t_acme_main']}", {"assigned_to": ids["tech"]})
    assert handed_on.status == 200 and handed_on.body["assigned_to"] == ids["tech"]
    for ticket_id in (created.body["id"], unassigned.body["id"], ids["t_acme_main"]):
        assert (await sub1.get(f"/api/v1/tickets/{ticket_id}")).status == 404
    listed = {t["id"] for t in (await sub1.get("/api/v1/tickets", limit=200)).body["items"]}
    assert not listed & {created.body["id"], unassigned.body["id"], ids["t_acme_main"]}


async def test_the_web_path_is_held_by_the_policies_alone(users, demo_db, monkeypatch) -> None:
    """With the query layer's scope taken down, the web requests (run by a superuser's pool
    here, which would see everything) still see only the principal's rows: they run as
    portald_web, with the principal named."""
    monkeypatch.setattr(scope, "FIRST_WALL", False)
    ids = await demo_ids(demo_db)
    customer, sub1 = await users.login("full@acme"), await users.login("sub1")
    every = {t["account_id"] for t in (await customer.get("/api/v1/tickets", limit=200)).body["items"]}
    assert every == {ids["acme"]}
    mine = {t["id"] for t in (await sub1.get("/api/v1/tickets", limit=200, assigned="any")).body["items"]}
    assert mine == {r["id"] for r in await demo_db.fetch(
        "SELECT id FROM tickets WHERE assigned_to = $1 AND account_id = $2", ids["sub1"], ids["acme"])}
    html = (await sub1.get("/tickets", mine="0", status="all")).body.decode()
    assert "Globex" not in html and "Initech" not in html  # not even in the account filter


async def test_policies_ask_for_the_principal_once_per_statement(demo_db) -> None:
    """The principal's attributes are InitPlans, each run once, however many rows are read."""
    await demo_db.execute(
        "INSERT INTO tickets (account_id, description) SELECT $1, 'bulk ' || g "
        "FROM generate_series(1, 300) g", (await demo_ids(demo_db))["acme"])
    for user, table in (("full@acme", "tickets"), ("sub1", "tickets"), ("full@acme", "history_notes"),
                        ("tech", "documents")):
        p = await find_user(demo_db, user)
        async with acting_as(demo_db, p):
            [plan] = json.loads(await demo_db.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM {table}"))
        init = list(_init_plans(plan["Plan"]))
        assert init, (user, table)
        assert all(loops == 1 for loops in init), (user, table, init)


def _init_plans(node: dict[str, Any]) -> Iterator[int]:
    """The loop count of every InitPlan in a plan tree."""
    if node.get("Parent Relationship") == "InitPlan" and node.get("Actual Loops"):
        yield node["Actual Loops"]
    for child in node.get("Plans", ()):
        yield from _init_plans(child)


# -- an owner that is no superuser -------------------------------------------------------------


def _as_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def owner_dsn(pg_server: str) -> AsyncIterator[tuple[str, str]]:
    """A fresh, empty database owned by a login role without any special attribute, as on a
    server where the DBA made a database for the portal: (its DSN as that owner, the owner)."""
    owner, database = f"portald_owner_{os.getpid()}", f"portald_owned_{os.getpid()}"
    await admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{database}"', f"DROP ROLE IF EXISTS {owner}",
                        f"CREATE ROLE {owner} LOGIN PASSWORD 'owner-password'",
                        f'CREATE DATABASE "{database}" OWNER {owner}')
    try:
        yield _as_user(with_database(pg_server, database), owner, "owner-password"), owner
    finally:
        await admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
                            f"DROP ROLE IF EXISTS {owner}")


async def test_a_non_superuser_owner_migrates_and_both_walls_hold(
        owner_dsn, pg_server, seed_password_hash, smtp_sink, tmp_path, aiohttp_client,
        monkeypatch) -> None:
    dsn, owner = owner_dsn
    conn = await asyncpg.connect(dsn)
    try:
        # portald_web exists (the suite's template made it) but this owner may not become it:
        # the migration stops and says what the administrator has to run
        with pytest.raises(asyncpg.RaiseError, match="may not become portald_web") as refused:
            await migrations.migrate(conn)
        assert refused.value.hint == f"have an administrator run: GRANT portald_web TO {owner};"
        await admin_execute(pg_server, f"GRANT portald_web TO {owner}")
        # the first run applied everything before 008; now 008 and what follows it
        applied = [m.label for m in await migrations.migrate(conn)]
        assert applied == [m.label for m in migrations.available_migrations() if m.version >= 8]
        assert applied[0] == "008_row_level_security"
        assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relowner = 'portald_web'::regrole") == 0
        # the owner, subject to the policies (FORCE), writes and reads everything through its own
        s = await seed(conn, seed_password_hash)
        assert await conn.fetchval("SELECT count(*) FROM tickets") == 6
    finally:
        await conn.close()
    # and the portal on it keeps its boundaries, with the query layer's scope taken down
    monkeypatch.setattr(scope, "FIRST_WALL", False)
    client = await aiohttp_client(build_app(write_test_config(tmp_path, dsn, smtp_sink.port), dsn,
                                            setup_web=setup_web, background=False))
    sub1 = await Api.login(client, "sub1", SEED_PASSWORD)
    try:
        listed = {t["id"] for t in (await sub1.get("/api/v1/tickets", limit=200, assigned="any")).body["items"]}
        assert listed == {s["t_acme_sub1"]}
        for other in ("t_acme_tech", "t_acme_none", "t_globex_sub1", "t_globex_sub2"):
            assert (await sub1.get(f"/api/v1/tickets/{s[other]}")).status == 404, other
        notes = (await sub1.get(f"/api/v1/tickets/{s['t_acme_sub1']}/notes")).body["items"]
        assert [n["body"] for n in notes] == ["note n_sub1"]
    finally:
        await sub1.close()


async def test_the_daemon_says_as_what_it_works(owner_dsn, pg_server, caplog) -> None:
    dsn, owner = owner_dsn
    await admin_execute(pg_server, f"GRANT portald_web TO {owner}")
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
        caplog.set_level(logging.INFO, logger="portald.app")
        await log_database_role(conn)
        assert f"database role {owner} (owner of the tables)" in caplog.text
        assert "web requests run as portald_web" in caplog.text
    finally:
        await conn.close()
    # a role that does not own the tables would see no ticket, so no mail: said as an error
    reader = f"portald_reader_{os.getpid()}"
    await admin_execute(pg_server, f"DROP ROLE IF EXISTS {reader}",
                        f"CREATE ROLE {reader} LOGIN PASSWORD 'reader-password'")
    try:
        conn = await asyncpg.connect(_as_user(dsn, reader, "reader-password"))
        try:
            caplog.clear()
            await log_database_role(conn)
        finally:
            await conn.close()
        [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert f"database role {reader} does not own the portal's tables" in record.getMessage()
    finally:
        await admin_execute(pg_server, f"DROP ROLE IF EXISTS {reader}")


def test_a_createrole_owner_on_a_fresh_server_creates_the_role_itself(tmp_path) -> None:
    """The first way README gives: the DSN's role may create roles, on a server where
    portald_web does not exist yet (a private one: the suite's already has it). From
    PostgreSQL 16 on, its creator holds the new role with ADMIN only; the migration also
    lets it SET ROLE to it. A second run changes nothing."""
    tmp_path.chmod(0o755)  # the embedded server runs as nobody under root
    server = EmbeddedPostgres(tmp_path, fast_unsafe=True)
    try:
        asyncio.run(_createrole_owner(server.start()))
    finally:
        server.destroy()


async def _createrole_owner(dsn: str) -> None:
    await admin_execute(dsn, "CREATE ROLE creator LOGIN CREATEROLE PASSWORD 'creator-password'",
                        "CREATE DATABASE owned OWNER creator")
    conn = await asyncpg.connect(_as_user(with_database(dsn, "owned"), "creator", "creator-password"))
    try:
        assert not await conn.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'portald_web')")
        assert await migrations.migrate(conn)
        assert await migrations.migrate(conn) == []
        role = await conn.fetchrow("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'portald_web'")
        assert tuple(role) == (False, False)
        async with conn.transaction():
            await conn.execute("SELECT set_config('role', 'portald_web', true)")
            assert await conn.fetchval("SELECT current_user") == "portald_web"
            assert await conn.fetchval("SELECT count(*) FROM customer_groups") == 3  # granted
            assert await conn.fetchval("SELECT count(*) FROM tickets") == 0  # nobody named
    finally:
        await conn.close()
