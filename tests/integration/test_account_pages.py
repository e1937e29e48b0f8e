"""The account-data HTML pages on the demo data: the privilege × page matrix (2xx or 403, the
gated sections present or absent, the nav tabs), out-of-scope ids, quote acceptance by form,
the password form, and escaping."""

from __future__ import annotations

import re
from typing import Any

import pytest

from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.accounts import (
    USERS,
    add_custom_user,
    allowed,
    nav_of,
    out_of_scope_for_acme,
    user_menu_of,
)
from tests.support.api import demo_ids, login_as
from tests.support.db import rows, val

# nav tab → (identifier, level) that shows it
TABS = {"/assets": ("assets", "on"), "/contracts": ("contracts", "on"),
        "/documents": ("documents", "on"), "/kb": ("kb", "view"), "/quotes": ("quotes", "view")}


def has_tab(html: str, path: str) -> bool:
    return f'href="{path}"' in nav_of(html)


def check_assets(html: str, user: str) -> None:
    assert "ACME-FS01" in html and "GLX-MAIL" not in html
    has_note = allowed(user, "asset_config_note")
    assert ("Configuration note" in html) == has_note
    assert ("RAID 1" in html) == has_note


def check_contract(html: str, user: str) -> None:
    assert "Managed services" in html and "Monthly flat fee; eight hours" in html
    has_charges = allowed(user, "charges")
    assert ('id="charges-heading"' in html) == has_charges
    assert ("Backup licences" in html) == has_charges
    if has_charges:
        assert re.search(r"Total</th>\s*<td class=\"num\">1,285.00</td>", html)


def check_documents(html: str, user: str) -> None:
    assert "Network overview" in html and "Firewall change log" not in html
    assert re.search(r'<a href="/documents/\d+" download>network-overview.png</a>', html)


def check_kb_article(html: str, user: str) -> None:
    assert "Connecting to the office VPN" in html
    has_files = allowed(user, "kb", "download")
    assert ('id="files-heading"' in html) == has_files
    assert ("vpn-setup.txt" in html) == has_files
    assert ("/files/" in html) == has_files


def check_quotes(html: str, user: str) -> None:
    assert "Q-1001" in html and "Q-2001" not in html
    forms = re.findall(r'<form method="post" action="/quotes/(\d+)/accept"', html)
    # only the one open, unexpired Acme quote offers the button, and only with quotes=accept
    assert len(forms) == (1 if allowed(user, "quotes", "accept") else 0)
    assert "by Alice Anders on" in html  # Q-1002: who accepted, and when


# (path from the ids, identifier, level, check of the page when granted)
PAGES: list[tuple[str, str, str, Any]] = [
    ("/assets", "assets", "on", check_assets),
    ("/contracts", "contracts", "on", None),
    ("/contracts/{contract}", "contracts", "on", check_contract),
    ("/documents", "documents", "on", check_documents),
    ("/kb", "kb", "view", None),
    ("/kb/{kb}", "kb", "view", check_kb_article),
    ("/quotes", "quotes", "view", check_quotes),
    ("/me/password", "change_password", "on", None),
]
DOWNLOADS = [("/documents/{document}", "documents", "on"),
             ("/kb/{kb}/files/{kb_file}", "kb", "download")]


@pytest.mark.parametrize("user", USERS)
async def test_page_matrix(demo_client, demo_dsn: str, user: str) -> None:
    if user == "custom@acme":
        await add_custom_user(demo_dsn)
    ids = await demo_ids(demo_dsn)
    csrf = await login_as(demo_client, user, DEMO_PASSWORD)
    failures = []
    for path, identifier, level, check in PAGES:
        url = path.format_map(ids)
        resp = await demo_client.get(url, allow_redirects=False)
        granted = allowed(user, identifier, level)
        if resp.status != (200 if granted else 403):
            failures.append(f"{url}: {resp.status}")
            continue
        if not granted:
            continue
        html = await resp.text()
        assert resp.headers["Content-Type"].startswith("text/html")
        # every page's nav shows exactly the tabs the privileges allow
        for tab, (tab_identifier, tab_level) in TABS.items():
            assert has_tab(html, tab) == allowed(user, tab_identifier, tab_level), (url, tab)
        assert ('href="/me/password"' in user_menu_of(html)) == allowed(user, "change_password")
        if check is not None:
            check(html, user)
    for path, identifier, level in DOWNLOADS:
        url = path.format_map(ids)
        resp = await demo_client.get(url)
        granted = allowed(user, identifier, level)
        if resp.status != (200 if granted else 403):
            failures.append(f"{url}: {resp.status}")
        elif granted:
            assert resp.headers["Content-Disposition"].startswith("attachment;")
    # the accept form's target: 303 back to the list with the privilege, 403 without
    resp = await demo_client.post(f"/quotes/{ids['Q-1001']}/accept", data={"csrf_token": csrf},
                                  allow_redirects=False)
    if resp.status != (303 if allowed(user, "quotes", "accept") else 403):
        failures.append(f"POST /quotes/…/accept: {resp.status}")
    assert not failures, failures


async def test_limited_user_has_no_account_data_tabs(demo_client) -> None:
    await login_as(demo_client, "limited@acme", DEMO_PASSWORD)
    html = await (await demo_client.get("/kb")).text()
    nav = nav_of(html)
    for label in ("Assets", "Contracts", "Documents", "Quotes"):
        assert f">{label}</a>" not in nav, label
    assert ">Knowledge base</a>" in nav and 'aria-current="page">Knowledge base' in nav
    # and nothing on the page links to them either
    for path in ("/assets", "/contracts", "/documents", "/quotes"):
        assert f'href="{path}' not in html, path


async def test_out_of_scope_ids_are_not_found_on_pages(demo_client, demo_dsn: str, walls) -> None:
    hidden = await out_of_scope_for_acme(demo_dsn)
    g, contracts, quotes = hidden["globex"], hidden["contracts"], hidden["quotes"]
    documents, internal_kb = hidden["documents"], hidden["internal_kb"]
    globex_assets = [r["name"] for r in await rows(demo_dsn, "SELECT name FROM assets WHERE account_id = $1", g)]

    csrf = await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    missing = await demo_client.get(f"/contracts/{2**62}")
    assert missing.status == 404
    missing_body = await missing.text()

    urls = [f"/contracts/{i}" for i in contracts] + [f"/documents/{i}" for i in documents]
    for r in internal_kb:
        urls.append(f"/kb/{r['id']}")
        if r["file_id"]:
            urls.append(f"/kb/{r['id']}/files/{r['file_id']}")
    for url in urls:
        resp = await demo_client.get(url)
        assert resp.status == 404, url
        assert await resp.text() == missing_body, url
    for i in quotes:
        resp = await demo_client.post(f"/quotes/{i}/accept", data={"csrf_token": csrf},
                                      allow_redirects=False)
        assert resp.status == 404, i
    assert await val(demo_dsn, """SELECT count(*) FROM quotes WHERE account_id = $1
                                  AND accepted_at > now() - interval '1 hour'""", g) == 0
    # Globex rows appear on no list page either
    pages = {p: await (await demo_client.get(p)).text()
             for p in ("/assets", "/contracts", "/documents", "/quotes", "/kb")}
    assert not any(name in pages["/assets"] for name in globex_assets)
    assert "Mail hosting" not in pages["/contracts"] and "Q-2001" not in pages["/quotes"]
    assert "Firewall change procedure" not in pages["/kb"]


async def test_accepting_a_quote_by_form(demo_client, demo_dsn: str) -> None:
    ids = await demo_ids(demo_dsn)
    csrf = await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    resp = await demo_client.post(f"/quotes/{ids['Q-1001']}/accept", data={},
                                  allow_redirects=False)
    assert resp.status == 403  # the form without its CSRF token
    resp = await demo_client.post(f"/quotes/{ids['Q-1001']}/accept", data={"csrf_token": csrf},
                                  allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/quotes?accepted={ids['Q-1001']}"
    html = await (await demo_client.get(resp.headers["Location"])).text()
    assert re.search(r'class="notice" role="status">You accepted quote Q-1001 \(Two additional NAS disks\)\s+on \d{4}-', html)
    row = (await rows(demo_dsn, "SELECT status, accepted_by_webuser, accepted_at FROM quotes WHERE id = $1",
                       ids["Q-1001"]))[0]
    assert row["status"] == "accepted" and row["accepted_at"] is not None
    assert row["accepted_by_webuser"] == await val(
        demo_dsn, "SELECT id FROM customer_web_users WHERE username = 'full@acme'")
    assert 'action="/quotes/' not in html  # no quote is acceptable any more

    for quote, message in (("Q-1001", "Quote Q-1001 was already accepted."),
                           ("Q-1003", "Quote Q-1003 was declined and cannot be accepted."),
                           ("Q-1004", "Quote Q-1004 has expired and cannot be accepted.")):
        resp = await demo_client.post(f"/quotes/{ids[quote]}/accept", data={"csrf_token": csrf},
                                      allow_redirects=False)
        assert resp.status == 409, quote
        html = await resp.text()
        # the quotes page itself, with the reason above the list: not an error page
        assert f'<p class="alert" role="alert">{message}</p>' in html
        assert '<nav class="tabs"' in html and "Q-1002" in html
    # a made-up ?accepted= shows no notice
    html = await (await demo_client.get(f"/quotes?accepted={ids['Q-1003']}")).text()
    assert "You accepted" not in html


async def test_password_form(demo_client) -> None:
    csrf = await login_as(demo_client, "partial@acme", DEMO_PASSWORD)

    async def submit(current: str, new: str, repeat: str) -> Any:
        return await demo_client.post("/me/password", allow_redirects=False, data={
            "csrf_token": csrf, "current": current, "new": new, "repeat": repeat})

    resp = await submit("wrong", "a fine new password", "a fine new password")
    assert resp.status == 422
    html = await resp.text()
    assert re.search(r'name="current"[^>]*aria-invalid="true"[^>]*>\s*<span class="field-error" '
                     r'id="current-error">The current password is wrong.</span>', html)
    resp = await submit(DEMO_PASSWORD, "a fine new password", "another password")
    assert resp.status == 422 and 'id="repeat-error"' in await resp.text()
    resp = await submit(DEMO_PASSWORD, "short", "short")
    html = await resp.text()
    assert resp.status == 422 and 'id="new-error">The password must have at least' in html
    resp = await submit(DEMO_PASSWORD, "a fine new password", "a fine new password")
    assert resp.status == 303 and resp.headers["Location"] == "/me/password?changed=1"
    html = await (await demo_client.get("/me/password?changed=1")).text()
    assert "Your password was changed" in html
    # the new password is the one that logs in now
    await demo_client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})
    await login_as(demo_client, "partial@acme", "a fine new password")


async def test_account_data_is_escaped(demo_client, demo_dsn: str) -> None:
    acme = await val(demo_dsn, "SELECT id FROM accounts WHERE name = 'Acme'")
    blob = await val(demo_dsn, "INSERT INTO blobs (data) VALUES ('x') RETURNING id")
    await val(demo_dsn, """INSERT INTO documents (account_id, title, filename, size, blob_id, is_public)
                           VALUES ($1, '<script>alert("doc")</script>', 'x<b>.txt', 1, $2, true)""",
              acme, blob)
    article = await val(demo_dsn, """INSERT INTO kb_articles (title, body, is_public)
        VALUES ('<img src=x onerror=alert(1)>', E'first line\\n<script>alert(''kb'')</script>\\nlast line', true)
        RETURNING id""")
    await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    html = await (await demo_client.get("/documents")).text()
    assert "<script>alert" not in html and "x<b>" not in html
    assert "&lt;script&gt;alert(&#34;doc&#34;)&lt;/script&gt;" in html
    html = await (await demo_client.get(f"/kb/{article}")).text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # the body is text whose line breaks survive (kept by white-space: pre-wrap)
    assert re.search(r'class="article-body prewrap">first line\n&lt;script&gt;alert\(&#39;kb&#39;\)'
                     r"&lt;/script&gt;\nlast line</div>", html)
    html = await (await demo_client.get("/kb")).text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


async def test_employee_pages(demo_client, demo_dsn: str) -> None:
    ids = await demo_ids(demo_dsn)
    # Subcontractors: the account data is off but for the public KB (SPEC §3)
    csrf = await login_as(demo_client, "sub1", DEMO_PASSWORD)
    html = await (await demo_client.get("/")).text()
    assert [tab for tab in TABS if has_tab(html, tab)] == ["/kb"]
    for path in ("/assets", "/contracts", f"/contracts/{ids['contract']}", "/documents", "/quotes"):
        assert (await demo_client.get(path)).status == 403, path
    html = await (await demo_client.get("/kb")).text()
    assert "Connecting to the office VPN" in html and "Firewall change procedure" not in html
    # employees may always change their own password
    resp = await demo_client.get("/me/password")
    assert resp.status == 200 and 'href="/me/password"' in user_menu_of(await resp.text())
    await demo_client.post("/logout", data={"csrf_token": csrf})

    # Standard: every tab, every account, internal rows included
    await login_as(demo_client, "tech", DEMO_PASSWORD)
    html = await (await demo_client.get("/assets")).text()
    assert "Configuration note" in html and "ACME-FS01" in html and "GLX-MAIL" in html
    for tab in TABS:
        assert has_tab(html, tab), tab
    html = await (await demo_client.get("/quotes")).text()
    assert "Q-1001" in html and 'action="/quotes/' not in html  # employees do not accept
    html = await (await demo_client.get(f"/contracts/{ids['contract']}")).text()
    assert 'id="charges-heading"' in html and "Monthly flat fee" in html
    html = await (await demo_client.get("/documents")).text()
    assert "Firewall change log (internal)" in html


async def test_pages_need_a_login(demo_client) -> None:
    for path in ("/assets", "/contracts", "/documents", "/kb", "/quotes", "/me/password"):
        resp = await demo_client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == f"/login?next={path}", path


async def test_pages_are_paginated(demo_client) -> None:
    await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    html = await (await demo_client.get("/quotes?limit=2")).text()
    assert html.count('<tr id="quote-') == 2
    assert '<a href="/quotes?offset=2&amp;limit=2" rel="next">Next page</a>' in html
    html = await (await demo_client.get("/quotes?limit=2&offset=2")).text()
    assert html.count('<tr id="quote-') == 2 and 'rel="next"' not in html
    assert '<a href="/quotes?limit=2">First page</a>' in html
    assert (await demo_client.get("/assets?limit=500")).status == 422
