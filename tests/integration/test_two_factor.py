"""Two-factor login (TOTP, RFC 6238) through the API, the CLI and what the database holds:
the two login steps, a code accepted once, recovery codes once, the pending login bound to its
browser and short-lived, throttling, the audit, and the user's own set-up."""

from __future__ import annotations

import asyncio
import json

from daemon.cli import main
from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.api import Api
from tests.support.config import write_test_config
from tests.support.totp import Browser, cli_json, code, password_step


async def test_the_cli_prints_the_secret_uri_and_recovery_codes(enabled, demo_db) -> None:
    assert enabled["username"] == "full@acme" and enabled["totp"] == "on"
    assert enabled["otpauth_uri"].startswith("otpauth://totp/portald:full%40acme?secret=")
    assert enabled["secret"] in enabled["otpauth_uri"]
    assert len(enabled["recovery_codes"]) == 10 == len(set(enabled["recovery_codes"]))
    # only hashes of the recovery codes are kept
    stored = await demo_db.fetch("SELECT code_hash FROM totp_recovery_codes")
    assert len(stored) == 10
    assert all(c.encode() not in bytes(r["code_hash"]) for r in stored
               for c in enabled["recovery_codes"])
    audit = await demo_db.fetchrow(
        "SELECT actor, target, after FROM audit_log WHERE action = 'totp.enable'")
    assert audit["target"] == "webuser:full@acme" and audit["actor"].startswith("cli:")
    assert enabled["secret"] not in audit["after"]


async def test_login_asks_for_the_code_and_sets_no_session_until_then(
        enabled, browser, demo_db) -> None:
    status, body = await browser.post("/api/v1/login", {"username": "full@acme",
                                                        "password": DEMO_PASSWORD})
    assert (status, body) == (200, {"totp_required": True})
    async with browser.session.get("/api/v1/me") as resp:
        assert resp.status == 401  # no session yet
    status, body = await browser.post("/api/v1/login/totp", {"code": "000000"})
    assert status == 401 and body["error"]["code"] == "invalid_code"
    status, body = await browser.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
    assert status == 200, body
    assert body["username"] == "full@acme" and body["csrf_token"]
    async with browser.session.get("/api/v1/me") as resp:
        assert resp.status == 200
    actions = [r["action"] for r in await demo_db.fetch(
        "SELECT action FROM audit_log WHERE action LIKE 'login%' ORDER BY id")]
    assert actions == ["login_password_ok", "login_code_failed", "login"]
    last = await demo_db.fetchval("SELECT after FROM audit_log WHERE action = 'login'")
    assert json.loads(last) == {"second_factor": "totp"}
    # one use: the pending login is gone
    assert await demo_db.fetchval("SELECT count(*) FROM pending_logins") == 0


async def test_a_code_is_accepted_once(enabled, demo_client) -> None:
    first, second = Browser(demo_client), Browser(demo_client)
    try:
        used = code(enabled["secret"])
        await password_step(first)
        assert (await first.post("/api/v1/login/totp", {"code": used}))[0] == 200
        # the same code (the same 30-second step) again, from another browser: refused
        await password_step(second)
        status, body = await second.post("/api/v1/login/totp", {"code": used})
        assert status == 401 and body["error"]["code"] == "invalid_code"
        # the next step's code is still good
        assert (await second.post("/api/v1/login/totp",
                                  {"code": code(enabled["secret"], 1)}))[0] == 200
    finally:
        await first.close()
        await second.close()


async def test_a_recovery_code_works_once(enabled, demo_client, demo_db) -> None:
    recovery = enabled["recovery_codes"][3]
    first, second = Browser(demo_client), Browser(demo_client)
    try:
        await password_step(first)
        # typed in upper case and without its dash: still the same code
        status, body = await first.post("/api/v1/login/totp",
                                        {"code": recovery.upper().replace("-", " ")})
        assert status == 200, body
        await password_step(second)
        assert (await second.post("/api/v1/login/totp", {"code": recovery}))[0] == 401
    finally:
        await first.close()
        await second.close()
    assert await demo_db.fetchval(
        "SELECT count(*) FROM totp_recovery_codes WHERE used_at IS NOT NULL") == 1
    after = await demo_db.fetchval(
        "SELECT after FROM audit_log WHERE action = 'login' ORDER BY id DESC LIMIT 1")
    assert json.loads(after) == {"second_factor": "recovery"}


async def test_the_pending_login_is_bound_to_its_browser_and_expires(
        enabled, demo_client, demo_db) -> None:
    mine, other = Browser(demo_client), Browser(demo_client)
    try:
        await password_step(mine)
        wrong = await mine.post("/api/v1/login/totp", {"code": "123456"})
        # another browser with the right code, but not the pending login's cookie
        elsewhere = await other.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
        assert elsewhere == wrong and wrong[0] == 401
        await demo_db.execute("UPDATE pending_logins SET expires_at = now() - interval '1 s'")
        expired = await mine.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
        assert expired == wrong  # the same answer as a wrong code
    finally:
        await mine.close()
        await other.close()


async def test_a_user_deactivated_between_the_steps_is_not_let_in(enabled, browser,
                                                                   demo_db) -> None:
    await password_step(browser)
    await demo_db.execute("UPDATE customer_web_users SET active = false WHERE username = 'full@acme'")
    status, body = await browser.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
    assert status == 401 and body["error"]["code"] == "invalid_code"
    assert await demo_db.fetchval("SELECT count(*) FROM sessions s JOIN customer_web_users u "
                                  "ON u.id = s.webuser_id WHERE u.username = 'full@acme'") == 0


async def test_wrong_codes_are_throttled_like_passwords(enabled, browser, demo_db) -> None:
    await password_step(browser)  # one attempt, counted until the code is right
    statuses = [(await browser.post("/api/v1/login/totp", {"code": "000000"}))[0]
                for _ in range(10)]
    assert statuses == [401] * 9 + [429]
    # throttled even with the right code now
    status, body = await browser.post("/api/v1/login/totp", {"code": code(enabled["secret"])})
    assert status == 429, body
    failed = await demo_db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'login_code_failed' AND target = 'full@acme'")
    assert failed == 9


async def test_disabling_with_the_cli_ends_the_users_sessions(
        enabled, demo_client, demo_dsn, tmp_path, capsys) -> None:
    b = Browser(demo_client)
    try:
        await password_step(b)
        assert (await b.post("/api/v1/login/totp", {"code": code(enabled["secret"])}))[0] == 200
        off = await cli_json(demo_dsn, tmp_path, capsys, "webuser", "totp", "full@acme",
                             "--disable")
        assert off == {"username": "full@acme", "totp": "off", "sessions_ended": 1}
        async with b.session.get("/api/v1/me") as resp:
            assert resp.status == 401
    finally:
        await b.close()
    # and the password alone logs in again
    api = await Api.login(demo_client, "full@acme")
    await api.close()


async def test_a_user_sets_it_up_and_turns_it_off(users, demo_client, demo_db) -> None:
    me = await users.login("partial@acme")
    elsewhere = await users.login("partial@acme")
    assert (await me.get("/api/v1/me/totp")).body == {
        "enabled": False, "setup_pending": False, "required": False, "recovery_codes_left": 0}
    setup = await me.post("/api/v1/me/totp/setup")
    assert setup.status == 200 and setup.body["otpauth_uri"].startswith("otpauth://totp/")
    secret = setup.body["secret"]
    # not asked at login before it is confirmed
    assert (await me.get("/api/v1/me/totp")).body["setup_pending"] is True
    bad = await me.post("/api/v1/me/totp/confirm", {"code": "000000"})
    assert bad.status == 422 and bad.body["error"]["field"] == "code"
    done = await me.post("/api/v1/me/totp/confirm", {"code": code(secret)})
    assert done.status == 200 and len(done.body["recovery_codes"]) == 10
    assert (await elsewhere.get("/api/v1/me")).status == 401  # other sessions end
    assert (await me.get("/api/v1/me")).status == 200
    assert (await me.get("/api/v1/me/totp")).body["recovery_codes_left"] == 10
    assert (await me.post("/api/v1/me/totp/setup")).status == 409
    # new recovery codes replace the old ones (a current code needed)
    assert (await me.post("/api/v1/me/totp/recovery-codes", {"code": "1"})).status == 422
    fresh = await me.post("/api/v1/me/totp/recovery-codes", {"code": code(secret, 1)})
    assert fresh.status == 200 and set(fresh.body["recovery_codes"]).isdisjoint(
        done.body["recovery_codes"])
    # the login now asks for the code
    b = Browser(demo_client)
    try:
        status, body = await b.post("/api/v1/login", {"username": "partial@acme",
                                                      "password": DEMO_PASSWORD})
        assert body == {"totp_required": True}
        assert (await b.post("/api/v1/login/totp",
                             {"code": fresh.body["recovery_codes"][0]}))[0] == 200
        off = await me.post("/api/v1/me/totp/disable", {"code": fresh.body["recovery_codes"][1]})
        assert off.status == 200, off
        async with b.session.get("/api/v1/me") as resp:
            assert resp.status == 401  # turning it off ended the other session
    finally:
        await b.close()
    assert await demo_db.fetchval("SELECT count(*) FROM totp_credentials") == 0
    assert await demo_db.fetchval("SELECT count(*) FROM totp_recovery_codes") == 0
    actions = {r["action"] for r in await demo_db.fetch("SELECT action FROM audit_log")}
    assert {"totp.enable", "totp.recovery_codes", "totp.disable"} <= actions


async def test_the_secret_is_never_logged(users, caplog) -> None:
    caplog.set_level("DEBUG")
    me = await users.login("limited@acme")
    secret = (await me.post("/api/v1/me/totp/setup")).body["secret"]
    assert (await me.post("/api/v1/me/totp/confirm", {"code": code(secret)})).status == 200
    assert secret not in caplog.text


async def test_the_cli_without_json_and_its_refusals(demo_dsn, demo_db, tmp_path, capsys) -> None:
    cfg = write_test_config(tmp_path, demo_dsn, smtp_port=8025)

    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = await asyncio.to_thread(main, ["admin", *argv, "--config", str(cfg.path)])
        out, err = capsys.readouterr()
        return status, out, err

    status, out, _ = await run("employee", "totp", "tech", "--enable")
    assert status == 0 and "two-factor login of tech is on" in out
    secret = await demo_db.fetchval("SELECT secret FROM totp_credentials")
    assert f"secret: {secret}" in out and "uri: otpauth://totp/" in out
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 10
    status, out, _ = await run("employee", "totp", "tech", "--disable")
    assert status == 0 and "is off" in out
    status, _, err = await run("employee", "totp", "tech", "--disable")
    assert status == 1 and err == 'portald: two-factor login of "tech" is not on\n'
    status, _, err = await run("webuser", "totp", "nobody@acme", "--enable")
    assert status == 1 and "unknown customer web user" in err
    assert await demo_db.fetchval("SELECT count(*) FROM totp_credentials") == 0
    assert await demo_db.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'totp.%'") == 2
