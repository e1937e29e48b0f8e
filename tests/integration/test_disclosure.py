"""What the portal shows and says of itself: file names without control, format or bidi
characters wherever they are stored, listed or sent; HTML that no other site may frame; no
aiohttp version in `Server`; /metrics only for those [http] metrics_allow or metrics_token
names."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import pytest
from aiohttp import FormData

from daemon.app import build_app
from tests.support.config import with_settings
from tests.support.raw import http, raw_request
from web.routes import setup_web

TRICKY = "invoice\u202efdp.exe"  # shows as "invoiceexe.pdf"
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\x00-\x1f\x7f]")


def assert_plain(text: str) -> None:
    assert not INVISIBLE.search(text), ascii(text)


async def test_an_uploaded_file_name_loses_its_bidi_override(users, demo_db) -> None:
    api = await users.login("full@acme")
    ticket = (await api.get("/api/v1/tickets", limit=1)).body["items"][0]["id"]
    form = FormData(quote_fields=False)  # the name's UTF-8 as a browser sends it
    form.add_field("file", b"hello", filename=TRICKY + "\u200b\u2066", content_type="text/plain")
    up = await api.post(f"/api/v1/tickets/{ticket}/attachments", data=form)
    assert up.status == 201 and up.body["filename"] == "invoicefdp.exe"
    assert await demo_db.fetchval("SELECT filename FROM attachments WHERE id = $1",
                                  up.body["id"]) == "invoicefdp.exe"
    listed = (await api.get(f"/api/v1/tickets/{ticket}/attachments")).body["items"]
    assert "invoicefdp.exe" in [a["filename"] for a in listed]
    got = await api.get(up.body["download_url"])
    assert_plain(unquote(got.headers["Content-Disposition"]))


async def test_stored_names_are_shown_and_sent_plain(users, demo_db) -> None:
    # names another program wrote into the database
    doc = await demo_db.fetchval(
        "UPDATE documents SET filename = $1 WHERE id = (SELECT min(id) FROM documents "
        "WHERE is_public AND account_id = (SELECT id FROM accounts WHERE name = 'Acme')) "
        "RETURNING id", TRICKY)
    kb_file, article = (await demo_db.fetchrow(
        "UPDATE kb_files SET filename = $1 WHERE id = (SELECT min(f.id) FROM kb_files f "
        "JOIN kb_articles a ON a.id = f.article_id WHERE a.is_public) "
        "RETURNING id, article_id", "notes\u2067\u202e.txt\u0007"))
    await demo_db.execute("UPDATE attachments SET filename = $1 WHERE id = (SELECT min(id) FROM "
                          "attachments WHERE is_public)", TRICKY)
    api = await users.login("full@acme")
    docs = (await api.get("/api/v1/documents", limit=200)).body["items"]
    assert "invoicefdp.exe" in [d["filename"] for d in docs]
    for d in docs:
        assert_plain(d["filename"])
    sent = await api.get(f"/api/v1/documents/{doc}")
    assert sent.status == 200 and "invoicefdp.exe" in unquote(sent.headers["Content-Disposition"])
    assert_plain(unquote(sent.headers["Content-Disposition"]))
    files = (await api.get(f"/api/v1/kb/{article}")).body["files"]
    assert [f["filename"] for f in files if f["id"] == kb_file] == ["notes.txt"]
    for page in ("/documents", f"/kb/{article}"):
        html = (await api.get(page)).body.decode()
        assert_plain(re.sub(r"\s", " ", html))
    tech = await users.login("tech")
    ticket = await demo_db.fetchval("SELECT ticket_id FROM attachments WHERE filename = $1", TRICKY)
    for page in (f"/tickets/{ticket}", f"/tickets/{ticket}/print"):
        html = (await tech.get(page)).body.decode()
        assert "invoicefdp.exe" in html
        assert_plain(re.sub(r"\s", " ", html))


async def test_html_forbids_framing_and_no_version_is_told(demo_client, users) -> None:
    api = await users.login("full@acme")
    for path in ("/tickets", "/documents", "/no-such-page"):
        reply = await api.get(path)
        assert reply.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], path
        assert reply.headers["Server"] == "portald", path
    login = await demo_client.get("/login")
    assert login.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]
    me = await api.get("/api/v1/me")
    assert me.headers["Server"] == "portald"
    # bytes that are not HTTP at all: aiohttp answers them itself
    garbage = await raw_request(demo_client.server.port, b"\x16\x03\x01 nonsense\r\n\r\n")
    assert 400 <= garbage.status < 500 and garbage.headers.get("server", "portald") == "portald"
    assert "aiohttp" not in json.dumps(garbage.headers).lower()


async def test_metrics_are_for_loopback_by_default(demo_client) -> None:
    assert (await demo_client.get("/metrics")).status == 200


@pytest.fixture
def metrics_app(demo_config, demo_dsn):
    cfg = with_settings(demo_config, http={"metrics_allow": (), "metrics_token": "s3cret-token"})
    return build_app(cfg, demo_dsn, setup_web=setup_web, background=False)


async def test_metrics_elsewhere_need_the_token(metrics_app, aiohttp_client) -> None:
    client = await aiohttp_client(metrics_app)
    assert (await client.get("/metrics")).status == 403
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 403
    ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status == 200 and "portald_http_requests" in await ok.text()
    weird = await raw_request(client.server.port, http("GET", "/metrics", b"Authorization: Bearer \xff"))
    assert weird.status == 403
