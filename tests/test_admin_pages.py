"""The admin pages (/admin/…) against the real demo data.

The pages must do exactly what `portald admin …` does: every action is done once through the
pages on one demo clone and once through the CLI (daemon.__main__.main) on a second clone, and
after each step the two databases must hold the same rows and the same audit entries (ids of
new rows agree because both clones start from the same sequences; timestamps, password hashes
and the actor's name are left out). Everyone but an administrator gets 404 on every admin route.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from collections.abc import Awaitable, Callable
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from multidict import MultiDict

from daemon.access.scope import CUSTOMER_IDENTIFIERS, EMPLOYEE_RIGHTS
from daemon.cli import main
from daemon.passwords import verify_password
from tests.conftest import database_fingerprint, login_as, write_test_config
from web.routes import ROUTES

DEMO_PASSWORD = "demo"
ADMIN_ROUTES = [r for r in ROUTES if r.path == "/admin" or r.path.startswith("/admin/")]
# the tables an admin action may change, and what of them is not compared
COMPARED_TABLES = ("accounts", "customer_groups", "customer_web_users", "employees",
                   "employee_groups", "employee_accounts", "employee_mail_settings", "licenses",
                   "outbox")
SESSION_ACTIONS = ("login", "logout", "login_failed")


# -- helpers --------------------------------------------------------------------------------


def _stable(value: Any) -> Any:
    """A row or audit payload without what differs between two equal runs: timestamps (keys
    ending in _at) and password hashes (kept as whether one is set)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "at" or k.endswith("_at"):
                continue
            if k == "password_hash":
                out["has_password_hash"] = v is not None
                continue
            out[k] = _stable(v)
        return out
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def state(dsn: str, *, actors_after: int = 0) -> dict[str, Any]:
    """What an admin action can change, comparable across two clones; `audit_actors`: who
    wrote the audit rows after id `actors_after`. One round trip."""
    tables = " UNION ALL ".join(
        f"SELECT '{t}' AS t, to_jsonb(x)::text AS j FROM {t} x" for t in COMPARED_TABLES)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"""{tables}
                UNION ALL
                SELECT 'audit_log', json_build_array(id, action, target, before, after)::text
                  FROM audit_log WHERE action <> ALL($1::text[])
                UNION ALL
                SELECT DISTINCT 'audit_actors', actor FROM audit_log
                 WHERE action <> ALL($1::text[]) AND id > $2""",
            list(SESSION_ACTIONS), actors_after)
    finally:
        await conn.close()
    snapshot: dict[str, Any] = {t: [] for t in (*COMPARED_TABLES, "audit_log", "audit_actors")}
    audit: list[tuple[int, Any]] = []
    for r in rows:
        if r["t"] == "audit_actors":
            snapshot["audit_actors"].append(r["j"])
        elif r["t"] == "audit_log":
            row_id, action, target, before, after = json.loads(r["j"])
            audit.append((row_id, (action, target, _stable(before), _stable(after))))
        else:
            snapshot[r["t"]].append(json.dumps(_stable(json.loads(r["j"])), sort_keys=True))
    for t in COMPARED_TABLES:
        snapshot[t].sort()
    snapshot["audit_actors"].sort()
    snapshot["audit_log"] = [entry for _, entry in sorted(audit, key=lambda a: a[0])]
    return snapshot


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def execute(dsn: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


class Cli:
    """`portald admin …` on the twin database, run as the CLI runs (its own event loop, in a
    thread so that this test's loop keeps serving the pages)."""

    def __init__(self, cfg_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cfg_path, self.monkeypatch = cfg_path, monkeypatch

    async def __call__(self, *argv: str, stdin: str | None = None) -> None:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        code = await asyncio.to_thread(main, ["admin", *argv, "--config", str(self.cfg_path)])
        assert code == 0, f"portald admin {' '.join(argv)} exited {code}"


async def post(client, path: str, csrf: str, data: Any = ()) -> aiohttp.ClientResponse:
    form = MultiDict(data)
    form.add("csrf_token", csrf)
    return await client.post(path, data=form, allow_redirects=False)


async def page(client, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, (path, resp.status, await resp.text())
    return await resp.text()


def text_of(html: str) -> str:
    """The visible words of a page, roughly: tags dropped, entities decoded, spaces folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def ids(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        found = {f"account:{r['name']}": r["id"] for r in await conn.fetch("SELECT id, name FROM accounts")}
        found.update({f"group:{r['name']}": r["id"] for r in await conn.fetch("SELECT id, name FROM customer_groups")})
        found.update({f"egroup:{r['name']}": r["id"] for r in await conn.fetch("SELECT id, name FROM employee_groups")})
        found.update({f"employee:{r['username']}": r["id"] for r in await conn.fetch("SELECT id, username FROM employees")})
        return found
    finally:
        await conn.close()


async def group_levels(dsn: str, table: str, name: str, columns: dict[str, tuple[str, ...]]) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(f"SELECT * FROM {table} WHERE name = $1", name)
    finally:
        await conn.close()
    return {c: ("on" if row[c] else "off") if isinstance(row[c], bool) else row[c] for c in columns}


def levels_form(levels: dict[str, str], known: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """What a browser sends for the level controls: a select's value, or for a checkbox the
    hidden "off" and, when ticked, the "on" after it."""
    form: list[tuple[str, str]] = []
    for identifier, level in levels.items():
        if known[identifier] == ("off", "on"):
            form.append((identifier, "off"))
            if level == "on":
                form.append((identifier, "on"))
        else:
            form.append((identifier, level))
    return form


@pytest.fixture
def cli(demo_dsn_twin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    cfg = write_test_config(tmp_path, demo_dsn_twin, smtp_port=8025)
    assert cfg.path is not None
    return Cli(cfg.path, monkeypatch)


# -- pages and CLI agree --------------------------------------------------------------------


async def test_every_admin_page_action_matches_its_cli_twin(demo_client, demo_dsn, demo_dsn_twin,
                                                            cli: Cli) -> None:
    client = demo_client
    csrf = await login_as(client, "admin", DEMO_PASSWORD)
    assert await state(demo_dsn) == await state(demo_dsn_twin)
    # the demo's own audit rows end here (the admin's login comes after, on the pages' side)
    last_audit = await fetchval(demo_dsn_twin, "SELECT max(id) FROM audit_log")
    known = await ids(demo_dsn)
    acme = known["account:Acme"]
    shown_passwords: list[str] = []

    async def expect_redirect(resp: aiohttp.ClientResponse, where: str | None = None) -> None:
        body = await resp.text()
        assert resp.status == 303, (resp.status, text_of(body)[:500])
        if where:
            assert resp.headers["Location"].split("#")[0] == where

    async def expect_password_page(resp: aiohttp.ClientResponse) -> None:
        body = await resp.text()
        assert resp.status == 200, text_of(body)[:500]
        assert resp.headers["Cache-Control"] == "private, no-store"
        match = re.search(r'<code id="generated-password"[^>]*>([^<]+)</code>', body)
        assert match, "the generated password is shown"
        shown_passwords.append(unescape(match.group(1)))

    async def levels_post(path: str, table: str, name: str, known_levels: dict[str, tuple[str, ...]],
                          changes: dict[str, str]) -> aiohttp.ClientResponse:
        current = await group_levels(demo_dsn, table, name, known_levels)
        return await post(client, path, csrf, levels_form({**current, **changes}, known_levels))

    # (what the step is, the page action, the CLI's arguments, its stdin)
    Step = tuple[str, Callable[[], Awaitable[None]], tuple[str, ...], str | None]

    async def by_id(key: str) -> int:
        return (await ids(demo_dsn))[key]

    def act(path: str | Callable[[], Awaitable[str]], data: Any = (), *,
            where: str | None = None, password: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            target = path if isinstance(path, str) else await path()
            resp = await post(client, target, csrf, data)
            if password:
                await expect_password_page(resp)
            else:
                await expect_redirect(resp, where)
        return run

    async def group_path(name: str, action: str, *, employee: bool = False) -> str:
        key = f"{'egroup' if employee else 'group'}:{name}"
        return f"/admin/{'employee-groups' if employee else 'groups'}/{await by_id(key)}/{action}"

    def levels_step(name: str, changes: dict[str, str], *, employee: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            path = await group_path(name, "levels", employee=employee)
            resp = await levels_post(path, "employee_groups" if employee else "customer_groups", name,
                                     EMPLOYEE_RIGHTS if employee else CUSTOMER_IDENTIFIERS, changes)
            await expect_redirect(resp)
        return run

    def emp(username: str, action: str) -> Callable[[], Awaitable[str]]:
        async def path() -> str:
            return f"/admin/employees/{await by_id('employee:' + username)}/{action}"
        return path

    mail_form = [("alert_assigned", "on"), ("alert_created", "on"), ("recv_note", "on"),
                 ("recv_status", "on"), ("recv_closed", "on"), ("recv_email", "on"),
                 ("recv_charge", "on")]

    steps: list[Step] = [
        ("account create",
         act("/admin/accounts", {"name": "Umbrella", "contact_name": "Alice Wong",
                                 "email": "it@umbrella.example"}),
         ("account", "create", "Umbrella", "--contact", "Alice Wong", "--email", "it@umbrella.example"), None),
        ("group create --copy-from",
         act("/admin/groups", {"name": "Support", "copy_from": "Partial"}),
         ("group", "create", "Support", "--copy-from", "Partial"), None),
        ("group set",
         levels_step("Support", {"history_notes": "off", "quotes": "accept", "priority": "edit"}),
         ("group", "set", "Support", "history_notes=off", "quotes=accept", "priority=edit"), None),
        ("group set, no change", levels_step("Support", {}),
         ("group", "set", "Support", "quotes=accept"), None),
        ("group rename",
         act(lambda: group_path("Support", "rename"), {"new_name": "Helpdesk"}),
         ("group", "rename", "Support", "Helpdesk"), None),
        ("group default", act(lambda: group_path("Helpdesk", "default")),
         ("group", "default", "Helpdesk"), None),
        ("group create (empty)", act("/admin/groups", {"name": "Temp", "copy_from": ""}),
         ("group", "create", "Temp"), None),
        ("group delete", act(lambda: group_path("Temp", "delete"), where="/admin/groups"),
         ("group", "delete", "Temp"), None),
        ("webuser create (default group, password)",
         act(f"/admin/accounts/{acme}/users",
             {"username": "new@acme", "full_name": "New Person", "email": "new@acme.example",
              "group": "Helpdesk", "password": "generate"}, password=True),
         ("webuser", "create", "--account", "Acme", "--username", "new@acme", "--name", "New Person",
          "--email", "new@acme.example", "--password-stdin"), "a-password-of-the-cli\n"),
        ("webuser create (no password)",
         act(f"/admin/accounts/{acme}/users",
             {"username": "nopw@acme", "group": "Limited", "password": "none"},
             where=f"/admin/accounts/{acme}"),
         ("webuser", "create", "--account", "Acme", "--username", "nopw@acme", "--group", "Limited"), None),
        ("webuser set-group",
         act(f"/admin/accounts/{acme}/users/group", {"username": "new@acme", "group": "Full"}),
         ("webuser", "set-group", "new@acme", "Full"), None),
        ("webuser deactivate",
         act(f"/admin/accounts/{acme}/users/active", {"username": "partial@acme", "active": "off"}),
         ("webuser", "deactivate", "partial@acme"), None),
        ("webuser activate",
         act(f"/admin/accounts/{acme}/users/active", {"username": "partial@acme", "active": "on"}),
         ("webuser", "activate", "partial@acme"), None),
        ("webuser set-password",
         act(f"/admin/accounts/{acme}/users/password", {"username": "limited@acme"}, password=True),
         ("webuser", "set-password", "limited@acme", "--password-stdin"), "another-cli-password\n"),
        ("employee create",
         act("/admin/employees", {"username": "sub3", "full_name": "Sub Three",
                                  "email": "sub3@msp.example", "group": "Subcontractors",
                                  "hourly_rate": "55.5", "web_access": "on", "password": "generate"},
             password=True),
         ("employee", "create", "--username", "sub3", "--name", "Sub Three", "--email",
          "sub3@msp.example", "--group", "Subcontractors", "--rate", "55.5", "--password-stdin"),
         "sub3-cli-password\n"),
        ("employee create (no web access)",
         act("/admin/employees", {"username": "clerk", "full_name": "Back Office",
                                  "email": "clerk@msp.example", "group": "Standard",
                                  "hourly_rate": "0", "password": "none"}),
         ("employee", "create", "--username", "clerk", "--name", "Back Office", "--email",
          "clerk@msp.example", "--no-web-access"), None),
        ("employee set-group", act(emp("sub3", "group"), {"group": "Standard"}),
         ("employee", "set-group", "sub3", "Standard"), None),
        ("employee access --accounts",
         act(emp("sub3", "access"), [("scope", "some"), ("accounts", "Acme"), ("accounts", "Initech")]),
         ("employee", "access", "sub3", "--accounts", "Acme,Initech"), None),
        ("employee access --all", act(emp("sub3", "access"), [("scope", "all"), ("accounts", "Acme")]),
         ("employee", "access", "sub3", "--all"), None),
        ("employee access --none", act(emp("sub3", "access"), [("scope", "some")]),
         ("employee", "access", "sub3", "--none"), None),
        ("employee deactivate",
         act(emp("sub2", "active"), {"active": "off", "back": "list"}, where="/admin/employees"),
         ("employee", "deactivate", "sub2"), None),
        ("employee activate", act(emp("sub2", "active"), {"active": "on"}),
         ("employee", "activate", "sub2"), None),
        ("employee set-password", act(emp("sub3", "password"), password=True),
         ("employee", "set-password", "sub3", "--password-stdin"), "yet-another-cli-password\n"),
        ("employee set-rate", act(emp("sub3", "rate"), {"hourly_rate": "72.50"}),
         ("employee", "set-rate", "sub3", "72.50"), None),
        ("employee mail-settings", act(emp("sub1", "mail"), mail_form),
         ("employee", "mail-settings", "sub1", "alert_assigned=on", "alert_created=on",
          "alert_reminder=off", "alert_digest=off", "recv_note=on", "recv_status=on",
          "recv_closed=on", "recv_email=on", "recv_charge=on", "recv_own_changes=off"), None),
        ("license set", act("/admin/license", {"seats": "12"}, where="/admin/employees"),
         ("license", "set", "12"), None),
        ("employee-group create",
         act("/admin/employee-groups", {"name": "Partners", "copy_from": "Subcontractors"}),
         ("employee-group", "create", "Partners", "--copy-from", "Subcontractors"), None),
        ("employee-group set", levels_step("Partners", {"close_tickets": "off", "see_others": "all"},
                                           employee=True),
         ("employee-group", "set", "Partners", "close_tickets=off", "see_others=all"), None),
        ("employee-group rename",
         act(lambda: group_path("Partners", "rename", employee=True), {"new_name": "Vendors"}),
         ("employee-group", "rename", "Partners", "Vendors"), None),
        ("employee-group delete",
         act(lambda: group_path("Vendors", "delete", employee=True), where="/admin/employee-groups"),
         ("employee-group", "delete", "Vendors"), None),
    ]

    for what, page_action, argv, stdin in steps:
        await page_action()
        await cli(*argv, stdin=stdin)
        on_pages = await state(demo_dsn, actors_after=last_audit)
        by_cli = await state(demo_dsn_twin, actors_after=last_audit)
        for key in on_pages:
            if key != "audit_actors":
                assert on_pages[key] == by_cli[key], f"{what}: {key} differs"
        assert on_pages["audit_actors"] == ["employee:admin"], what
        assert len(by_cli["audit_actors"]) == 1 and by_cli["audit_actors"][0].startswith("cli:"), what

    # the generated passwords work: each is the one now hashed for its user
    hashes = [await fetchval(demo_dsn, "SELECT password_hash FROM customer_web_users WHERE username = $1", u)
              for u in ("new@acme", "limited@acme")]
    hashes.append(await fetchval(demo_dsn, "SELECT password_hash FROM employees WHERE username = 'sub3'"))
    # sub3's first password was replaced by the reset: the reset's is the one that works
    assert verify_password(hashes[0], shown_passwords[0])
    assert verify_password(hashes[1], shown_passwords[1])
    assert verify_password(hashes[2], shown_passwords[3]) and not verify_password(hashes[2], shown_passwords[2])
    assert len(set(shown_passwords)) == len(shown_passwords)


async def test_outbox_retry_matches_the_cli(demo_client, demo_dsn, demo_dsn_twin, cli: Cli) -> None:
    insert = """INSERT INTO outbox (event, ticket_id, employee_id, message_id, status, attempts,
                                    last_code, last_error)
                SELECT 'note', (SELECT min(id) FROM tickets), (SELECT id FROM employees WHERE username = 'sub1'),
                       '<failed-1@portal.test>', 'failed', 3, 550, '5.1.1 mailbox unavailable'
                RETURNING id"""
    failed_id = await fetchval(demo_dsn, insert)
    assert await fetchval(demo_dsn_twin, insert) == failed_id
    csrf = await login_as(demo_client, "admin", DEMO_PASSWORD)

    listing = text_of(await page(demo_client, "/admin/outbox?status=failed"))
    assert f"#{failed_id}" in listing and "550 5.1.1 mailbox unavailable" in listing
    resp = await post(demo_client, f"/admin/outbox/{failed_id}/retry", csrf, {"back": "/admin/outbox?status=failed"})
    assert resp.status == 303 and resp.headers["Location"] == "/admin/outbox?status=failed"
    await cli("outbox", "retry", str(failed_id))
    assert (await state(demo_dsn))["outbox"] == (await state(demo_dsn_twin))["outbox"]
    assert (await state(demo_dsn))["audit_log"] == (await state(demo_dsn_twin))["audit_log"]
    # queued again after 3 attempts: shown as retrying, with the server's last answer kept
    retrying = text_of(await page(demo_client, "/admin/outbox?status=retrying"))
    assert f"#{failed_id}" in retrying and "mailbox unavailable" in retrying
    assert f"#{failed_id}" not in text_of(await page(demo_client, "/admin/outbox?status=failed"))
    # a second retry is refused the way the CLI refuses it, beside the button
    again = await post(demo_client, f"/admin/outbox/{failed_id}/retry", csrf)
    assert again.status == 422
    assert "only failed mail can be retried" in text_of(await again.text())


async def test_ticket_mail_page_shows_each_mail_and_its_delivery(demo_client, demo_dsn) -> None:
    ticket = await fetchval(demo_dsn, "SELECT min(id) FROM tickets")
    conn = await asyncpg.connect(demo_dsn)
    try:
        sub1 = await conn.fetchval("SELECT id FROM employees WHERE username = 'sub1'")
        for n, (status, attempts, code, error) in enumerate(
                [("sent", 1, None, None), ("queued", 2, 451, "4.7.1 try again later"),
                 ("failed", 1, 552, "5.2.2 mailbox full")]):
            await conn.execute(
                """INSERT INTO outbox (event, ticket_id, employee_id, message_id, status, attempts,
                                       last_code, last_error, sent_at)
                   VALUES ('status', $1, $2, $3, $4, $5, $6, $7,
                           CASE WHEN $4 = 'sent' THEN now() END)""",
                ticket, sub1, f"<m{n}@portal.test>", status, attempts, code, error)
    finally:
        await conn.close()
    await login_as(demo_client, "admin", DEMO_PASSWORD)
    text = text_of(await page(demo_client, f"/admin/tickets/{ticket}/mail"))
    assert "sent" in text and "retrying" in text and "451 4.7.1 try again later" in text
    assert "552 5.2.2 mailbox full" in text and "Retry mail" in text
    lookup = await demo_client.get(f"/admin/tickets?id={ticket}", allow_redirects=False)
    assert lookup.status == 303 and lookup.headers["Location"] == f"/admin/tickets/{ticket}/mail"


# -- who may see the admin pages ------------------------------------------------------------


def _concrete(path: str) -> str:
    return re.sub(r"\{id(:[^}]*)?\}", "1", path)


async def test_admin_routes_are_404_for_everyone_but_administrators(demo_client, demo_dsn) -> None:
    client = demo_client
    assert len(ADMIN_ROUTES) >= 30
    # an administrator reaches every page (so a 404 below is not a broken route)
    await login_as(client, "admin", DEMO_PASSWORD)
    for route in ADMIN_ROUTES:
        if route.method == "GET" and "{" not in route.path and route.path != "/admin/tickets":
            assert (await client.get(route.path)).status == 200, route.path
    before = await database_fingerprint(demo_dsn)
    unknown = await client.get("/admin-nothing-here")
    assert unknown.status == 404
    for username in ("tech", "sub1", "full@acme", "partial@acme", "limited@acme", "full@globex"):
        client.session.cookie_jar.clear()
        csrf = await login_as(client, username, DEMO_PASSWORD)
        for route in ADMIN_ROUTES:
            path = _concrete(route.path)
            if route.method == "POST":
                # a well-formed post with the user's own CSRF token: refused for who they are
                resp = await post(client, path, csrf, {"name": "X", "username": "tech",
                                                       "active": "off", "seats": "0"})
            else:
                resp = await client.get(path, allow_redirects=False)
            assert resp.status == 404, (username, route.method, path, resp.status)
            # exactly what an unknown address answers
            assert await resp.text() == await unknown.text(), (username, path)
        # nothing else shows the way in
        assert 'href="/admin"' not in await (await client.get("/")).text()
    after = await database_fingerprint(demo_dsn)
    changed = {t for t in before if before[t] != after[t]}
    assert changed <= {"sessions", "audit_log"}, changed  # the logins themselves, nothing else



async def test_anonymous_visitors_are_sent_to_log_in(demo_client) -> None:
    resp = await demo_client.get("/admin/groups", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login?next=/admin/groups"


# -- live privileges ------------------------------------------------------------------------


async def test_a_level_changed_in_the_grid_reaches_a_logged_in_customer_at_once(
        demo_client, demo_dsn) -> None:
    admin_client = demo_client
    csrf = await login_as(admin_client, "admin", DEMO_PASSWORD)
    # a custom group, a copy of Full, for partial@acme
    resp = await post(admin_client, "/admin/groups", csrf, {"name": "Acme staff", "copy_from": "Full"})
    assert resp.status == 303
    group_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    acme = (await ids(demo_dsn))["account:Acme"]
    resp = await post(admin_client, f"/admin/accounts/{acme}/users/group", csrf,
                      {"username": "partial@acme", "group": "Acme staff"})
    assert resp.status == 303

    # the customer logs in once, in a browser of their own
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as customer:
        login = await customer.post(admin_client.make_url("/api/v1/login"),
                                    json={"username": "partial@acme", "password": DEMO_PASSWORD})
        assert login.status == 200

        async def me() -> dict[str, str]:
            resp = await customer.get(admin_client.make_url("/api/v1/me"))
            assert resp.status == 200
            return (await resp.json())["privileges"]

        assert (await me())["charges"] == "on" and (await me())["quotes"] == "accept"
        ticket = await fetchval(demo_dsn, "SELECT min(t.id) FROM tickets t JOIN accounts a "
                                          "ON a.id = t.account_id WHERE a.name = 'Acme'")
        charges = admin_client.make_url(f"/api/v1/tickets/{ticket}/charges")
        assert (await customer.get(charges)).status == 200

        # the admin unticks charges and lowers quotes in the grid
        current = await group_levels(demo_dsn, "customer_groups", "Acme staff", CUSTOMER_IDENTIFIERS)
        form = levels_form({**current, "charges": "off", "quotes": "view"}, CUSTOMER_IDENTIFIERS)
        resp = await post(admin_client, f"/admin/groups/{group_id}/levels", csrf, [*form, ("back", "grid")])
        assert resp.status == 303 and resp.headers["Location"] == f"/admin/groups#group-{group_id}"
        grid = text_of(await page(admin_client, "/admin/groups"))
        assert "live for logged-in users" in grid and "restart a" not in grid.lower()
        assert "Saved \"Acme staff\": charges off, quotes view." in grid

        # the customer's very next request, same session, no new login
        assert (await me())["charges"] == "off" and (await me())["quotes"] == "view"
        assert (await customer.get(charges)).status == 403
        # and back on
        form = levels_form({**current, "quotes": "view"}, CUSTOMER_IDENTIFIERS)
        assert (await post(admin_client, f"/admin/groups/{group_id}/levels", csrf, form)).status == 303
        assert (await me())["charges"] == "on"
        assert (await customer.get(charges)).status == 200


# -- validation -----------------------------------------------------------------------------


def _beside(body: str, key: str, says: str) -> None:
    """The reason sits in the element the field points at with aria-describedby."""
    error_id = "err-" + key.replace(".", "-").replace("@", "-")
    assert f'aria-describedby="{error_id}"' in body or f'aria-describedby="username-hint {error_id}"' in body, key
    match = re.search(rf'<p class="field-error" id="{re.escape(error_id)}" role="alert">([^<]*)</p>', body)
    assert match, f"no error element for {key}"
    assert says in unescape(match.group(1)), (says, match.group(1))


async def test_refused_forms_answer_422_with_the_reason_beside_the_field(demo_client, demo_dsn) -> None:
    client = demo_client
    csrf = await login_as(client, "admin", DEMO_PASSWORD)
    known = await ids(demo_dsn)
    acme, sub2 = known["account:Acme"], known["employee:sub2"]
    before = await database_fingerprint(demo_dsn)

    async def refused(path: str, data: Any, key: str, says: str, keeps: str | None = None) -> str:
        resp = await post(client, path, csrf, data)
        body = await resp.text()
        assert resp.status == 422, (path, resp.status, text_of(body)[:300])
        _beside(body, key, says)
        if keeps is not None:
            assert f'value="{keeps}"' in body, f"{path}: the input {keeps!r} is kept"
        return body

    await refused("/admin/groups", {"name": "  ", "copy_from": ""}, "create.name", "must not be empty")
    await refused("/admin/groups", {"name": "Full", "copy_from": ""}, "create.name",
                  'customer group "Full" already exists', keeps="Full")
    await refused("/admin/groups", {"name": "Fresh", "copy_from": "Nope"}, "create.copy_from",
                  'unknown customer group "Nope"', keeps="Fresh")
    body = await refused(f"/admin/accounts/{acme}/users",
                         {"username": "bad name!", "full_name": "Kept Name", "password": "none",
                          "group": "Limited"}, "create.username", "invalid username", keeps="Kept Name")
    assert '<option value="Limited" selected>' in body
    await refused(f"/admin/accounts/{acme}/users", {"username": "full@acme", "password": "none"},
                  "create.username", 'username "full@acme" is already taken')
    await refused(f"/admin/accounts/{acme}/users", {"username": "ok@acme", "email": "nope", "password": "none"},
                  "create.email", "invalid email address")
    await refused("/admin/employees", {"username": "x1", "full_name": "X", "email": "x@y.z",
                                       "hourly_rate": "cheap", "password": "none"},
                  "create.hourly_rate", "invalid hourly rate", keeps="cheap")
    await refused("/admin/license", {"seats": "1"}, "license.seats", "seats are in use", keeps="1")
    await refused("/admin/license", {"seats": "many"}, "license.seats", "give a whole number")
    await refused(f"/admin/employees/{sub2}/rate", {"hourly_rate": "-3"}, "rate.hourly_rate",
                  "between 0 and")
    await refused(f"/admin/employees/{sub2}/access", [("scope", "some"), ("accounts", "Nowhere")],
                  "access.accounts", 'unknown account "Nowhere"')
    full = known["group:Full"]
    resp = await post(client, f"/admin/groups/{full}/levels", csrf, [("charges", "off")])
    assert resp.status == 422 and "is a system group and cannot be modified" in text_of(await resp.text())
    limited = known["group:Limited"]
    # a group still held by users: the reason says how many
    custom = await post(client, "/admin/groups", csrf, {"name": "Held", "copy_from": ""})
    held = int(custom.headers["Location"].rsplit("/", 1)[1])
    assert (await post(client, f"/admin/accounts/{acme}/users/group", csrf,
                       {"username": "limited@acme", "group": "Held"})).status == 303
    await refused(f"/admin/groups/{held}/delete", {}, "delete", 'is assigned to 1 user')
    resp = await post(client, f"/admin/groups/{limited}/delete", csrf)
    assert resp.status == 422 and "is a system group and cannot be deleted" in text_of(await resp.text())
    # no free seat: the error is shown beside the employee's activate button
    assert (await post(client, f"/admin/employees/{sub2}/active", csrf, {"active": "off"})).status == 303
    in_use = await fetchval(demo_dsn, "SELECT seats_in_use()")
    assert (await post(client, "/admin/license", csrf, {"seats": str(in_use)})).status == 303
    body = await refused(f"/admin/employees/{sub2}/active", {"active": "on", "back": "list"},
                         "active.sub2", "no free license seat")
    assert f"{in_use} of {in_use} seats in use" in text_of(body)

    # GET forms too: explain and the audit filter
    resp = await client.get("/admin/explain?user=nobody&ticket=1")
    assert resp.status == 422
    _beside(await resp.text(), "explain.user", "no customer web user or employee named 'nobody'")
    resp = await client.get("/admin/explain?user=sub1&ticket=999999")
    assert resp.status == 422
    _beside(await resp.text(), "explain.ticket", "no ticket 999999")
    resp = await client.get("/admin/audit?from=yesterday")
    assert resp.status == 422
    _beside(await resp.text(), "filter.from", "is not a date")

    after = await database_fingerprint(demo_dsn)
    changed = {t for t in before if before[t] != after[t]}
    # only the deliberate changes above (group Held, limited@acme's group, sub2, seats)
    assert changed <= {"customer_groups", "customer_web_users", "employees", "licenses",
                       "audit_log", "privilege_state", "sessions"}, changed


async def test_forms_without_the_csrf_token_are_refused(demo_client, demo_dsn) -> None:
    await login_as(demo_client, "admin", DEMO_PASSWORD)
    before = await database_fingerprint(demo_dsn)
    resp = await demo_client.post("/admin/groups", data={"name": "Sneaky"}, allow_redirects=False)
    assert resp.status == 403
    assert await database_fingerprint(demo_dsn) == before


# -- the read-only pages --------------------------------------------------------------------


async def test_group_grid_marks_system_and_default_groups(demo_client, demo_dsn) -> None:
    await login_as(demo_client, "admin", DEMO_PASSWORD)
    body = await page(demo_client, "/admin/groups")
    for identifier in CUSTOMER_IDENTIFIERS:
        assert f"<code>{identifier}</code>" in body
    # system groups are read-only: no control of theirs is tied to a levels form
    full = (await ids(demo_dsn))["group:Full"]
    assert f'form="levels-{full}"' not in body
    text = text_of(body)
    assert "Full System Default" in text and "Partial System" in text
    one = text_of(await page(demo_client, f"/admin/groups/{full}"))
    assert "This is the default group" in one and "Delete" not in one


async def test_employees_page_shows_seats_and_access(demo_client, demo_dsn) -> None:
    csrf = await login_as(demo_client, "admin", DEMO_PASSWORD)
    seats, in_use = await fetchval(demo_dsn, "SELECT seats FROM licenses"), await fetchval(
        demo_dsn, "SELECT seats_in_use()")
    text = text_of(await page(demo_client, "/admin/employees"))
    assert f"{in_use} of {seats} seats in use" in text
    assert "sub2" in text and "Globex, Initech" in text and "All accounts" in text
    sub2 = (await ids(demo_dsn))["employee:sub2"]
    resp = await post(demo_client, f"/admin/employees/{sub2}/active", csrf, {"active": "off", "back": "list"})
    assert resp.status == 303
    text = text_of(await page(demo_client, "/admin/employees"))
    assert f"{in_use - 1} of {seats} seats in use" in text
    assert '"sub2" is deactivated' in text  # the notice, once
    assert '"sub2" is deactivated' not in text_of(await page(demo_client, "/admin/employees"))
    detail = await page(demo_client, f"/admin/employees/{sub2}")
    # the account picker: every account a labelled checkbox, sub2's ticked
    for name, ticked in (("Acme", False), ("Globex", True), ("Initech", True)):
        box = re.search(rf'<input type="checkbox" name="accounts" value="{name}"( checked)?>', detail)
        assert box and bool(box.group(1)) == ticked, name
    assert "<legend>Alerts</legend>" in detail


async def test_explain_page_gives_the_cli_answer(demo_client, demo_dsn, demo_dsn_twin, cli: Cli,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    await login_as(demo_client, "admin", DEMO_PASSWORD)
    # a Globex ticket: sub1 (Acme only) may not see it, sub2 may when assigned
    number = await fetchval(demo_dsn, "SELECT t.number FROM tickets t JOIN accounts a ON a.id = t.account_id "
                                      "WHERE a.name = 'Globex' ORDER BY t.id LIMIT 1")
    for username in ("sub1", "full@globex", "tech"):
        capsys.readouterr()
        await cli("explain", username, number, "--json")
        answer = json.loads(capsys.readouterr().out)
        text = text_of(await page(demo_client, f"/admin/explain?user={username}&ticket={number}"))
        verdict = "sees" if answer["visible"] else "does not see"
        assert f"{username} {verdict} ticket {number}" in text, username
        assert answer["reason"] in text and f"[{answer['rule']}]" in text
        for part in answer["parts"]:
            assert part["reason"] in text, (username, part["part"])


async def test_audit_page_filters_and_pages(demo_client, demo_dsn) -> None:
    csrf = await login_as(demo_client, "admin", DEMO_PASSWORD)
    resp = await post(demo_client, "/admin/groups", csrf, {"name": "Audited", "copy_from": "Limited"})
    assert resp.status == 303
    group_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    form = levels_form({**await group_levels(demo_dsn, "customer_groups", "Audited", CUSTOMER_IDENTIFIERS),
                        "charges": "on"}, CUSTOMER_IDENTIFIERS)
    assert (await post(demo_client, f"/admin/groups/{group_id}/levels", csrf, form)).status == 303
    text = text_of(await page(demo_client, "/admin/audit?action=group.set&actor=employee:admin"))
    assert "customer_group:Audited" in text and "charges : off → on" in text
    assert "login" not in text.split("Before → after", 1)[1]
    # the date range: today has it, a day long past does not
    today = await fetchval(demo_dsn, "SELECT (now() AT TIME ZONE 'UTC')::date::text")
    assert "customer_group:Audited" in text_of(await page(demo_client, f"/admin/audit?target=Audited&from={today}&to={today}"))
    assert "customer_group:Audited" not in text_of(await page(demo_client, "/admin/audit?target=Audited&to=2001-01-01"))
    # many entries: 50 a page, older ones behind "Older"
    await execute(demo_dsn, "INSERT INTO audit_log (actor, action, target) "
                            "SELECT 'cli:test', 'bulk.test', 'n' || g FROM generate_series(1, 60) g")
    first = await page(demo_client, "/admin/audit?action=bulk.")
    assert first.count("<code>bulk.test</code>") == 50 and 'rel="next"' in first
    second = await page(demo_client, "/admin/audit?action=bulk.&page=2")
    assert second.count("<code>bulk.test</code>") == 10 and 'rel="next"' not in second
    assert 'href="/admin/audit?action=bulk.&amp;page=1"' in second
