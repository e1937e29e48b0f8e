"""Privileges × routes. For each customer privilege that gates a ticket route or field, a user
whose group has it succeeds (2xx) and one whose group lacks it gets 403 — run for the three
system groups and for a custom group made here; expectations come from the group's row in the
database, not from a table in this file. Then the same for each employee right, switched off
one at a time in a custom employee group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES
from tests.support.api import Api, Reply, demo_ids

# The custom group: a mix no system group has.
CUSTOM_LEVELS = {"tickets_add": False, "tickets_edit": True, "priority": "edit",
                 "ticket_asset": "view", "charges": True, "history_notes": False,
                 "public_emails": True, "upload_files": False, "documents": False}
LOGIN_OF_GROUP = {"Full": "full@acme", "Partial": "partial@acme", "Limited": "limited@acme",
                  "Custom": "limited@acme"}


async def group_levels(conn: asyncpg.Connection, name: str) -> dict[str, str]:
    row = await conn.fetchrow("SELECT * FROM customer_groups WHERE name = $1", name)
    levels = {}
    for identifier, names in CUSTOMER_PRIVILEGES.items():
        value = row[identifier]
        levels[identifier] = (names[1] if value else names[0]) if isinstance(value, bool) else value
    return levels


def has(levels: dict[str, str], identifier: str, level: str) -> bool:
    names = CUSTOMER_PRIVILEGES[identifier]
    return names.index(levels[identifier]) >= names.index(level)


@dataclass
class Check:
    identifier: str
    level: str
    what: str
    run: Callable[[], Awaitable[Reply]]


@pytest.mark.parametrize("group", ["Full", "Partial", "Limited", "Custom"])
async def test_customer_privilege_matrix(users, demo_db, group):
    db = demo_db
    ids = await demo_ids(db)
    if group == "Custom":
        columns = ", ".join(CUSTOM_LEVELS)
        values = ", ".join(f"${i}" for i in range(2, len(CUSTOM_LEVELS) + 2))
        group_id = await db.fetchval(
            f"INSERT INTO customer_groups (name, {columns}) VALUES ($1, {values}) RETURNING id",
            "Custom", *CUSTOM_LEVELS.values())
        await db.execute("UPDATE customer_web_users SET group_id = $1 WHERE username = 'limited@acme'",
                         group_id)
    levels = await group_levels(db, group)
    api = await users.login(LOGIN_OF_GROUP[group])
    main, phones = ids["t_acme_main"], ids["t_acme_phones"]
    firewall = await db.fetchval("SELECT id FROM assets WHERE name = 'ACME-FW'")
    current_priority = await db.fetchval("SELECT priority FROM tickets WHERE id = $1", phones)
    other_priority = "low" if current_priority != "low" else "high"

    checks = [
        Check("tickets_add", "on", "create",
              lambda: api.post("/api/v1/tickets", {"description": "from the matrix"})),
        Check("tickets_edit", "on", "edit description",
              lambda: api.patch(f"/api/v1/tickets/{phones}", {"description": "edited by the matrix"})),
        Check("priority", "edit", "change priority",
              lambda: api.patch(f"/api/v1/tickets/{phones}", {"priority": other_priority})),
        Check("ticket_asset", "edit", "link an asset",
              lambda: api.patch(f"/api/v1/tickets/{phones}", {"asset_id": firewall})),
        Check("charges", "on", "list charges", lambda: api.get(f"/api/v1/tickets/{main}/charges")),
        Check("history_notes", "on", "list notes", lambda: api.get(f"/api/v1/tickets/{main}/notes")),
        Check("history_notes", "on", "add a note",
              lambda: api.post(f"/api/v1/tickets/{main}/notes", {"body": "from the matrix"})),
        Check("public_emails", "on", "list emails", lambda: api.get(f"/api/v1/tickets/{main}/emails")),
        Check("upload_files", "on", "upload", lambda: api.upload(main)),
        Check("documents", "on", "list attachments",
              lambda: api.get(f"/api/v1/tickets/{main}/attachments")),
    ]
    exercised = {c.identifier for c in checks}
    for check in checks:
        allowed = has(levels, check.identifier, check.level)
        reply = await check.run()
        if allowed:
            assert 200 <= reply.status < 300, (group, check.what, reply)
        else:
            assert reply.status == 403, (group, check.what, reply)
            assert reply.body["error"]["code"] == "forbidden"

    # creating with a priority needs tickets_add and priority=edit
    with_priority = await api.post("/api/v1/tickets", {"description": "urgent one", "priority": "urgent"})
    expected = 201 if has(levels, "tickets_add", "on") and has(levels, "priority", "edit") else 403
    assert with_priority.status == expected, (group, with_priority)

    # fields: shown only from `view` up, in the detail and in the list; never the assignee
    ticket = (await api.get(f"/api/v1/tickets/{main}")).body
    listed = next(t for t in (await api.get("/api/v1/tickets", limit=200)).body["items"]
                  if t["id"] == main)
    for shown in (ticket, listed):
        assert ("priority" in shown) == has(levels, "priority", "view"), group
        assert ("asset_id" in shown) == has(levels, "ticket_asset", "view"), group
        assert "assigned_to" not in shown and "contact" not in shown
    exercised |= {"priority", "ticket_asset"}

    # employee-only routes are refused to every customer
    for method, suffix, body in (("POST", "/close", {}),
                                 ("POST", "/charges", {"kind": "expense", "amount": "1"}),
                                 ("POST", "/emails", {"subject": "s", "body": "b"}),
                                 ("GET", "/recipients", None),
                                 ("PUT", "/recipients", {"employee_ids": []})):
        reply = await api.send(method, f"/api/v1/tickets/{main}{suffix}", body)
        assert reply.status == 403, (group, method, suffix, reply)
    # every identifier that gates a ticket route was exercised
    assert exercised == {"tickets_add", "tickets_edit", "priority", "ticket_asset", "charges",
                         "history_notes", "public_emails", "upload_files", "documents"}


# -- employees --------------------------------------------------------------------------------

ACTION_RIGHTS = ("add_notes", "log_charges", "upload_attachments", "close_tickets", "edit_tickets",
                 "create_tickets", "assign_tickets", "file_emails", "edit_recipients")


async def test_employee_rights_matrix(users, demo_db):
    db = demo_db
    ids = await demo_ids(db)
    # every right at its top level (off/on ones are boolean columns); require_2fa is a login
    # policy, not a right over data (tests/integration/test_two_factor.py)
    rights = {r: (True if levels == ("off", "on") else levels[-1])
              for r, levels in EMPLOYEE_PRIVILEGES.items() if r not in ("admin", "require_2fa")}
    columns = ", ".join(rights)
    values = ", ".join(f"${i}" for i in range(2, len(rights) + 2))
    group_id = await db.fetchval(
        f"INSERT INTO employee_groups (name, {columns}) VALUES ($1, {values}) RETURNING id",
        "Matrix", *rights.values())
    # the password of the demo's tech ("demo"), so that no hash is computed here
    await db.execute(
        """INSERT INTO employees (username, full_name, email, group_id, all_accounts, password_hash)
           SELECT 'matrix', 'Mat Rix', 'matrix@msp.example', $1, true, password_hash
             FROM employees WHERE username = 'tech'""", group_id)
    fresh = [r["id"] for r in await db.fetch(
        """INSERT INTO tickets (account_id, description)
           SELECT $1, 'matrix ' || n FROM generate_series(1, 40) n RETURNING id""", ids["acme"])]
    api = await users.login("matrix")
    main = ids["t_acme_main"]
    counter = iter(range(10_000))

    def action(right: str) -> Awaitable[Reply]:
        n = next(counter)
        if right == "add_notes":
            return api.post(f"/api/v1/tickets/{main}/notes", {"body": f"note {n}"})
        if right == "log_charges":
            return api.post(f"/api/v1/tickets/{main}/charges", {"kind": "labor", "hours": "0.25"})
        if right == "upload_attachments":
            return api.upload(main, filename=f"f{n}.txt")
        if right == "close_tickets":
            return api.post(f"/api/v1/tickets/{fresh.pop()}/close", {})
        if right == "edit_tickets":
            return api.patch(f"/api/v1/tickets/{main}", {"description": f"edited {n}"})
        if right == "create_tickets":
            return api.post("/api/v1/tickets", {"account_id": ids["globex"], "description": f"new {n}"})
        if right == "assign_tickets":
            return api.patch(f"/api/v1/tickets/{fresh.pop()}", {"assigned_to": ids["tech"]})
        if right == "file_emails":
            return api.post(f"/api/v1/tickets/{main}/emails", {"subject": f"s{n}", "body": "b"})
        if right == "edit_recipients":
            return api.put(f"/api/v1/tickets/{main}/recipients", {"employee_ids": [ids["tech"]]})
        raise AssertionError(right)

    for right in ACTION_RIGHTS:
        reply = await action(right)
        assert 200 <= reply.status < 300, (right, reply)

    for right in ACTION_RIGHTS:
        # switched off in the database; the next request already sees it (SPEC §5)
        await db.execute(f"UPDATE employee_groups SET {right} = false WHERE id = $1", group_id)
        reply = await action(right)
        assert reply.status == 403 and reply.body["error"]["code"] == "forbidden", (right, reply)
        others = [r for r in ACTION_RIGHTS if r != right]
        assert 200 <= (await action(others[0])).status < 300
        await db.execute(f"UPDATE employee_groups SET {right} = true WHERE id = $1", group_id)

    # closing through a status change needs close_tickets too, with the field named
    await db.execute("UPDATE employee_groups SET close_tickets = false WHERE id = $1", group_id)
    via_status = await api.patch(f"/api/v1/tickets/{fresh.pop()}", {"status": "closed"})
    assert via_status.status == 403 and via_status.body["error"]["field"] == "status"
    assert (await api.patch(f"/api/v1/tickets/{fresh.pop()}", {"status": "waiting"})).status == 200
    # a closing note needs add_notes
    await db.execute("UPDATE employee_groups SET close_tickets = true, add_notes = false WHERE id = $1",
                     group_id)
    noted = await api.post(f"/api/v1/tickets/{fresh[-1]}/close", {"note": "bye"})
    assert noted.status == 403 and noted.body["error"]["field"] == "note"
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", fresh[-1]) == "open"

    # own scope: with ticket_scope=own the same employee reaches no ticket not assigned to them
    await db.execute("UPDATE employee_groups SET ticket_scope = 'own', add_notes = true WHERE id = $1",
                     group_id)
    assert (await api.get(f"/api/v1/tickets/{main}")).status == 404
    assert (await api.post(f"/api/v1/tickets/{main}/notes", {"body": "x"})).status == 404


async def test_subcontractor_creating_for_others_gets_its_ticket_back(users, demo_db):
    """An own-scope employee allowed to create and assign may hand a new ticket to someone
    else: the answer still shows what was created, later reads are 404."""
    db = demo_db
    ids = await demo_ids(db)
    group_id = await db.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, create_tickets, assign_tickets)
           VALUES ('Dispatch', 'own', 'own', true, true) RETURNING id""")
    await db.execute("UPDATE employees SET group_id = $1 WHERE username = 'sub1'", group_id)
    sub1: Api = await users.login("sub1")
    # Globex is outside sub1's accounts: the same 422 as an account that does not exist
    outside = await sub1.post("/api/v1/tickets", {"account_id": ids["globex"], "description": "x"})
    missing = await sub1.post("/api/v1/tickets", {"account_id": 10**12, "description": "x"})
    assert outside.status == missing.status == 422 and outside.body == missing.body
    created = await sub1.post("/api/v1/tickets", {"account_id": ids["acme"], "description": "for tech",
                                                  "assigned_to": ids["tech"]})
    assert created.status == 201 and created.body["assigned_to"] == ids["tech"]
    assert (await sub1.get(f"/api/v1/tickets/{created.body['id']}")).status == 404
