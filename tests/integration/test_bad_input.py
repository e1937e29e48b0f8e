"""Input of any shape gets a 4xx in the error format (SPEC §7, §8), never a 500: bytes that are
not UTF-8 in cookies and headers, NUL and lone surrogates, deep JSON and bad charsets, huge or
non-numeric ids, on the API, the portal pages and the admin pages alike (each case reproduced
a 500 before)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from daemon.cli import main
from tests.support.config import write_test_config
from tests.support.raw import http, raw_request

JSON = b"Content-Type: application/json"
FORM = b"Content-Type: application/x-www-form-urlencoded"


def port_of(client) -> int:
    return client.server.port


def assert_error_json(reply, status: int | tuple[int, ...]) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert reply.status in statuses, (reply.status, reply.body[:300])
    error = json.loads(reply.body)["error"]
    assert error["code"] and error["message"], error
    return error


async def _cookie(users, username: str) -> bytes:
    api = await users.login(username)
    cookie = next(iter(api.session.cookie_jar))
    return b"Cookie: %s=%s" % (cookie.key.encode(), cookie.value.encode()), api.csrf.encode()


@pytest.mark.parametrize("cookie", [b"portald_session=\xff", b"portald_session=\xff\xfe\x80",
                                    b"portald_session=" + b"a" * 5000, b"portald_session=%00"])
async def test_a_session_cookie_that_is_not_utf8_is_not_logged_in(demo_client, cookie: bytes) -> None:
    reply = await raw_request(port_of(demo_client), http("GET", "/api/v1/me", b"Cookie: " + cookie))
    assert_error_json(reply, 401)
    page = await raw_request(port_of(demo_client), http("GET", "/tickets", b"Cookie: " + cookie))
    assert page.status == 303 and page.headers["location"].startswith("/login")


async def test_a_csrf_header_that_is_not_utf8_is_refused(demo_client, users) -> None:
    cookie, _csrf = await _cookie(users, "full@acme")
    for token in (b"\xff", b"\xed\xa0\x80", b"x" * 300):
        reply = await raw_request(port_of(demo_client), http(
            "POST", "/api/v1/tickets", cookie, JSON, b"X-CSRF-Token: " + token,
            body=b'{"description": "x"}'))
        assert assert_error_json(reply, 403)["code"] == "csrf_failed"


async def test_a_login_form_cookie_that_is_not_utf8_is_refused(demo_client) -> None:
    port = port_of(demo_client)
    page = await raw_request(port, http("GET", "/login", b"Cookie: portald_login=\xff"))
    assert page.status == 200 and b"\xff" not in page.headers.get("set-cookie", "").encode("latin-1")
    posted = await raw_request(port, http("POST", "/login", b"Cookie: portald_login=\xff", FORM,
                                          body=b"username=tech&password=demo&csrf_token=%C3%BF"))
    assert posted.status == 403 and b"expired" in posted.body


@pytest.mark.parametrize("path", ["/api/v1/login", "/api/v1/me/password"])
async def test_deep_json_and_bad_charsets_are_refused(demo_client, users, path: str) -> None:
    cookie, csrf = await _cookie(users, "full@acme")
    port = port_of(demo_client)
    auth = (cookie, b"X-CSRF-Token: " + csrf)
    deep = await raw_request(port, http("POST", path, *auth, JSON, body=b"[" * 60000))
    assert_error_json(deep, (400, 413))
    nested = await raw_request(port, http("POST", path, *auth, JSON,
                                          body=b'{"username": ' + b"[" * 3000 + b"]" * 3000 + b"}"))
    assert_error_json(nested, (400, 422))
    charset = await raw_request(port, http("POST", path, *auth,
                                           b"Content-Type: application/json; charset=x-nope",
                                           body=b'{"username": "a", "password": "b"}'))
    assert_error_json(charset, 415)


@pytest.mark.parametrize("body", [
    {"username": "ad\u0000min", "password": "demo"},
    {"username": "\ud800", "password": "demo"},
    {"username": "admin", "password": "de\u0000mo"},
    {"username": "admin", "password": "\udfff"},
])
async def test_nul_and_lone_surrogates_in_a_json_login(demo_client, body: dict) -> None:
    raw = json.dumps(body).encode()  # json.dumps writes "\ud800" as the JSON escape it is
    reply = await raw_request(port_of(demo_client), http("POST", "/api/v1/login", JSON, body=raw))
    error = assert_error_json(reply, 422)
    assert error["field"] in ("username", "password")


@pytest.mark.parametrize("form", [b"username=ad%00min&password=demo", b"username=%ED%A0%80&password=demo",
                                  b"username=admin&password=%00", b"username=%FF%FE&password=%FF"])
async def test_nul_and_bad_bytes_in_the_login_form(demo_client, form: bytes) -> None:
    port = port_of(demo_client)
    page = await raw_request(port, http("GET", "/login"))
    token = page.headers["set-cookie"].split("portald_login=", 1)[1].split(";", 1)[0]
    reply = await raw_request(port, http("POST", "/login", b"Cookie: portald_login=" + token.encode(),
                                         FORM, body=form + b"&csrf_token=" + token.encode()))
    assert 400 <= reply.status < 500, (reply.status, reply.body[:300])


async def test_a_new_password_with_a_lone_surrogate(users) -> None:
    api = await users.login("full@acme")
    reply = await api.post("/api/v1/me/password", None, data=json.dumps(
        {"current": "demo", "new": "\ud800" + "x" * 10}), headers={"Content-Type": "application/json"})
    assert reply.status == 422 and reply.body["error"]["field"] == "new"


async def test_a_search_with_nul_on_the_ticket_pages(demo_client, users) -> None:
    cookie, _ = await _cookie(users, "tech")
    for path in ("/tickets?q=%00", "/?q=%00", "/tickets?q=%ED%A0%80&status=%00"):
        reply = await raw_request(port_of(demo_client), http("GET", path, cookie))
        assert 400 <= reply.status < 500, (path, reply.status, reply.body[:200])
    api = await users.login("tech")
    assert (await api.get("/api/v1/tickets", q="\x00")).status == 422


@pytest.mark.parametrize(("path", "status"), [
    ("/admin/audit?to=9999-12-31", 200),
    ("/admin/audit?from=9999-12-31&to=9999-12-31", 200),
    ("/admin/audit?actor=%00", 422),
    ("/admin/audit?from=%ED%A0%80", 422),
    ("/admin/audit?page=99999999999999999999999", 200),
    ("/admin/explain?user=admin&ticket=%C2%B2", 422),
    ("/admin/explain?user=admin&ticket=99999999999999999999", 422),
    ("/admin/explain?user=ad%00min&ticket=1", 422),
    ("/admin/explain?user=%ED%A0%80&ticket=1", 422),
    ("/admin/groups/%D9%A3", 404),  # an Arabic-Indic 3 is not group 3
    ("/admin/employees/99999999999999999999", 404),
    ("/admin/tickets?id=%C2%B2", 303),
])
async def test_bad_input_on_the_admin_pages(demo_client, users, path: str, status: int) -> None:
    cookie, _ = await _cookie(users, "admin")
    reply = await raw_request(port_of(demo_client), http("GET", path, cookie))
    assert reply.status == status, (path, reply.status, reply.body[:300])


@pytest.mark.parametrize("ticket", ["99999999999999999999", "²", "٣", "T-1000\x00"])
async def test_explain_on_the_command_line_refuses_bad_tickets(demo_dsn: str, tmp_path: Path, ticket: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_test_config(tmp_path, demo_dsn, smtp_port=8025)
    code = await asyncio.to_thread(main, ["admin", "explain", "admin", ticket, "--config", str(cfg.path)])
    err = capsys.readouterr().err
    assert code == 1 and "no ticket" in err and "Traceback" not in err, err


async def test_explain_on_the_command_line_refuses_a_user_with_nul(demo_dsn: str, tmp_path: Path,
                                                                   capsys, monkeypatch) -> None:
    cfg = write_test_config(tmp_path, demo_dsn, smtp_port=8025)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = await asyncio.to_thread(main, ["admin", "explain", "ad\x00min", "1", "--config", str(cfg.path)])
    assert code == 1 and "no customer web user or employee" in capsys.readouterr().err
