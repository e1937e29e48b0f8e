"""Login, sessions, CSRF, throttling, the `next` target and route access, through HTTP against
a real database. Session state is changed from the separate `conn`, as another program would.

Each test pays for a database of its own (~0.5 s), so related checks share a test."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from daemon import passwords
from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES
from daemon.app import build_app
from tests.support.api import login_as
from tests.support.seed import SEED_PASSWORD
from web.context import principal
from web.login import safe_next
from web.middleware.access import ROUTE_SPECS, Access, RouteSpec
from web.routes import setup_web

COOKIE = "portald_session"


def session_cookie(client) -> str | None:
    for c in client.session.cookie_jar:
        if c.key == COOKIE:
            return c.value
    return None


def use_cookie(client, token: str) -> None:
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: token})


async def me(client):
    return await client.get("/api/v1/me")


async def post_login(client, username: str, password: str = SEED_PASSWORD, **kw):
    return await client.post("/api/v1/login", json={"username": username, "password": password}, **kw)


# -- login, me, logout ----------------------------------------------------------------------


async def test_login_me_logout_for_a_customer_and_an_employee(client, conn, seed) -> None:
    resp = await post_login(client, "full@acme")
    assert resp.status == 200
    body = await resp.json()
    assert body["kind"] == "customer" and body["username"] == "full@acme"
    assert body["group"] == "Full" and body["account_id"] == seed["acme"]
    assert set(body["privileges"]) == set(CUSTOMER_PRIVILEGES)
    assert body["privileges"]["quotes"] == "accept" and body["privileges"]["charges"] == "on"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie

    resp = await me(client)
    assert resp.status == 200
    mine = await resp.json()
    assert mine["csrf_token"] == body["csrf_token"] and mine["display_name"] == "Full User"

    # only the token's SHA-256 is stored
    token = session_cookie(client)
    assert await conn.fetchval("SELECT count(*) FROM sessions WHERE token_hash = sha256($1::bytea)",
                               token.encode()) == 1

    resp = await client.post("/api/v1/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert resp.status == 200
    resp = await me(client)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_logged_in"
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
    actions = [r["action"] for r in await conn.fetch(
        "SELECT action FROM audit_log WHERE actor = 'webuser:full@acme' ORDER BY id")]
    assert actions == ["login", "logout"]

    await login_as(client, "SUB1")  # user names are case-insensitive
    body = await (await me(client)).json()
    assert body["kind"] == "employee" and body["username"] == "sub1"
    assert body["group"] == "Subcontractors"
    assert set(body["privileges"]) == set(EMPLOYEE_PRIVILEGES)
    assert body["privileges"]["ticket_scope"] == "own" and body["privileges"]["admin"] == "off"
    assert body["all_accounts"] is False and body["account_ids"] == [seed["acme"]]
    assert "account_id" not in body


async def test_unknown_user_and_wrong_password_answer_alike(client, conn, seed,
                                                          monkeypatch) -> None:
    # every argon2 verification the daemon runs, with the hash it checked against
    verified: list[str] = []
    real = passwords._hasher

    class Recording:
        def verify(self, password_hash: str, password: str) -> bool:
            verified.append(password_hash)
            return real.verify(password_hash, password)

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    monkeypatch.setattr(passwords, "_hasher", Recording())

    async def attempt(username: str) -> tuple[int, str]:
        resp = await post_login(client, username, "nope-nope")
        return resp.status, await resp.text()

    wrong = [await attempt("full@acme") for _ in range(3)]
    wrong_hashes, verified[:] = list(verified), []
    unknown = [await attempt("nobody@acme") for _ in range(3)]
    unknown_hashes, verified[:] = list(verified), []
    await conn.execute("UPDATE customer_web_users SET active = false WHERE username = 'limited@acme'")
    inactive = [await attempt("limited@acme")]
    assert set(wrong) == set(unknown) == set(inactive)
    assert wrong[0][0] == 401 and '"invalid_credentials"' in wrong[0][1]
    # an unknown or inactive user costs a full password check too: the same argon2 work, on a
    # hash of the same parameters (a timing comparison would only say so on a quiet machine)
    assert len(wrong_hashes) == len(unknown_hashes) == 3 and len(verified) == 1
    assert unknown_hashes == [passwords.DUMMY_HASH] * 3
    assert {h.rsplit("$", 2)[0] for h in wrong_hashes + unknown_hashes + verified} \
        == {passwords.DUMMY_HASH.rsplit("$", 2)[0]}
    assert await conn.fetchval("SELECT count(*) FROM login_failures") == 7
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'login_failed'") == 7


async def test_login_api_refuses_bad_and_cross_site_requests(client, seed) -> None:
    resp = await client.post("/api/v1/login", data="username=x&password=y",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    resp = await client.post("/api/v1/login", data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    resp = await client.post("/api/v1/login", json={"username": "full@acme"})
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "password"
    assert (await post_login(client, "x" * 5000, "y")).status == 401
    assert (await post_login(client, "full@acme", headers={"Origin": "https://evil.test"})).status == 403
    # the configured public URL is our own origin
    assert (await post_login(client, "full@acme", headers={"Origin": "http://portal.test"})).status == 200


# -- throttling -----------------------------------------------------------------------------


async def test_login_throttled_per_username_and_per_address(client, conn, config, seed) -> None:
    limit = config.http.login_attempts_per_15min
    assert (await post_login(client, "full@acme", "wrong")).status == 401
    # the rest of the failures come from elsewhere, as a distributed guesser's would
    await conn.executemany("INSERT INTO login_failures (username, ip) VALUES ($1, $2)",
                           [("FULL@acme", f"10.0.0.{i}") for i in range(limit - 1)])
    resp = await post_login(client, "full@acme")  # even the right password
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "throttled"
    assert 0 < int(resp.headers["Retry-After"]) <= 15 * 60
    # per user: another user is unaffected, from here (one failure) …
    await login_as(client, "limited@acme")
    # … until this address itself has too many failures, whichever names they tried
    await conn.executemany("INSERT INTO login_failures (username, ip) VALUES ($1, '127.0.0.1')",
                           [(f"guess{i}",) for i in range(limit)])
    resp = await post_login(client, "limited@acme")
    assert resp.status == 429 and "Retry-After" in resp.headers
    # it ends when the failures leave the 15-minute window; success clears the user's count
    await conn.execute("UPDATE login_failures SET at = now() - interval '16 minutes'")
    await login_as(client, "full@acme")
    assert await conn.fetchval(
        "SELECT count(*) FROM login_failures WHERE lower(username) = 'full@acme'") == 0


# -- sessions -------------------------------------------------------------------------------


async def test_login_rotates_the_session(client, conn, seed) -> None:
    await login_as(client, "full@acme")
    first = session_cookie(client)
    await login_as(client, "limited@acme")  # same browser, old cookie sent along
    second = session_cookie(client)
    assert first and second and first != second
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 1
    use_cookie(client, first)
    assert (await me(client)).status == 401
    use_cookie(client, second)
    assert (await me(client)).status == 200


async def test_session_timeouts_and_touch(client, conn, config, seed) -> None:
    idle, hours = config.http.session_idle_minutes, config.http.session_absolute_hours
    await login_as(client, "full@acme")
    # last_seen is written at most once a minute …
    await conn.execute("UPDATE sessions SET last_seen_at = now() - interval '30 seconds'")
    before = await conn.fetchval("SELECT last_seen_at FROM sessions")
    assert (await me(client)).status == 200
    assert await conn.fetchval("SELECT last_seen_at FROM sessions") == before
    # … and touched when older, which keeps an active session alive
    await conn.execute("UPDATE sessions SET last_seen_at = now() - make_interval(mins => $1 - 1)", idle)
    assert (await me(client)).status == 200
    assert await conn.fetchval("SELECT last_seen_at > now() - interval '5 seconds' FROM sessions")
    # idle timeout
    await conn.execute("UPDATE sessions SET last_seen_at = now() - make_interval(mins => $1 + 1)", idle)
    assert (await me(client)).status == 401
    # absolute timeout, by age and by the stored expiry
    await login_as(client, "full@acme")
    await conn.execute("UPDATE sessions SET created_at = now() - make_interval(hours => $1, mins => 1)", hours)
    assert (await me(client)).status == 401
    await login_as(client, "full@acme")
    await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert (await me(client)).status == 401


async def test_secure_cookie_when_public_url_is_https(config, dsn, seed, aiohttp_client) -> None:
    cfg = config.model_copy(update={"http": config.http.model_copy(update={"public_url": "https://portal.test"})})
    client = await aiohttp_client(build_app(cfg, dsn, setup_web=setup_web, background=False))
    resp = await post_login(client, "full@acme")
    assert resp.status == 200
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-portald_session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie


# -- CSRF -----------------------------------------------------------------------------------


async def test_csrf_required_on_state_changing_calls(client, seed) -> None:
    csrf = await login_as(client, "full@acme")
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        resp = await client.post("/api/v1/logout", headers=headers)
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "csrf_failed"
        resp = await client.post("/api/v1/me/password", json={"current": SEED_PASSWORD, "new": "x" * 12},
                                 headers=headers)
        assert resp.status == 403
    # the right token, sent by another site's page
    resp = await client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf, "Origin": "https://evil.test"})
    assert resp.status == 403
    # HTML forms carry it in a hidden field
    resp = await client.post("/logout", data={"csrf_token": "wrong"}, allow_redirects=False)
    assert resp.status == 403 and "text/html" in resp.headers["Content-Type"]
    assert (await me(client)).status == 200  # none of that logged us out
    resp = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert (await me(client)).status == 401
    csrf = await login_as(client, "full@acme")
    assert (await client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})).status == 200


async def _upload(request: web.Request) -> web.Response:
    reader = await request.multipart()  # as an upload handler streams it
    parts = []
    while (part := await reader.next()) is not None:
        parts.append([part.name, part.filename, len(await part.read())])
    return web.json_response(parts)


async def test_csrf_in_multipart_form_keeps_the_upload_streamable(app, aiohttp_client, seed) -> None:
    route = app.router.add_route("POST", "/test/upload", _upload)
    app[ROUTE_SPECS][route] = RouteSpec(public=False, access=Access())
    client = await aiohttp_client(app)
    csrf = await login_as(client, "full@acme")

    def form(*fields: tuple[str, str | bytes]) -> aiohttp.FormData:
        data = aiohttp.FormData()
        for name, value in fields:
            if isinstance(value, bytes):
                data.add_field(name, value, filename="f.bin", content_type="application/octet-stream")
            else:
                data.add_field(name, value)
        return data

    resp = await client.post("/test/upload", data=form(("csrf_token", csrf), ("file", b"x" * 70000),
                                                       ("public", "1")))
    assert resp.status == 200
    assert await resp.json() == [["file", "f.bin", 70000], ["public", None, 1]]
    for fields in ((("csrf_token", "wrong"), ("file", b"x")),
                   (("file", b"x"), ("csrf_token", csrf)),  # must come first
                   (("file", b"x"),)):
        resp = await client.post("/test/upload", data=form(*fields))
        assert resp.status == 403, fields
    for content_type in ("multipart/form-data; boundary=y", "multipart/form-data"):
        resp = await client.post("/test/upload", data=b"--x\r\nnonsense",
                                 headers={"Content-Type": content_type})
        assert resp.status in (400, 403), content_type  # never a 500
    # the API sends the header instead; the body is then the handler's alone
    resp = await client.post("/test/upload", data=form(("file", b"y" * 10)), headers={"X-CSRF-Token": csrf})
    assert resp.status == 200 and await resp.json() == [["file", "f.bin", 10]]


# -- HTML login and the next target ---------------------------------------------------------


def form_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


NEXT_TARGETS = [
    ("/tickets/5?tab=notes", "/tickets/5?tab=notes"),
    ("//evil.test", "/"),
    ("https://evil.test", "/"),
    ("/\\evil.test", "/"),
    ("/\t/evil.test", "/"),
    ("javascript:alert(1)", "/"),
    ("http:/evil.test", "/"),
    ("", "/"),
]


@pytest.mark.parametrize("target, landing", NEXT_TARGETS)
def test_safe_next(target: str, landing: str) -> None:
    assert safe_next(target) == landing


async def test_html_login(client, seed) -> None:
    # the form's token must match its cookie: a forged login post is refused
    page = await client.get("/login", params={"next": '/"><script>x</script>'})
    html = await page.text()
    assert page.status == 200 and "<script>x" not in html
    resp = await client.post("/login", data={"username": "full@acme", "password": SEED_PASSWORD,
                                             "csrf_token": "forged", "next": "/"}, allow_redirects=False)
    assert resp.status == 403 and "expired" in await resp.text()
    assert session_cookie(client) is None
    # a failed login shows the one message, escaped input and all
    resp = await client.post("/login", data={"username": "<b>nobody</b>", "password": "x",
                                             "csrf_token": form_token(html), "next": "/"},
                             allow_redirects=False)
    text = await resp.text()
    assert resp.status == 401 and "wrong username or password" in text and "<b>nobody" not in text
    # open-redirect attempts land on /: through the form …
    for target, landing in NEXT_TARGETS[:2]:
        client.session.cookie_jar.clear()
        page = await client.get("/login", params={"next": target})
        resp = await client.post("/login", data={
            "username": "full@acme", "password": SEED_PASSWORD, "next": target,
            "csrf_token": form_token(await page.text())}, allow_redirects=False)
        assert resp.status == 303, target
        assert resp.headers["Location"] == landing, target
        assert session_cookie(client)
    # … and when already logged in, where the login page sends us straight on
    for target, landing in NEXT_TARGETS:
        resp = await client.get("/login", params={"next": target}, allow_redirects=False)
        assert resp.status == 303, target
        assert resp.headers["Location"] == landing, target


# -- route access ---------------------------------------------------------------------------


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"user": principal(request).username})


async def test_route_access(app, aiohttp_client, seed) -> None:
    """Routes declaring access as feature routes will; and one outside the table."""
    extra = {
        ("GET", "/api/v1/test/assets"): Access(privilege=("assets", "on")),
        ("GET", "/api/v1/test/quotes-accept"): Access(kind="customer", privilege=("quotes", "accept")),
        ("GET", "/api/v1/test/employees"): Access(kind="employee", employee_right=("log_charges", "on")),
        ("GET", "/api/v1/test/admin"): Access(kind="employee", admin=True),
        ("GET", "/test/page"): Access(privilege=("assets", "on")),
    }
    for (method, path), access in extra.items():
        route = app.router.add_route(method, path, _ok)
        app[ROUTE_SPECS][route] = RouteSpec(public=False, access=access)
    app.router.add_get("/api/v1/test/undeclared", _ok)  # not in the table: must stay closed
    client = await aiohttp_client(app)

    assert (await client.get("/api/v1/test/assets")).status == 401
    resp = await client.get("/test/page?x=1", allow_redirects=False)
    assert resp.status == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == ["/test/page?x=1"]

    cases = [
        ("full@acme", "/api/v1/test/assets", 200),
        ("limited@acme", "/api/v1/test/assets", 403),
        ("limited@acme", "/test/page", 403),
        ("sub1", "/api/v1/test/assets", 200),  # customer privileges do not bind employees
        ("full@acme", "/api/v1/test/quotes-accept", 200),
        ("limited@acme", "/api/v1/test/quotes-accept", 403),
        ("tech", "/api/v1/test/quotes-accept", 403),
        ("sub1", "/api/v1/test/employees", 200),
        ("full@acme", "/api/v1/test/employees", 403),
        ("admin", "/api/v1/test/admin", 200),
        ("tech", "/api/v1/test/admin", 403),
        ("full@acme", "/api/v1/test/undeclared", 404),
    ]
    cookies = {}
    for username in {c[0] for c in cases}:  # one login each: argon2 is the slow part
        client.session.cookie_jar.clear()
        await login_as(client, username)
        cookies[username] = session_cookie(client)
    for username, path, status in cases:
        use_cookie(client, cookies[username])
        resp = await client.get(path)
        assert resp.status == status, (username, path)
        if status == 403 and path.startswith("/api/"):
            assert (await resp.json())["error"]["code"] == "forbidden"


def test_access_specs_are_checked_at_import() -> None:
    for bad in (dict(privilege=("nope", "on")), dict(privilege=("kb", "on")),
                dict(kind="employee", privilege=("assets", "on")),
                dict(kind="customer", employee_right=("admin", "on")), dict(kind="robot")):
        with pytest.raises(ValueError):
            Access(**bad)


# -- deactivation, licenses, password -------------------------------------------------------


async def test_deactivated_customer_is_out_at_once(client, conn, seed) -> None:
    await login_as(client, "full@acme")
    await conn.execute("UPDATE customer_web_users SET active = false WHERE username = 'full@acme'")
    assert (await me(client)).status == 401
    resp = await post_login(client, "full@acme")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_credentials"
    await conn.execute("UPDATE customer_web_users SET active = true WHERE username = 'full@acme'")
    await login_as(client, "full@acme")


async def test_employee_without_seat_is_out_and_cannot_log_in(client, conn, seed) -> None:
    for change, undo in (("web_access = false", "web_access = true"), ("active = false", "active = true")):
        await login_as(client, "sub1")
        await conn.execute(f"UPDATE employees SET {change} WHERE username = 'sub1'")
        assert (await me(client)).status == 401, change
        assert (await post_login(client, "sub1")).status == 401, change
        await conn.execute(f"UPDATE employees SET {undo} WHERE username = 'sub1'")
    # a seat freed by deactivation is free for someone else at once
    await conn.execute("UPDATE employees SET web_access = false WHERE username = 'sub2'")
    await conn.execute("UPDATE licenses SET seats = seats_in_use()")
    with pytest.raises(asyncpg.RaiseError, match="no free license seat"):
        await conn.execute("UPDATE employees SET web_access = true WHERE username = 'sub2'")
    await conn.execute("UPDATE employees SET web_access = false WHERE username = 'sub1'")
    await conn.execute("UPDATE employees SET web_access = true WHERE username = 'sub2'")
    await login_as(client, "sub2")
    assert (await post_login(client, "sub1")).status == 401


async def test_password_change(client, conn, seed) -> None:
    await login_as(client, "full@acme")
    other = session_cookie(client)
    client.session.cookie_jar.clear()  # a second browser
    csrf = await login_as(client, "full@acme")
    h = {"X-CSRF-Token": csrf}
    resp = await client.post("/api/v1/me/password", json={"current": "wrong", "new": "new password 1"}, headers=h)
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "current"
    resp = await client.post("/api/v1/me/password", json={"current": SEED_PASSWORD, "new": "short"}, headers=h)
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "new"
    resp = await client.post("/api/v1/me/password", json={"current": SEED_PASSWORD, "new": "new password 1"},
                             headers=h)
    assert resp.status == 200
    assert (await me(client)).status == 200  # this session goes on
    mine = session_cookie(client)
    use_cookie(client, other)
    assert (await me(client)).status == 401  # the other one ended
    use_cookie(client, mine)
    assert (await post_login(client, "full@acme")).status == 401
    await login_as(client, "full@acme", "new password 1")
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'password.change'") == 1

    # customers need the privilege; employees always may
    await conn.execute("UPDATE customer_groups SET change_password = false WHERE name = 'Custom'")
    csrf = await login_as(client, "custom@acme")
    resp = await client.post("/api/v1/me/password", json={"current": SEED_PASSWORD, "new": "new password 1"},
                             headers={"X-CSRF-Token": csrf})
    assert resp.status == 403
    csrf = await login_as(client, "sub2")
    resp = await client.post("/api/v1/me/password", json={"current": SEED_PASSWORD, "new": "new password 1"},
                             headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
