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
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from multidict import MultiDict

from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES
from daemon.cli import main
from daemon.dev.demo_data import DEMO_PASSWORD
from daemon.passwords import verify_password
from tests.support.api import login_as
from tests.support.config import write_test_config
from tests.support.db import execute, fingerprint, val
from web.routes import ROUTES

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


@dataclass(frozen=True)
class Step:
    """One admin action, done on the pages and by its CLI twin. `path` may name rows by what
    they are, e.g. {group:Support} or {employee:sub3}: resolved to ids when the step runs."""

    what: str
    path: str
    argv: tuple[str, ...]
    data: Any = ()  # the form posted
    stdin: str | None = None  # what the CLI reads (a password)
    where: str | None = None  # where the page's 303 leads
    password: bool = False  # the page answers with a generated password instead
    levels: dict[str, str] | None = None  # a levels form: these changes on the group's levels


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    # (table, username, the shown password that works, those that no longer do)
    passwords: tuple[tuple[str, str, int, tuple[int, ...]], ...] = ()


def levels_step(what: str, name: str, changes: dict[str, str], argv: tuple[str, ...], *,
                employee: bool = False) -> Step:
    kind, segment = ("egroup", "employee-groups") if employee else ("group", "groups")
    return Step(what, f"/admin/{segment}/{{{kind}:{name}}}/levels", argv, levels=changes)


def emp(username: str, action: str) -> str:
    return f"/admin/employees/{{employee:{username}}}/{action}"


MAIL_FORM = [("alert_assigned", "on"), ("alert_created", "on"), ("recv_note", "on"),
             ("recv_status", "on"), ("recv_closed", "on"), ("recv_email", "on"), ("recv_charge", "on")]

SCENARIOS = (
    Scenario("accounts", (
        Step("account create", "/admin/accounts",
             ("account", "create", "Umbrella", "--contact", "Alice Wong", "--email", "it@umbrella.example"),
             {"name": "Umbrella", "contact_name": "Alice Wong", "email": "it@umbrella.example"}),
    )),
    Scenario("customer privilege groups", (
        Step("group create --copy-from", "/admin/groups", ("group", "create", "Support", "--copy-from", "Partial"),
             {"name": "Support", "copy_from": "Partial"}),
        levels_step("group set", "Support", {"history_notes": "off", "quotes": "accept", "priority": "edit"},
                    ("group", "set", "Support", "history_notes=off", "quotes=accept", "priority=edit")),
        levels_step("group set, no change", "Support", {}, ("group", "set", "Support", "quotes=accept")),
        Step("group rename", "/admin/groups/{group:Support}/rename", ("group", "rename", "Support", "Helpdesk"),
             {"new_name": "Helpdesk"}),
        Step("group default", "/admin/groups/{group:Helpdesk}/default", ("group", "default", "Helpdesk")),
        Step("group create (empty)", "/admin/groups", ("group", "create", "Temp"), {"name": "Temp", "copy_from": ""}),
        Step("group delete", "/admin/groups/{group:Temp}/delete", ("group", "delete", "Temp"), where="/admin/groups"),
    )),
    Scenario("customer web users", (
        Step("group default", "/admin/groups/{group:Partial}/default", ("group", "default", "Partial")),
        Step("webuser create (default group, password)", "/admin/accounts/{account:Acme}/users",
             ("webuser", "create", "--account", "Acme", "--username", "new@acme", "--name", "New Person",
              "--email", "new@acme.example", "--password-stdin"),
             {"username": "new@acme", "full_name": "New Person", "email": "new@acme.example",
              "group": "Partial", "password": "generate"},
             stdin="a-password-of-the-cli\n", password=True),
        Step("webuser create (no password)", "/admin/accounts/{account:Acme}/users",
             ("webuser", "create", "--account", "Acme", "--username", "nopw@acme", "--group", "Limited"),
             {"username": "nopw@acme", "group": "Limited", "password": "none"},
             where="/admin/accounts/{account:Acme}"),
        Step("webuser set-group", "/admin/accounts/{account:Acme}/users/group",
             ("webuser", "set-group", "new@acme", "Full"), {"username": "new@acme", "group": "Full"}),
        Step("webuser deactivate", "/admin/accounts/{account:Acme}/users/active",
             ("webuser", "deactivate", "partial@acme"), {"username": "partial@acme", "active": "off"}),
        Step("webuser activate", "/admin/accounts/{account:Acme}/users/active",
             ("webuser", "activate", "partial@acme"), {"username": "partial@acme", "active": "on"}),
        Step("webuser set-password", "/admin/accounts/{account:Acme}/users/password",
             ("webuser", "set-password", "limited@acme", "--password-stdin"), {"username": "limited@acme"},
             stdin="another-cli-password\n", password=True),
    ), passwords=(("customer_web_users", "new@acme", 0, ()), ("customer_web_users", "limited@acme", 1, ()))),
    Scenario("employees", (
        Step("employee create", "/admin/employees",
             ("employee", "create", "--username", "sub3", "--name", "Sub Three", "--email",
              "sub3@msp.example", "--group", "Subcontractors", "--rate", "55.5", "--password-stdin"),
             {"username": "sub3", "full_name": "Sub Three", "email": "sub3@msp.example",
              "group": "Subcontractors", "hourly_rate": "55.5", "web_access": "on", "password": "generate"},
             stdin="sub3-cli-password\n", password=True),
        Step("employee create (no web access)", "/admin/employees",
             ("employee", "create", "--username", "clerk", "--name", "Back Office", "--email",
              "clerk@msp.example", "--no-web-access"),
             {"username": "clerk", "full_name": "Back Office", "email": "clerk@msp.example",
              "group": "Standard", "hourly_rate": "0", "password": "none"}),
        Step("employee set-group", emp("sub3", "group"), ("employee", "set-group", "sub3", "Standard"),
             {"group": "Standard"}),
        Step("employee access --accounts", emp("sub3", "access"),
             ("employee", "access", "sub3", "--accounts", "Acme,Initech"),
             [("scope", "some"), ("accounts", "Acme"), ("accounts", "Initech")]),
        Step("employee access --all", emp("sub3", "access"), ("employee", "access", "sub3", "--all"),
             [("scope", "all"), ("accounts", "Acme")]),
        Step("employee access --none", emp("sub3", "access"), ("employee", "access", "sub3", "--none"),
             [("scope", "some")]),
        Step("employee deactivate", emp("sub2", "active"), ("employee", "deactivate", "sub2"),
             {"active": "off", "back": "list"}, where="/admin/employees"),
        Step("employee activate", emp("sub2", "active"), ("employee", "activate", "sub2"), {"active": "on"}),
        Step("employee web-access off", emp("sub2", "web-access"), ("employee", "web-access", "sub2", "off"),
             {"web_access": "off"}),
        Step("employee web-access on", emp("sub2", "web-access"), ("employee", "web-access", "sub2", "on"),
             {"web_access": "on"}),
        Step("employee set-password", emp("sub3", "password"),
             ("employee", "set-password", "sub3", "--password-stdin"), stdin="yet-another-cli-password\n",
             password=True),
        Step("employee set-rate", emp("sub3", "rate"), ("employee", "set-rate", "sub3", "72.50"),
             {"hourly_rate": "72.50"}),
        Step("employee mail-settings", emp("sub1", "mail"),
             ("employee", "mail-settings", "sub1", "alert_assigned=on", "alert_created=on",
              "alert_reminder=off", "alert_digest=off", "recv_note=on", "recv_status=on",
              "recv_closed=on", "recv_email=on", "recv_charge=on", "recv_own_changes=off"), MAIL_FORM),
    ), passwords=(("employees", "sub3", 1, (0,)),)),  # the reset's password replaced the first
    Scenario("licenses", (
        Step("license set", "/admin/license", ("license", "set", "12"), {"seats": "12"}, where="/admin/employees"),
    )),
    Scenario("employee privilege groups", (
        Step("employee-group create", "/admin/employee-groups",
             ("employee-group", "create", "Partners", "--copy-from", "Subcontractors"),
             {"name": "Partners", "copy_from": "Subcontractors"}),
        levels_step("employee-group set", "Partners", {"close_tickets": "off", "see_others": "all"},
                    ("employee-group", "set", "Partners", "close_tickets=off", "see_others=all"), employee=True),
        levels_step("employee-group set account data", "Partners",
                    {"contracts": "on", "documents": "public", "kb": "all"},
                    ("employee-group", "set", "Partners", "contracts=on", "documents=public", "kb=all"),
                    employee=True),
        Step("employee-group rename", "/admin/employee-groups/{egroup:Partners}/rename",
             ("employee-group", "rename", "Partners", "Vendors"), {"new_name": "Vendors"}),
        Step("employee-group delete", "/admin/employee-groups/{egroup:Vendors}/delete",
             ("employee-group", "delete", "Vendors"), where="/admin/employee-groups"),
    )),
)

_ROW = re.compile(r"\{(account|group|egroup|employee):([^}]+)\}")


async def resolve(dsn: str, path: str) -> str:
    """`path` with its {kind:name} placeholders replaced by the ids of those rows now."""
    known = await ids(dsn)
    return _ROW.sub(lambda m: str(known[f"{m.group(1)}:{m.group(2)}"]), path)


async def page_action(client, dsn: str, csrf: str, step: Step) -> str | None:
    """Do the step on the pages; the password the page showed, if it showed one."""
    data = step.data
    if step.levels is not None:
        employee = "/employee-groups/" in step.path
        name = _ROW.search(step.path).group(2)
        known = EMPLOYEE_PRIVILEGES if employee else CUSTOMER_PRIVILEGES
        current = await group_levels(dsn, "employee_groups" if employee else "customer_groups", name, known)
        data = levels_form({**current, **step.levels}, known)
    resp = await post(client, await resolve(dsn, step.path), csrf, data)
    body = await resp.text()
    if not step.password:
        assert resp.status == 303, (step.what, resp.status, text_of(body)[:500])
        if step.where:
            assert resp.headers["Location"].split("#")[0] == await resolve(dsn, step.where), step.what
        return None
    assert resp.status == 200, (step.what, text_of(body)[:500])
    assert resp.headers["Cache-Control"] == "private, no-store"
    match = re.search(r'<code id="generated-password"[^>]*>([^<]+)</code>', body)
    assert match, f"{step.what}: the generated password is shown"
    return unescape(match.group(1))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_admin_page_action_matches_its_cli_twin(demo_client, demo_dsn, demo_dsn_twin,
                                                            cli: Cli, scenario: Scenario) -> None:
    csrf = await login_as(demo_client, "admin", DEMO_PASSWORD)
    assert await state(demo_dsn) == await state(demo_dsn_twin)
    # the demo's own audit rows end here (the admin's login comes after, on the pages' side)
    last_audit = await val(demo_dsn_twin, "SELECT max(id) FROM audit_log")
    shown_passwords: list[str] = []
    for step in scenario.steps:
        shown = await page_action(demo_client, demo_dsn, csrf, step)
        if shown is not None:
            shown_passwords.append(shown)
        await cli(*step.argv, stdin=step.stdin)
        on_pages = await state(demo_dsn, actors_after=last_audit)
        by_cli = await state(demo_dsn_twin, actors_after=last_audit)
        for key in on_pages:
            if key != "audit_actors":
                assert on_pages[key] == by_cli[key], f"{step.what}: {key} differs"
        assert on_pages["audit_actors"] == ["employee:admin"], step.what
        assert len(by_cli["audit_actors"]) == 1 and by_cli["audit_actors"][0].startswith("cli:"), step.what

    # the generated passwords work: each is the one now hashed for its user
    for table, username, works, replaced in scenario.passwords:
        stored = await val(demo_dsn, f"SELECT password_hash FROM {table} WHERE username = $1", username)
        assert verify_password(stored, shown_passwords[works]), username
        assert not any(verify_password(stored, shown_passwords[i]) for i in replaced), username
    assert len(shown_passwords) == sum(s.password for s in scenario.steps)
    assert len(set(shown_passwords)) == len(shown_passwords)


async def test_outbox_retry_matches_the_cli(demo_client, demo_dsn, demo_dsn_twin, cli: Cli) -> None:
    insert = """INSERT INTO outbox (event, ticket_id, employee_id, message_id, status, attempts,
                                    last_code, last_error)
                SELECT 'note', (SELECT min(id) FROM tickets), (SELECT id FROM employees WHERE username = 'sub1'),
                       '<failed-1@portal.test>', 'failed', 3, 550, '5.1.1 mailbox unavailable'
                RETURNING id"""
    failed_id = await val(demo_dsn, insert)
    assert await val(demo_dsn_twin, insert) == failed_id
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
    ticket = await val(demo_dsn, "SELECT min(id) FROM tickets")
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
    before = await fingerprint(demo_dsn)
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
    after = await fingerprint(demo_dsn)
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
        ticket = await val(demo_dsn, "SELECT min(t.id) FROM tickets t JOIN accounts a "
                                          "ON a.id = t.account_id WHERE a.name = 'Acme'")
        charges = admin_client.make_url(f"/api/v1/tickets/{ticket}/charges")
        assert (await customer.get(charges)).status == 200

        # the admin unticks charges and lowers quotes in the grid
        current = await group_levels(demo_dsn, "customer_groups", "Acme staff", CUSTOMER_PRIVILEGES)
        form = levels_form({**current, "charges": "off", "quotes": "view"}, CUSTOMER_PRIVILEGES)
        resp = await post(admin_client, f"/admin/groups/{group_id}/levels", csrf, [*form, ("back", "grid")])
        assert resp.status == 303 and resp.headers["Location"] == f"/admin/groups#group-{group_id}"
        grid = text_of(await page(admin_client, "/admin/groups"))
        assert "live for logged-in users" in grid and "restart a" not in grid.lower()
        assert "Saved \"Acme staff\": charges off, quotes view." in grid

        # the customer's very next request, same session, no new login
        assert (await me())["charges"] == "off" and (await me())["quotes"] == "view"
        assert (await customer.get(charges)).status == 403
        # and back on
        form = levels_form({**current, "quotes": "view"}, CUSTOMER_PRIVILEGES)
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
    before = await fingerprint(demo_dsn)

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
    in_use = await val(demo_dsn, "SELECT seats_in_use()")
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

    after = await fingerprint(demo_dsn)
    changed = {t for t in before if before[t] != after[t]}
    # only the deliberate changes above (group Held, limited@acme's group, sub2, seats)
    assert changed <= {"customer_groups", "customer_web_users", "employees", "licenses",
                       "audit_log", "privilege_state", "sessions"}, changed


async def test_forms_without_the_csrf_token_are_refused(demo_client, demo_dsn) -> None:
    await login_as(demo_client, "admin", DEMO_PASSWORD)
    before = await fingerprint(demo_dsn)
    resp = await demo_client.post("/admin/groups", data={"name": "Sneaky"}, allow_redirects=False)
    assert resp.status == 403
    assert await fingerprint(demo_dsn) == before


# -- the read-only pages --------------------------------------------------------------------


async def test_group_grid_marks_system_and_default_groups(demo_client, demo_dsn) -> None:
    await login_as(demo_client, "admin", DEMO_PASSWORD)
    body = await page(demo_client, "/admin/groups")
    for identifier in CUSTOMER_PRIVILEGES:
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
    seats, in_use = await val(demo_dsn, "SELECT seats FROM licenses"), await val(
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
    number = await val(demo_dsn, "SELECT t.number FROM tickets t JOIN accounts a ON a.id = t.account_id "
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
    form = levels_form({**await group_levels(demo_dsn, "customer_groups", "Audited", CUSTOMER_PRIVILEGES),
                        "charges": "on"}, CUSTOMER_PRIVILEGES)
    assert (await post(demo_client, f"/admin/groups/{group_id}/levels", csrf, form)).status == 303
    text = text_of(await page(demo_client, "/admin/audit?action=group.set&actor=employee:admin"))
    assert "customer_group:Audited" in text and "charges : off → on" in text
    assert "login" not in text.split("Before → after", 1)[1]
    # the date range: today has it, a day long past does not
    today = await val(demo_dsn, "SELECT (now() AT TIME ZONE 'UTC')::date::text")
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
