"""The one small, exact data set of the tests, written with plain SQL as any program writing
the database would (the demo data set, daemon/dev/demo_data.py, is the other one).

People: accounts Acme, Globex, Initech; customer web users full@acme (Full), limited@acme
(Limited), custom@acme (group `Custom`, a copy of Full) and full@globex; employees admin
(Administrators) and tech (Standard), both for all accounts, sub1 (Subcontractors, Acme), sub2
(Subcontractors, Globex and Initech) and gone (Standard, all accounts, inactive), each
"<Name> Person" at <name>@msp.test.

Tickets (left out with `tickets=False`, for tests that count the mail of their own tickets):
per account, assigned to the subcontractor, to tech or to nobody; and on t_acme_sub1 children
by sub1, by tech and by the customer, public and not; documents, KB articles and quotes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from tests.support.db import create_clone, drop

SEED_PASSWORD = "correct horse battery"

WEB_USERS = (("full@acme", "acme", "g_full"), ("limited@acme", "acme", "g_limited"),
             ("custom@acme", "acme", "g_custom"), ("full@globex", "globex", "g_full"))
# username, group, all accounts, accounts, active
EMPLOYEES = (("admin", "Administrators", True, (), True), ("tech", "Standard", True, (), True),
             ("sub1", "Subcontractors", False, ("acme",), True),
             ("sub2", "Subcontractors", False, ("globex", "initech"), True),
             ("gone", "Standard", True, (), False))
TICKETS = (("t_acme_sub1", "acme", "sub1"), ("t_acme_tech", "acme", "tech"),
           ("t_acme_none", "acme", None), ("t_globex_sub2", "globex", "sub2"),
           ("t_globex_sub1", "globex", "sub1"), ("t_initech_sub2", "initech", "sub2"))


class Seed(dict[str, Any]):
    """Ids of the seeded rows by name: seed["acme"], seed["sub1"], seed["t_acme_sub1"], …"""


async def seed(conn: asyncpg.Connection, password_hash: str | None = None, *,
               tickets: bool = True) -> Seed:
    """The data set (see the module docstring); every login has `password_hash`, if given."""
    s = Seed()
    await _people(conn, s, password_hash)
    if tickets:
        await _tickets(conn, s)
        await _children(conn, s)
        await _account_data(conn, s)
    return s


async def _people(conn: asyncpg.Connection, s: Seed, password_hash: str | None) -> None:
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
    for username, account, group in WEB_USERS:
        s[username] = await conn.fetchval(
            """INSERT INTO customer_web_users (account_id, group_id, username, full_name, password_hash)
               VALUES ($1, $2, $3, $4, $5) RETURNING id""", s[account], s[group], username,
            username.split("@")[0].title() + " User", password_hash)
    groups = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM employee_groups")}
    s["eg_admin"], s["eg_standard"], s["eg_sub"] = (
        groups["Administrators"], groups["Standard"], groups["Subcontractors"])
    for username, group, all_accounts, accounts, active in EMPLOYEES:
        s[username] = await conn.fetchval(
            """INSERT INTO employees (username, full_name, email, group_id, all_accounts, active,
                                      password_hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
            username, f"{username.capitalize()} Person", f"{username}@msp.test", groups[group],
            all_accounts, active, password_hash)
        for a in accounts:
            await conn.execute("INSERT INTO employee_accounts VALUES ($1, $2)", s[username], s[a])


async def _tickets(conn: asyncpg.Connection, s: Seed) -> None:
    for name, account, assigned in TICKETS:
        s[name] = await conn.fetchval(
            "INSERT INTO tickets (account_id, description, assigned_to) VALUES ($1, $2, $3) RETURNING id",
            s[account], f"ticket {name}", s[assigned] if assigned else None)


async def _children(conn: asyncpg.Connection, s: Seed) -> None:
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
    s["blob"] = await conn.fetchval("INSERT INTO blobs (data) VALUES ('x') RETURNING id")
    for key, by, public in (("a_public_sub1", "sub1", True), ("a_private_tech", "tech", False)):
        s[key] = await conn.fetchval(
            """INSERT INTO attachments (ticket_id, filename, size, blob_id, is_public, uploaded_by_employee)
               VALUES ($1, $2, 1, $3, $4, $5) RETURNING id""", t, f"{key}.txt", s["blob"], public, s[by])


async def _account_data(conn: asyncpg.Connection, s: Seed) -> None:
    for key, account, public in (("d_acme_public", "acme", True), ("d_acme_private", "acme", False),
                                 ("d_globex_public", "globex", True)):
        s[key] = await conn.fetchval(
            """INSERT INTO documents (account_id, title, filename, size, blob_id, is_public)
               VALUES ($1, $2, $3, 1, $4, $5) RETURNING id""", s[account], key, f"{key}.txt",
            s["blob"], public)
    for key, public in (("kb_public", True), ("kb_internal", False)):
        s[key] = await conn.fetchval(
            "INSERT INTO kb_articles (title, is_public) VALUES ($1, $2) RETURNING id", key, public)
    for key, account in (("q_acme", "acme"), ("q_globex", "globex")):
        s[key] = await conn.fetchval(
            "INSERT INTO quotes (account_id, number, title, amount) VALUES ($1, $2, $3, 100) RETURNING id",
            s[account], key.upper(), key)


@contextlib.asynccontextmanager
async def seeded_database(server_dsn: str, template_dsn: str, password_hash: str,
                          label: str) -> AsyncIterator[tuple[str, asyncpg.Connection, Seed]]:
    """A seeded database shared by the read-only tests of one module:
    `async with seeded_database(pg_server, template_dsn, hash, "label") as (dsn, conn, seed)`."""
    dsn = await create_clone(server_dsn, template_dsn, f"portald_{label}_{os.getpid()}")
    conn = await asyncpg.connect(dsn)
    try:
        yield dsn, conn, await seed(conn, password_hash)
    finally:
        await conn.close()
        await drop(server_dsn, dsn)
