"""A small fuzz of our own, over raw sockets (so that any bytes go): every route of the route
table, with odd path ids, query strings, headers, cookies, form and multipart bodies, as an
administrator and as a customer. Nothing may answer 5xx; an API answer of 4xx is in the error
format. Seeded, so a failure is found again; bounded in requests."""

from __future__ import annotations

import json
import random
import re

import pytest

from tests.support.raw import http, raw_request
from web.routes import ROUTES

REQUESTS_PER_USER = 700
IDS = ["\u0663", "%D9%A3", "%C2%B2", "%00", "%FF", "0", "-1", "1e3", "99999999999999999999",
       "9223372036854775808", "1", "2", "%2e%2e", "a" * 300, "%ED%A0%80", "1%0A2"]
TEXTS = ["", "%00", "%FF%FE", "%ED%A0%80", "%0D%0ASet-Cookie:x=y", "=?utf-8?b?DQo=?=", "x" * 3000,
         "%E2%80%AE", "1", "-1", "99999999999999999999", "on", "all", "open", "T-1000", "%22%3E%3Cscript%3E",
         "9999-12-31", "0000-00-00", "[]", "{}", "null", "true"]
NAMES = ["q", "status", "limit", "offset", "cursor", "account_id", "assigned", "id", "page", "from",
         "to", "actor", "user", "ticket", "next", "done", "accepted", "account", "mine", "x", "csrf_token",
         "username", "password", "description", "priority", "asset_id", "body", "kind", "hours",
         "employee_ids", "name", "group", "active", "public", "subject", "note", "scope", "accounts"]
HEADERS = [b"Cookie: portald_session=\xff", b"Cookie: portald_login=\xfe\xff", b"X-CSRF-Token: \xff",
           b"Origin: http://portal.test", b"Origin: \xff", b"X-Forwarded-For: \xff, ::1",
           b"Accept: */*", b"User-Agent: \xff\xfe", b"Authorization: Bearer \xff",
           b"Content-Type: application/json; charset=x-nope", b"Content-Type: multipart/form-data",
           b"Content-Type: multipart/form-data; boundary=", b"Accept-Language: \xff",
           b"If-None-Match: \xff", b"Range: bytes=\xff-"]
PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _path(rnd: random.Random, template: str) -> str:
    path = PARAM.sub(lambda m: rnd.choice(IDS), template)
    if rnd.random() < 0.6:
        pairs = [f"{rnd.choice(NAMES)}={rnd.choice(TEXTS)}" for _ in range(rnd.randint(1, 4))]
        path += "?" + "&".join(pairs)
    return path


def _body(rnd: random.Random, csrf: bytes) -> tuple[list[bytes], bytes]:
    kind = rnd.choice(["form", "json", "multipart", "junk"])
    if kind == "form":
        fields = [f"{rnd.choice(NAMES)}={rnd.choice(TEXTS)}" for _ in range(rnd.randint(0, 5))]
        return ([b"Content-Type: application/x-www-form-urlencoded"],
                ("&".join(fields) + "&csrf_token=").encode() + csrf)
    if kind == "json":
        body = {rnd.choice(NAMES): rnd.choice([None, 1, -1, 10**30, 1.5, "", "\x00", "\ud800", [],
                                               {}, True, "x" * 3000, [1, "a", None]])
                for _ in range(rnd.randint(0, 5))}
        return [b"Content-Type: application/json"], json.dumps(body).encode()
    if kind == "multipart":
        name = rnd.choice([b"a.txt", b"\xff\xfe", b"x\x01y", b"..\\..\\e", "\u202e.exe".encode(), b""])
        parts = (b"--B\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + csrf +
                 b"\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name +
                 b"\"\r\nContent-Type: " + rnd.choice([b"text/plain", b"\xff", b""]) +
                 b"\r\n\r\nhello\r\n" + rnd.choice([b"--B--\r\n", b"--B\r\n", b"", b"--C--\r\n"]))
        return [b"Content-Type: multipart/form-data; boundary=B"], parts
    return [b"Content-Type: " + rnd.choice([b"text/plain", b"application/json", b"\xff"])], \
        bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 200)))


async def _login_headers(users, username: str) -> tuple[bytes, bytes]:
    api = await users.login(username)
    cookie = next(iter(api.session.cookie_jar))
    return b"Cookie: %s=%s" % (cookie.key.encode(), cookie.value.encode()), api.csrf.encode()


@pytest.mark.parametrize("username", ["admin", "full@acme"])
async def test_odd_requests_on_every_route_get_no_5xx(demo_client, users, username: str) -> None:
    rnd = random.Random(f"fuzz-{username}")
    cookie, csrf = await _login_headers(users, username)
    routes = [r for r in ROUTES if r.path not in ("/logout", "/api/v1/logout")]
    port = demo_client.server.port
    for n in range(REQUESTS_PER_USER):
        route = rnd.choice(routes)
        headers = [cookie, b"X-CSRF-Token: " + csrf] if rnd.random() < 0.8 else []
        headers += rnd.sample(HEADERS, rnd.randint(0, 2))
        body = b""
        if route.method in ("POST", "PUT", "PATCH"):
            extra, body = _body(rnd, csrf)
            headers += extra
        path = _path(rnd, route.path)
        reply = await raw_request(port, http(route.method, path, *headers, body=body))
        assert reply.status < 500, (n, route.method, path, headers, body[:200], reply.body[:300])
        # bytes aiohttp cannot even parse as a request (a raw Unicode path, a header twice)
        # never reach the application: aiohttp answers those 400s itself, in plain text
        if path.startswith("/api/") and reply.status >= 400 and reply.body and \
                not reply.headers.get("content-type", "").startswith("text/plain"):
            assert "error" in json.loads(reply.body), (route.method, path, reply.body[:200])
