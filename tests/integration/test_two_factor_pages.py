"""Two-factor login, continued: the employee-group policy `require_2fa` and its hot reload,
the HTML login's two steps with the `next` target kept, the Security page, and the admin pages."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import asyncpg
import pyotp
import pytest
from multidict import MultiDict

from daemon.cli import main
from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.config import write_test_config
from tests.support.totp import cli_json, code


def page_token(html: str, name: str = "csrf_token") -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


@pytest.fixture
async def policy_group(demo_db) -> int:
    """A custom employee group like Standard, with `tech` in it (system groups are fixed)."""
    group_id = await demo_db.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, assets, contracts, quotes,
                                        documents, kb)
           VALUES ('Careful', 'all', 'all', true, true, true, 'all', 'all') RETURNING id""")
    await demo_db.execute("UPDATE employees SET group_id = $1 WHERE username = 'tech'", group_id)
    return group_id


async def test_the_group_policy_sends_members_to_enrolment_and_reloads_live(
        users, demo_db, demo_dsn, tmp_path, capsys, policy_group) -> None:
    tech = await users.login("tech")
    assert (await tech.get("/api/v1/tickets")).status == 200
    # an administrator turns the policy on, with the CLI: the very next request knows it
    changed = await cli_json(demo_dsn, tmp_path, capsys, "employee-group", "set", "Careful",
                             "require_2fa=on")
    assert changed["rights"]["require_2fa"] == "on"
    refused = await tech.get("/api/v1/tickets")
    assert refused.status == 403 and refused.body["error"]["code"] == "totp_enrolment_required"
    assert (await tech.get("/api/v1/me")).status == 403
    async with tech.session.get("/", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (303, "/security")
    async with tech.session.get("/security") as resp:
        assert resp.status == 200 and "requires two-factor login" in await resp.text()
    # the enrolment itself is open; once done, everything is again
    status = await tech.get("/api/v1/me/totp")
    assert status.body["required"] is True and status.body["enabled"] is False
    secret = (await tech.post("/api/v1/me/totp/setup")).body["secret"]
    assert (await tech.post("/api/v1/me/totp/confirm", {"code": code(secret)})).status == 200
    assert (await tech.get("/api/v1/tickets")).status == 200
    # a member may not turn it off while the group requires it
    off = await tech.post("/api/v1/me/totp/disable", {"code": code(secret, 1)})
    assert off.status == 403 and off.body["error"]["code"] == "totp_required_by_group"
    # an administrator takes it away: the member is sent to enrolment again at once
    await demo_db.execute("DELETE FROM totp_credentials")
    assert (await tech.get("/api/v1/tickets")).status == 403
    # the policy off again (another program writing the database): free at the next request
    await demo_db.execute("UPDATE employee_groups SET require_2fa = false WHERE id = $1",
                          policy_group)
    again = await users.login("tech")
    assert (await again.get("/api/v1/tickets")).status == 200
    assert (await tech.post("/api/v1/logout")).status == 200


async def test_logout_stays_open_to_a_member_who_must_enrol(users, demo_db, policy_group) -> None:
    await demo_db.execute("UPDATE employee_groups SET require_2fa = true WHERE id = $1",
                          policy_group)
    tech = await users.login("tech")
    assert (await tech.get("/api/v1/tickets")).status == 403
    assert (await tech.post("/api/v1/logout")).status == 200
    assert (await tech.get("/api/v1/me/totp")).status == 401


async def _html_login(session: aiohttp.ClientSession, username: str, next_: str):
    async with session.get(f"/login?next={next_}") as resp:
        token = page_token(await resp.text())
    form = {"username": username, "password": DEMO_PASSWORD, "next": next_, "csrf_token": token}
    async with session.post("/login", data=form, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), token


async def test_the_html_login_keeps_next_through_both_steps(demo_client, demo_db, demo_dsn,
                                                            tmp_path, capsys) -> None:
    secret = (await cli_json(demo_dsn, tmp_path, capsys, "employee", "totp", "sub1",
                             "--enable"))["secret"]
    ticket = await demo_db.fetchval(
        "SELECT t.id FROM tickets t JOIN employees e ON e.id = t.assigned_to "
        "WHERE e.username = 'sub1' ORDER BY t.id LIMIT 1")
    target = f"/tickets/{ticket}"
    async with aiohttp.ClientSession(base_url=str(demo_client.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        status, location, token = await _html_login(s, "sub1", target)
        assert (status, location) == (303, f"/login/totp?next={target}")
        async with s.get(location) as resp:
            html = await resp.text()
            assert resp.status == 200 and 'name="code"' in html
            assert f'name="next" value="{target}"' in html
        # no session yet: the ticket still wants a login
        async with s.get(target, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        form = MultiDict({"code": "000000", "next": target, "csrf_token": token})
        async with s.post("/login/totp", data=form, allow_redirects=False) as resp:
            assert resp.status == 401 and "Wrong or expired code" in await resp.text()
        form = MultiDict({"code": code(secret), "next": target, "csrf_token": token})
        async with s.post("/login/totp", data=form, allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, target)
        async with s.get(target) as resp:
            assert resp.status == 200
        # without the form's token the code form is refused
        form = MultiDict({"code": code(secret, 1), "next": target, "csrf_token": "x" * 32})
        async with s.post("/login/totp", data=form, allow_redirects=False) as resp:
            assert resp.status == 403


async def test_the_security_page_sets_it_up_with_a_qr_code(users, demo_db) -> None:
    me = await users.login("full@globex")
    async with me.session.get("/security") as resp:
        html = await resp.text()
        assert "Set up two-factor login" in html and "<script" not in html
    form = {"csrf_token": me.csrf}
    async with me.session.post("/security/totp/setup", data=form, allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (303, "/security")
    async with me.session.get("/security") as resp:
        html = await resp.text()
    assert "<svg" in html
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', html).group(1)
    async with me.session.post("/security/totp/confirm",
                               data={"csrf_token": me.csrf, "code": "999999"}) as resp:
        assert resp.status == 422
    async with me.session.post("/security/totp/confirm",
                               data={"csrf_token": me.csrf, "code": code(secret)}) as resp:
        html = await resp.text()
        assert resp.status == 200 and "shown only now" in html
    shown = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", html)
    assert len(shown) == 10
    async with me.session.get("/security") as resp:
        html = await resp.text()
        assert "Recovery codes left: 10" in html and shown[0] not in html
    async with me.session.post("/security/totp/disable", allow_redirects=False,
                               data={"csrf_token": me.csrf, "code": shown[0]}) as resp:
        assert resp.status == 303
    assert await demo_db.fetchval("SELECT count(*) FROM totp_credentials") == 0


async def test_the_admin_pages_turn_it_on_and_off(users, demo_db) -> None:
    victim = await users.login("sub2")
    admin = await users.login("admin")
    sub2 = await demo_db.fetchval("SELECT id FROM employees WHERE username = 'sub2'")
    async with admin.session.get(f"/admin/employees/{sub2}") as resp:
        assert "Turn two-factor login on" in await resp.text()
    form = {"csrf_token": admin.csrf, "action": "enable"}
    async with admin.session.post(f"/admin/employees/{sub2}/totp", data=form) as resp:
        html = await resp.text()
        assert resp.status == 200 and "<svg" in html
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', html).group(1)
    assert pyotp.TOTP(secret).verify(code(secret))
    assert await demo_db.fetchval(
        "SELECT secret FROM totp_credentials WHERE employee_id = $1 AND confirmed_at IS NOT NULL",
        sub2) == secret
    assert (await victim.get("/api/v1/me")).status == 401  # their sessions ended
    assert (await admin.get("/api/v1/me")).status == 200
    async with admin.session.get(f"/admin/employees/{sub2}") as resp:
        assert "Reset two-factor login" in await resp.text()
    form = {"csrf_token": admin.csrf, "action": "disable"}
    async with admin.session.post(f"/admin/employees/{sub2}/totp", data=form,
                                  allow_redirects=False) as resp:
        assert resp.status == 303
    assert await demo_db.fetchval("SELECT count(*) FROM totp_credentials") == 0

    # a web user, from the account's page
    acme = await demo_db.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
    form = {"csrf_token": admin.csrf, "action": "enable", "username": "limited@acme"}
    async with admin.session.post(f"/admin/accounts/{acme}/users/totp", data=form) as resp:
        assert resp.status == 200 and "Recovery codes" in await resp.text()
    async with admin.session.get(f"/admin/accounts/{acme}") as resp:
        assert "2FA on" in await resp.text()
    form = {"csrf_token": admin.csrf, "action": "enable", "username": "full@globex"}
    async with admin.session.post(f"/admin/accounts/{acme}/users/totp", data=form) as resp:
        assert resp.status == 404  # not a user of this account
    audit = [r["action"] for r in await demo_db.fetch(
        "SELECT action FROM audit_log WHERE action LIKE 'totp.%' ORDER BY id")]
    assert audit == ["totp.enable", "totp.disable", "totp.enable"]


async def test_the_grid_sets_the_policy_even_of_a_system_group(users, demo_db) -> None:
    admin = await users.login("admin")
    group = await demo_db.fetchval("SELECT id FROM employee_groups WHERE name = 'Administrators'")
    async with admin.session.get("/admin/employee-groups") as resp:
        html = await resp.text()
    assert "Two-factor login required" in html
    assert f'id="levels-{group}"' in html  # the system group's column has a Save form now
    form = MultiDict([("csrf_token", admin.csrf), ("back", "grid"), ("require_2fa", "off"),
                      ("require_2fa", "on")])
    async with admin.session.post(f"/admin/employee-groups/{group}/levels", data=form,
                                  allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
    assert await demo_db.fetchval("SELECT require_2fa FROM employee_groups WHERE id = $1", group)
    # the administrator is a member: from the next request on, enrolment first
    async with admin.session.get("/admin", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (303, "/security")
    # the rights of a system group stay fixed, on the grid as in the database
    form = MultiDict([("csrf_token", admin.csrf), ("back", "grid"), ("admin", "off")])
    async with admin.session.post(f"/admin/employee-groups/{group}/levels", data=form,
                                  allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/security"
    with pytest.raises(asyncpg.RaiseError, match="system group"):
        await demo_db.execute("UPDATE employee_groups SET admin = false, require_2fa = false "
                              "WHERE id = $1", group)


async def test_the_cli_sets_the_policy_of_a_system_group_only(demo_dsn, tmp_path, capsys) -> None:
    on = await cli_json(demo_dsn, tmp_path, capsys, "employee-group", "set", "Administrators",
                        "require_2fa=on")
    assert on["rights"]["require_2fa"] == "on" and on["changed"] == ["require_2fa"]
    cfg = write_test_config(tmp_path, demo_dsn, smtp_port=8025)
    status = await asyncio.to_thread(main, ["admin", "employee-group", "set", "Administrators",
                                            "require_2fa=off", "admin=off", "--config",
                                            str(cfg.path)])
    assert status == 1 and "system group and cannot be modified" in capsys.readouterr().err
