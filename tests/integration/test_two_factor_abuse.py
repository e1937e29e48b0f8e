"""Two-factor login under abuse: codes made of other scripts' digits, a pending login whose
password was reset or changed meanwhile, the same code sent many times at once."""

from __future__ import annotations

import asyncio
import io
import re
import sys

import asyncpg
import pytest

from daemon.access.acting import acting_as
from daemon.access.principals import find_user
from daemon.app import build_app
from daemon.cli import main
from tests.support.config import write_test_config
from tests.support.raw import http, raw_request
from tests.support.totp import Browser, cli_json, code, password_step
from web.routes import ROUTES, setup_web

# Each is six characters that str.isdigit() accepts but that are not ASCII digits (Arabic-Indic,
# superscripts, fullwidth): a code check must refuse them as wrong, not fail.
NOT_ASCII_DIGITS = ["\u0661\u0662\u0663\u0664\u0665\u0666", "\u00b2\u00b3\u00b9\u00b2\u00b3\u00b9",
                    "\uff11\uff12\uff13\uff14\uff15\uff16"]




@pytest.mark.parametrize("typed", NOT_ASCII_DIGITS)
async def test_a_code_of_digits_from_another_script_is_a_wrong_code(
        enabled, browser, users, typed: str) -> None:
    await password_step(browser)
    status, body = await browser.post("/api/v1/login/totp", {"code": typed})
    assert status == 401 and body["error"]["code"] == "invalid_code"
    # the user's own set-up takes the same check
    me = await users.login("partial@acme")
    assert (await me.post("/api/v1/me/totp/setup")).status == 200
    refused = await me.post("/api/v1/me/totp/confirm", {"code": typed})
    assert refused.status == 422 and refused.body["error"]["field"] == "code"


async def test_a_password_reset_ends_the_pending_logins_begun_before_it(
        enabled, browser, demo_dsn, tmp_path, monkeypatch) -> None:
    # someone who knows the old password has done the first step; an administrator resets it
    await password_step(browser)
    cfg = write_test_config(tmp_path, demo_dsn, smtp_port=8025)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-brand-new-password\n"))
    status = await asyncio.to_thread(main, ["admin", "webuser", "set-password", "full@acme",
                                            "--password-stdin", "--config", str(cfg.path)])
    assert status == 0
    status, body = await browser.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
    assert status == 401 and body["error"]["code"] == "invalid_code"
    async with browser.session.get("/api/v1/me") as resp:
        assert resp.status == 401


async def test_a_password_change_ends_the_other_pending_logins(enabled, demo_client,
                                                               demo_db) -> None:
    owner, intruder = Browser(demo_client), Browser(demo_client)
    try:
        await password_step(owner)
        status, me = await owner.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
        assert status == 200, me
        await password_step(intruder)
        status, body = await owner.post("/api/v1/me/password",
                                        {"current": "demo", "new": "another-long-password"},
                                        headers={"X-CSRF-Token": me["csrf_token"]})
        assert status == 200, body
        assert await demo_db.fetchval("SELECT count(*) FROM pending_logins") == 0
        status, body = await intruder.post("/api/v1/login/totp",
                                           {"code": enabled["recovery_codes"][0]})
        assert status == 401 and body["error"]["code"] == "invalid_code"
    finally:
        await owner.close()
        await intruder.close()


@pytest.fixture
async def roomy_client(demo_dsn, smtp_sink, tmp_path, aiohttp_client, monkeypatch):
    """The demo portal with a throttle wide enough for one user's many concurrent attempts."""
    monkeypatch.setenv("PORTALD_HTTP_LOGIN_ATTEMPTS_PER_15MIN", "200")
    cfg = write_test_config(tmp_path, demo_dsn, smtp_sink.port)
    return await aiohttp_client(build_app(cfg, demo_dsn, setup_web=setup_web, background=False))


@pytest.mark.parametrize("which", ["totp", "recovery"])
async def test_one_code_sent_twenty_times_at_once_logs_in_once(
        roomy_client, demo_dsn, demo_db, tmp_path, capsys, which: str) -> None:
    on = await cli_json(demo_dsn, tmp_path, capsys, "webuser", "totp", "full@acme", "--enable")
    typed = code(on["secret"]) if which == "totp" else on["recovery_codes"][0]
    browsers = [Browser(roomy_client) for _ in range(20)]
    try:
        for b in browsers:
            await password_step(b)
        answers = await asyncio.gather(*(b.post("/api/v1/login/totp", {"code": typed})
                                         for b in browsers))
    finally:
        for b in browsers:
            await b.close()
    assert sorted(status for status, _ in answers) == [200] + [401] * 19
    assert await demo_db.fetchval(
        "SELECT count(*) FROM sessions s JOIN customer_web_users u ON u.id = s.webuser_id "
        "WHERE u.username = 'full@acme'") == 1


async def test_the_database_shows_each_user_only_their_own_second_factor(
        demo_db, demo_dsn, tmp_path, capsys) -> None:
    for area, who in (("webuser", "full@acme"), ("webuser", "full@globex"), ("employee", "sub1"),
                      ("employee", "tech")):
        await cli_json(demo_dsn, tmp_path, capsys, area, "totp", who, "--enable")
    for who in ("full@globex", "sub1"):
        p = await find_user(demo_db, who)
        column = "webuser_id" if p.is_customer else "employee_id"
        async with acting_as(demo_db, p):
            for table in ("totp_credentials", "totp_recovery_codes"):
                rows = await demo_db.fetch(f"SELECT webuser_id, employee_id FROM {table}")
                assert rows and {r[column] for r in rows} == {p.id}, (who, table)
                # nor may they change or remove anyone else's
                await demo_db.execute(f"UPDATE {table} SET created_at = now() - interval '1 d'")
                await demo_db.execute(f"DELETE FROM {table} WHERE {column} IS DISTINCT FROM $1",
                                      p.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await demo_db.fetch("SELECT * FROM pending_logins")
    assert await demo_db.fetchval("SELECT count(*) FROM totp_credentials") == 4
    assert await demo_db.fetchval("SELECT count(*) FROM totp_recovery_codes") == 40
    assert await demo_db.fetchval(
        "SELECT count(*) FROM totp_credentials WHERE created_at < now() - interval '1 h'") == 0


@pytest.mark.parametrize("path", ["/api/v1/me/totp/setup", "/api/v1/me/totp/confirm",
                                  "/api/v1/me/totp/recovery-codes", "/api/v1/me/totp/disable",
                                  "/security/totp/setup", "/security/totp/confirm",
                                  "/security/totp/recovery-codes", "/security/totp/disable"])
async def test_the_own_set_up_refuses_a_request_without_the_csrf_token(users, demo_db,
                                                                        path: str) -> None:
    me = await users.login("limited@acme")
    data = {"code": "123456"} if path.startswith("/security") else None
    body = {"code": "123456"} if data is None else None
    refused = await me.post(path, body, csrf=False, data=data)
    assert refused.status == 403, refused  # a page's refusal is a page, the API's is JSON
    assert await demo_db.fetchval("SELECT count(*) FROM totp_credentials") == 0


async def _waiting_on_locks(db: asyncpg.Connection, count: int) -> None:
    """Until `count` other backends of this database wait for a lock."""
    while await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()") < count:
        await asyncio.sleep(0.05)


async def test_two_codes_sent_together_for_one_pending_login_spend_one(
        enabled, browser, demo_dsn, demo_db) -> None:
    await password_step(browser)
    # hold the pending login, so that both requests are under way before either may finish
    holder = await asyncpg.connect(demo_dsn)
    try:
        tr = holder.transaction()
        await tr.start()
        await holder.execute("SELECT 1 FROM pending_logins FOR UPDATE")
        sent = [asyncio.ensure_future(browser.post("/api/v1/login/totp", {"code": c}))
                for c in enabled["recovery_codes"][:2]]
        await asyncio.wait_for(_waiting_on_locks(demo_db, 2), 60)
        await tr.rollback()
        answers = await asyncio.gather(*sent)
    finally:
        await holder.close()
    assert sorted(status for status, _ in answers) == [200, 401]
    # the request that came second found the login done: its recovery code is still good
    assert await demo_db.fetchval(
        "SELECT count(*) FROM totp_recovery_codes WHERE used_at IS NOT NULL") == 1


async def test_codes_and_recovery_codes_reach_no_log_and_no_audit_row(
        enabled, browser, demo_db, caplog) -> None:
    caplog.set_level("DEBUG")
    await password_step(browser)
    wrong = enabled["recovery_codes"][0][::-1]
    assert (await browser.post("/api/v1/login/totp", {"code": wrong}))[0] == 401
    status, me = await browser.post("/api/v1/login/totp", {"code": enabled["recovery_codes"][1]})
    assert status == 200, me
    typed = code(enabled["secret"])
    status, fresh = await browser.post("/api/v1/me/totp/recovery-codes", {"code": typed},
                                       headers={"X-CSRF-Token": me["csrf_token"]})
    assert status == 200, fresh
    audit = "\n".join(str(tuple(r)) for r in await demo_db.fetch("SELECT * FROM audit_log"))
    # (not the 6-digit code: any number in a log line could happen to hold it)
    for secret in [enabled["secret"], wrong, *enabled["recovery_codes"],
                   *fresh["recovery_codes"]]:
        assert secret not in caplog.text and secret not in audit, secret


ODD_JSON = [b"", b"{}", b"[]", b"null", b'{"code": 123456}', b'{"code": null}', b'{"code": ""}',
            b'{"code": "\\u0000"}', b'{"code": "\\ud800\\udc00x"}', b'{"code": "\\ud800"}',
            b'{"code": "' + b"9" * 5000 + b'"}', b'{"code": "\xff\xfe"}', b"[" * 3000,
            '{"code": "１２３ ４５６"}'.encode(), '{"code": "\u0130\u0130\u0130\u0130\u0130-xx"}'.encode(),
            b'{"code": "12345\\u0663", "extra": 1}']
ODD_FORMS = [b"", b"code=%FF%FE", b"code=%00", b"code=%ED%A0%80", b"code=" + b"1" * 5000,
             b"code=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96",
             b"code=123456&next=%FF", b"\xff\xfe=\xfd"]


async def test_odd_codes_in_the_second_step_get_a_4xx(enabled, browser, demo_client) -> None:
    await password_step(browser)
    async with browser.session.get("/login/totp") as page:
        assert page.status == 200
    cookies = "; ".join(f"{c.key}={c.value}" for c in browser.session.cookie_jar)
    form_token = next(c.value for c in browser.session.cookie_jar if c.key == "portald_login")
    sent = [http("POST", "/api/v1/login/totp", b"Cookie: " + cookies.encode(),
                 b"Content-Type: application/json", body=body) for body in ODD_JSON]
    sent += [http("POST", "/login/totp", b"Cookie: " + cookies.encode(),
                  b"Content-Type: application/x-www-form-urlencoded",
                  body=body + b"&csrf_token=" + form_token.encode()) for body in ODD_FORMS]
    for request in sent:
        reply = await raw_request(demo_client.port, request)
        assert 400 <= reply.status < 500, (request[-200:], reply)
    # still no session, and the pending login still takes the right code
    status, _ = await browser.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
    assert status == 200


async def test_no_route_takes_the_password_step_alone_for_a_login(enabled, browser,
                                                                  demo_client) -> None:
    await password_step(browser)
    pending = next(c.value for c in browser.session.cookie_jar if c.key == "portald_pending")
    # the pending login's cookie as it is, and its token where a session's would be
    for cookie in (f"portald_pending={pending}", f"portald_session={pending}"):
        for route in ROUTES:
            if route.public:
                continue
            path = re.sub(r"\{(\w+)(?::[^}]*)?\}", "1", route.path)
            request = http(route.method, path, b"Cookie: " + cookie.encode(),
                           b"Content-Type: application/json", body=b'{"code": "000000"}')
            reply = await raw_request(demo_client.port, request)
            if path.startswith("/api/"):
                assert reply.status == 401, (route.method, path, reply)
            else:
                assert reply.status == 303, (route.method, path, reply)
                assert reply.headers["location"].startswith("/login"), (route.method, path)


async def test_a_deactivation_ends_the_pending_login_for_good(enabled, browser, demo_dsn,
                                                               tmp_path, capsys) -> None:
    # deactivated between the steps and active again before the code comes: the pending login
    # begun before is gone, as the sessions are
    await password_step(browser)
    for verb in ("deactivate", "activate"):
        await cli_json(demo_dsn, tmp_path, capsys, "webuser", verb, "full@acme")
    status, body = await browser.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
    assert status == 401 and body["error"]["code"] == "invalid_code"


async def test_a_member_who_must_enrol_reaches_only_the_enrolment(users, demo_db,
                                                                  demo_client) -> None:
    group_id = await demo_db.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, admin, require_2fa)
           VALUES ('Careful admins', 'all', 'all', true, true) RETURNING id""")
    await demo_db.execute("UPDATE employees SET group_id = $1 WHERE username = 'admin'", group_id)
    me = await users.login("admin")
    cookie = next(c for c in me.session.cookie_jar if c.key == "portald_session")
    for route in ROUTES:
        if route.public or (route.access and route.access.enrolment):
            continue
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", "1", route.path)
        request = http(route.method, path, f"Cookie: portald_session={cookie.value}".encode(),
                       f"X-CSRF-Token: {me.csrf}".encode(), b"Content-Type: application/json",
                       body=b"{}")
        reply = await raw_request(demo_client.port, request)
        if path.startswith("/api/"):
            assert reply.status == 403, (route.method, path, reply)
            assert b"totp_enrolment_required" in reply.body, (route.method, path)
        else:
            assert (reply.status, reply.headers.get("location")) == (303, "/security"), (
                route.method, path, reply)
