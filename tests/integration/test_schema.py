"""Migrations and the rules the database itself enforces, whoever writes it."""

from __future__ import annotations

import asyncio
import itertools
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from daemon.db import migrations

_n = itertools.count()


@pytest.fixture
async def empty_dsn(pg_server: str):
    name = f"portald_empty_{next(_n)}"
    admin = await asyncpg.connect(pg_server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(pg_server)._replace(path=f"/{name}"))
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def test_migrate_from_empty_then_again(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        applied = await migrations.migrate(conn)
        assert [m.version for m in applied] == [m.version for m in migrations.available_migrations()]
        assert await migrations.migrate(conn) == []
        assert await migrations.pending(conn) == []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in applied]
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once_apply_each_migration_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        applied = sorted(m.version for result in results for m in result)
        assert applied == [m.version for m in migrations.available_migrations()]
    finally:
        for c in conns:
            await c.close()


async def test_migrate_command(config, capsys) -> None:
    from daemon.cli import main

    # the test database is migrated already: nothing to do, said plainly
    assert await asyncio.to_thread(main, ["migrate", "--config", str(config.path)]) == 0
    assert "up to date" in capsys.readouterr().out


async def test_an_edited_migration_is_refused_naming_its_file(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrations.migrate(conn)
        first = migrations.available_migrations()[0]
        # what the database would hold had 001 been applied from another text of the file
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = $2",
                           "0" * 64, first.version)
        with pytest.raises(migrations.MigrationMismatch) as err:
            await migrations.migrate(conn)
        assert first.filename in str(err.value)
        # refused before anything else happened: the recorded checksum is still the odd one
        assert await conn.fetchval("SELECT checksum FROM schema_migrations WHERE version = $1",
                                   first.version) == "0" * 64
    finally:
        await conn.close()


async def test_an_edited_migration_stops_every_command_with_one_line(config, conn, capsys) -> None:
    from daemon.cli import main

    first = migrations.available_migrations()[0]
    await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = $2",
                       "f" * 64, first.version)
    assert await asyncio.to_thread(main, ["migrate", "--config", str(config.path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("portald: migration ") and first.filename in err[0]
    assert "Traceback" not in err[0]


async def test_databases_migrated_before_checksums_get_them_recorded(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrations.migrate(conn)
        # the table as it was before checksums existed
        await conn.execute("ALTER TABLE schema_migrations DROP COLUMN checksum")
        assert await migrations.migrate(conn) == []
        recorded = {r["version"]: r["checksum"] for r in await conn.fetch(
            "SELECT version, checksum FROM schema_migrations")}
        assert recorded == {m.version: m.checksum for m in migrations.available_migrations()}
        assert await migrations.migrate(conn) == []
    finally:
        await conn.close()


@pytest.mark.parametrize("statement", [
    "UPDATE customer_groups SET charges = NOT charges WHERE name = 'Full'",
    "UPDATE customer_groups SET name = 'Everything' WHERE name = 'Partial'",
    "DELETE FROM customer_groups WHERE name = 'Limited'",
    "UPDATE employee_groups SET admin = true WHERE name = 'Subcontractors'",
    "DELETE FROM employee_groups WHERE name = 'Standard'",
    "INSERT INTO customer_groups (name, is_system) VALUES ('Sneaky', true)",
])
async def test_system_groups_cannot_be_changed(conn: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.RaiseError, match="system group"):
        await conn.execute(statement)


async def test_system_groups_have_the_specified_levels(conn: asyncpg.Connection) -> None:
    rows = {r["name"]: dict(r) for r in await conn.fetch("SELECT * FROM customer_groups")}
    full, partial, limited = rows["Full"], rows["Partial"], rows["Limited"]
    assert full["priority"] == "edit" and full["kb"] == "download" and full["quotes"] == "accept"
    assert all(full[c] for c in ("tickets_add", "tickets_edit", "charges", "assets", "asset_config_note",
                                 "history_notes", "contracts", "public_emails", "documents",
                                 "upload_files", "change_password"))
    assert (partial["priority"], partial["ticket_asset"], partial["kb"], partial["quotes"]) == \
        ("view", "view", "download", "view")
    assert not partial["charges"] and not partial["asset_config_note"]
    assert all(partial[c] for c in ("tickets_add", "tickets_edit", "history_notes", "assets", "contracts",
                                    "public_emails", "documents", "upload_files", "change_password"))
    assert limited["tickets_add"] and limited["change_password"] and limited["kb"] == "view"
    assert not any(limited[c] for c in ("tickets_edit", "charges", "assets", "history_notes",
                                        "contracts", "public_emails", "documents", "upload_files"))
    assert (limited["priority"], limited["ticket_asset"], limited["quotes"]) == ("none", "none", "none")


async def test_a_system_group_can_become_the_default(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute("UPDATE customer_groups SET is_default = false WHERE is_default")
        await conn.execute("UPDATE customer_groups SET is_default = true WHERE name = 'Limited'")
    assert await conn.fetchval("SELECT name FROM customer_groups WHERE is_default") == "Limited"


async def test_exactly_one_default_group(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("UPDATE customer_groups SET is_default = true WHERE name = 'Partial'")
    with pytest.raises(asyncpg.RaiseError, match="exactly one"):
        await conn.execute("UPDATE customer_groups SET is_default = false")


async def _employee(conn: asyncpg.Connection, username: str, *, active: bool = True) -> int:
    return await conn.fetchval(
        """INSERT INTO employees (username, full_name, email, group_id, active)
           VALUES ($1, $1, $1 || '@msp.example', (SELECT id FROM employee_groups WHERE name = 'Standard'), $2)
           RETURNING id""", username, active)


async def test_license_seats_are_enforced_by_the_database(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE licenses SET seats = 2")
    await _employee(conn, "a")
    await _employee(conn, "b")
    with pytest.raises(asyncpg.RaiseError, match="2 of 2 seats in use"):
        await _employee(conn, "c")
    spare = await _employee(conn, "d", active=False)
    with pytest.raises(asyncpg.RaiseError, match="no free license seat"):
        await conn.execute("UPDATE employees SET active = true WHERE id = $1", spare)
    # deactivating frees the seat at once
    await conn.execute("UPDATE employees SET active = false WHERE username = 'a'")
    await conn.execute("UPDATE employees SET active = true WHERE id = $1", spare)
    with pytest.raises(asyncpg.RaiseError, match="cannot set 1 seats: 2 seats are in use"):
        await conn.execute("UPDATE licenses SET seats = 1")


async def test_deactivation_ends_sessions(conn: asyncpg.Connection) -> None:
    emp = await _employee(conn, "worker")
    await conn.execute(
        """INSERT INTO sessions (token_hash, employee_id, csrf_token, expires_at)
           VALUES ('\\x01', $1, 'c', now() + interval '1 hour')""", emp)
    await conn.execute("UPDATE employees SET active = false WHERE id = $1", emp)
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 0


async def test_usernames_are_one_namespace(conn: asyncpg.Connection) -> None:
    await _employee(conn, "alice")
    account = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
    with pytest.raises(asyncpg.UniqueViolationError, match="already taken"):
        await conn.execute(
            """INSERT INTO customer_web_users (account_id, group_id, username)
               VALUES ($1, (SELECT id FROM customer_groups WHERE is_default), 'ALICE')""", account)


async def test_an_accepted_quote_stays_accepted(conn: asyncpg.Connection) -> None:
    account = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
    quote = await conn.fetchval(
        """INSERT INTO quotes (account_id, number, title, amount, status, accepted_at)
           VALUES ($1, 'Q-1', 'Laptops', 100, 'accepted', now()) RETURNING id""", account)
    with pytest.raises(asyncpg.RaiseError, match="already accepted"):
        await conn.execute("UPDATE quotes SET status = 'declined', accepted_at = NULL WHERE id = $1", quote)


async def test_a_ticket_asset_must_belong_to_the_ticket_account(conn: asyncpg.Connection) -> None:
    acme = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
    globex = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Globex') RETURNING id")
    asset = await conn.fetchval("INSERT INTO assets (account_id, name) VALUES ($1, 'Server') RETURNING id", globex)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO tickets (account_id, asset_id, description) VALUES ($1, $2, 'x')",
                           acme, asset)


async def test_privilege_changes_bump_the_version_and_notify(conn: asyncpg.Connection, dsn: str) -> None:
    received: list[str] = []
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("portald_privileges", lambda *args: received.append(args[3]))
    before = await conn.fetchval("SELECT version FROM privilege_state")
    await conn.execute("INSERT INTO customer_groups (name) VALUES ('Custom')")
    after = await conn.fetchval("SELECT version FROM privilege_state")
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.01)
    await listener.close()
    assert after == before + 1
    assert received == [str(after)]
