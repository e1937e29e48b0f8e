"""The account-data JSON API (SPEC §2, §7) on the demo data: a privilege × route matrix per
user, gated fields, out-of-scope ids answering exactly like missing ones, quote acceptance,
downloads and their audit, pagination, and what employees may read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.accounts import USERS, add_custom_user, allowed, out_of_scope_for_acme
from tests.support.api import demo_ids, login_as
from tests.support.db import fingerprint, rows, val

MISSING_ID = 2**62


async def _json(resp: Any) -> Any:
    return await resp.json(content_type=None)


async def check_assets(resp: Any, user: str, ids: dict) -> None:
    items = (await _json(resp))["items"]
    assert {i["name"] for i in items} == {"ACME-FS01", "ACME-FW", "Reception PC"}
    has_note = allowed(user, "asset_config_note")
    assert all(("config_note" in i) == has_note for i in items), items
    if has_note:
        assert any("RAID 1" in i["config_note"] for i in items)


async def check_contract(resp: Any, user: str, ids: dict) -> None:
    body = await _json(resp)
    assert body["name"] == "Managed services"
    assert ("charges" in body) == allowed(user, "charges")
    assert ("charges_total" in body) == allowed(user, "charges")
    if allowed(user, "charges"):
        assert len(body["charges"]) == 2
        assert body["charges_total"] == "1285.00"
        assert sum(Decimal(c["amount"]) for c in body["charges"]) == Decimal("1285.00")


async def check_documents(resp: Any, user: str, ids: dict) -> None:
    titles = {d["title"] for d in (await _json(resp))["items"]}
    assert titles == {"Network overview", "Service agreement"}  # public Acme ones only


async def check_download(resp: Any, user: str, ids: dict) -> None:
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert len(await resp.read()) > 0


async def check_kb_list(resp: Any, user: str, ids: dict) -> None:
    titles = {a["title"] for a in (await _json(resp))["items"]}
    assert titles == {"Resetting your portal password", "Connecting to the office VPN",
                      "Printer troubleshooting basics"}


async def check_kb_article(resp: Any, user: str, ids: dict) -> None:
    body = await _json(resp)
    assert "WireGuard" in body["body"]
    assert ("files" in body) == allowed(user, "kb", "download")
    if "files" in body:
        assert {f["filename"] for f in body["files"]} == {"vpn-setup.txt", "vpn-client.png"}


async def check_quotes(resp: Any, user: str, ids: dict) -> None:
    numbers = {q["number"] for q in (await _json(resp))["items"]}
    assert numbers == {"Q-1001", "Q-1002", "Q-1003", "Q-1004"}


async def check_accepted(resp: Any, user: str, ids: dict) -> None:
    body = await _json(resp)
    assert body["status"] == "accepted" and body["accepted_by"] == user


async def check_password_refused(resp: Any, user: str, ids: dict) -> None:
    # granted: the request reached the password check, which refused the wrong current one
    assert (await _json(resp))["error"]["field"] == "current"


# (method, path from the ids, identifier, level, status when granted, check when granted)
MATRIX: list[tuple[str, str, str, str, int, Any]] = [
    ("GET", "/api/v1/assets", "assets", "on", 200, check_assets),
    ("GET", "/api/v1/contracts", "contracts", "on", 200, None),
    ("GET", "/api/v1/contracts/{contract}", "contracts", "on", 200, check_contract),
    ("GET", "/api/v1/documents", "documents", "on", 200, check_documents),
    ("GET", "/api/v1/documents/{document}", "documents", "on", 200, check_download),
    ("GET", "/api/v1/kb", "kb", "view", 200, check_kb_list),
    ("GET", "/api/v1/kb/{kb}", "kb", "view", 200, check_kb_article),
    ("GET", "/api/v1/kb/{kb}/files/{kb_file}", "kb", "download", 200, check_download),
    ("GET", "/api/v1/quotes", "quotes", "view", 200, check_quotes),
    ("POST", "/api/v1/quotes/{Q-1001}/accept", "quotes", "accept", 200, check_accepted),
    ("POST", "/api/v1/me/password", "change_password", "on", 422, check_password_refused),
]


def test_matrix_covers_every_gated_identifier() -> None:
    from tests.support.accounts import GATED

    routed = {m[2] for m in MATRIX}
    # the configuration note and charges ride on the assets and contract routes
    assert routed | {"asset_config_note", "charges"} == set(GATED)


@pytest.mark.parametrize("user", USERS)
async def test_privilege_matrix(demo_client, demo_dsn: str, user: str) -> None:
    if user == "custom@acme":
        await add_custom_user(demo_dsn)
    ids = await demo_ids(demo_dsn)
    csrf = await login_as(demo_client, user, DEMO_PASSWORD)
    failures = []
    for method, path, identifier, level, granted_status, check in MATRIX:
        url = path.format_map(ids)
        kwargs: dict[str, Any] = {"headers": {"X-CSRF-Token": csrf}}
        if url.endswith("/password"):
            kwargs["json"] = {"current": "not the password", "new": "a new password 123"}
        resp = await demo_client.request(method, url, **kwargs)
        granted = allowed(user, identifier, level)
        expected = granted_status if granted else 403
        if resp.status != expected:
            failures.append(f"{method} {url}: {resp.status}, expected {expected}")
            continue
        if granted and check is not None:
            await check(resp, user, ids)
        elif not granted:
            assert (await _json(resp))["error"]["code"] == "forbidden"
    assert not failures, failures


async def test_out_of_scope_ids_answer_like_missing_ones(demo_client, demo_dsn: str, walls) -> None:
    hidden = await out_of_scope_for_acme(demo_dsn)
    contracts, assets, quotes = hidden["contracts"], hidden["assets"], hidden["quotes"]
    documents, internal_kb = hidden["documents"], hidden["internal_kb"]
    public_kb = await val(demo_dsn, "SELECT id FROM kb_articles WHERE title = 'Connecting to the office VPN'")
    assert contracts and assets and quotes and documents and any(r["file_id"] for r in internal_kb)
    before = await fingerprint(demo_dsn)
    last_audit = await val(demo_dsn, "SELECT coalesce(max(id), 0) FROM audit_log")

    csrf = await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    missing_bodies = set()
    for path in ("/api/v1/contracts/{}", "/api/v1/documents/{}", "/api/v1/kb/{}",
                 "/api/v1/kb/{}/files/1"):
        resp = await demo_client.get(path.format(MISSING_ID))
        assert resp.status == 404
        missing_bodies.add(await resp.text())
    resp = await demo_client.post(f"/api/v1/quotes/{MISSING_ID}/accept", headers={"X-CSRF-Token": csrf})
    assert resp.status == 404
    missing_bodies.add(await resp.text())
    assert len(missing_bodies) == 1  # one and the same "not found"

    requests: list[tuple[str, str]] = []
    requests += [("GET", f"/api/v1/contracts/{i}") for i in contracts]
    requests += [("GET", f"/api/v1/documents/{i}") for i in documents]
    requests += [("POST", f"/api/v1/quotes/{i}/accept") for i in quotes]
    for r in internal_kb:
        requests.append(("GET", f"/api/v1/kb/{r['id']}"))
        if r["file_id"]:
            requests.append(("GET", f"/api/v1/kb/{r['id']}/files/{r['file_id']}"))
            # an internal file asked for under a public article
            requests.append(("GET", f"/api/v1/kb/{public_kb}/files/{r['file_id']}"))
    for method, url in requests:
        resp = await demo_client.request(method, url, headers={"X-CSRF-Token": csrf})
        assert resp.status == 404, (method, url, resp.status)
        assert await resp.text() in missing_bodies, url

    # nor do they show up in any list
    seen: dict[str, set] = {}
    for name in ("assets", "contracts", "documents", "quotes", "kb"):
        resp = await demo_client.get(f"/api/v1/{name}?limit=200")
        seen[name] = {i["id"] for i in (await resp.json())["items"]}
    assert not seen["assets"] & set(assets)
    assert not seen["contracts"] & set(contracts)
    assert not seen["documents"] & set(documents)
    assert not seen["quotes"] & set(quotes)
    assert not seen["kb"] & {r["id"] for r in internal_kb}
    # nothing was accepted, nothing downloaded (the login is the only new audit row)
    after = await fingerprint(demo_dsn)
    changed = {t for t in before if before[t] != after[t]}
    assert changed <= {"audit_log", "sessions"}, changed
    assert await val(demo_dsn, "SELECT array_agg(action) FROM audit_log WHERE id > $1",
                     last_audit) == ["login"]


async def test_accept_a_quote_once(demo_client, demo_dsn: str) -> None:
    ids = await demo_ids(demo_dsn)
    user_id = await val(demo_dsn, "SELECT id FROM customer_web_users WHERE username = 'full@acme'")
    csrf = await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    headers = {"X-CSRF-Token": csrf}

    assert (await demo_client.post(f"/api/v1/quotes/{ids['Q-1001']}/accept")).status == 403  # no CSRF
    resp = await demo_client.post(f"/api/v1/quotes/{ids['Q-1001']}/accept", headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "accepted" and body["accepted_by"] == "full@acme"
    assert body["accepted_at"] and body["acceptable"] is False
    row = (await rows(demo_dsn, "SELECT * FROM quotes WHERE id = $1", ids["Q-1001"]))[0]
    assert row["status"] == "accepted" and row["accepted_by_webuser"] == user_id
    assert row["accepted_at"].isoformat() == body["accepted_at"]
    audit = await rows(demo_dsn, "SELECT actor, target FROM audit_log WHERE action = 'quote.accept'")
    assert [tuple(a) for a in audit] == [("webuser:full@acme", "quote:Q-1001")]

    for quote, why in (("Q-1001", "already accepted"), ("Q-1002", "already accepted"),
                       ("Q-1003", "declined"), ("Q-1004", "expired")):
        resp = await demo_client.post(f"/api/v1/quotes/{ids[quote]}/accept", headers=headers)
        assert resp.status == 409, quote
        error = (await resp.json())["error"]
        assert error["code"] == "quote_not_acceptable" and why in error["message"], error
    # the refusals changed nothing: one acceptance recorded, the first one's time kept
    again = (await rows(demo_dsn, "SELECT accepted_at FROM quotes WHERE id = $1", ids["Q-1001"]))[0]
    assert again["accepted_at"] == row["accepted_at"]
    states = {r["number"]: r["status"] for r in await rows(
        demo_dsn, "SELECT number, status FROM quotes WHERE number IN ('Q-1003', 'Q-1004')")}
    assert states == {"Q-1003": "declined", "Q-1004": "open"}
    assert await val(demo_dsn, "SELECT count(*) FROM audit_log WHERE action = 'quote.accept'") == 1

    listed = {q["number"]: q for q in (await (await demo_client.get("/api/v1/quotes")).json())["items"]}
    assert listed["Q-1001"]["accepted_by"] == "full@acme"
    assert listed["Q-1004"]["expired"] is True and listed["Q-1004"]["acceptable"] is False


async def test_downloads_are_attachments_and_audited(demo_client, demo_dsn: str) -> None:
    ids = await demo_ids(demo_dsn)
    await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    resp = await demo_client.get(f"/api/v1/documents/{ids['document']}")
    assert resp.status == 200
    expected = await val(demo_dsn, """SELECT b.data FROM documents d JOIN blobs b ON b.id = d.blob_id
                                      WHERE d.id = $1""", ids["document"])
    assert await resp.read() == expected
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    resp = await demo_client.get(f"/api/v1/kb/{ids['kb']}/files/{ids['kb_file']}")
    assert resp.status == 200 and resp.headers["Content-Disposition"].startswith("attachment;")
    downloads = await rows(demo_dsn, "SELECT actor, target FROM audit_log WHERE action = 'download' ORDER BY id")
    assert [tuple(r) for r in downloads] == [("webuser:full@acme", f"document:{ids['document']}"),
                                        ("webuser:full@acme", f"kb_file:{ids['kb_file']}")]


async def test_lists_are_paginated(demo_client, demo_dsn: str) -> None:
    await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    everything = (await (await demo_client.get("/api/v1/quotes")).json())
    assert everything["next_offset"] is None and len(everything["items"]) == 4
    collected, offset = [], 0
    while offset is not None:
        page = await (await demo_client.get(f"/api/v1/quotes?limit=3&offset={offset}")).json()
        assert len(page["items"]) <= 3
        collected += page["items"]
        offset = page["next_offset"]
    assert collected == everything["items"]
    page = await (await demo_client.get("/api/v1/assets?limit=1&offset=1")).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 2
    beyond = await (await demo_client.get("/api/v1/kb?offset=1000")).json()
    assert beyond == {"items": [], "next_offset": None}
    for query, field in (("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"),
                         ("limit=-1", "limit"), ("offset=-5", "offset"), ("offset=1.5", "offset"),
                         ("limit=99999999999999999999", "limit")):
        resp = await demo_client.get(f"/api/v1/documents?{query}")
        assert resp.status == 422, query
        assert (await resp.json())["error"]["field"] == field
    assert (await demo_client.get("/api/v1/contracts?limit=200")).status == 200


async def test_ids_beyond_bigint_are_not_found(demo_client) -> None:
    await login_as(demo_client, "full@acme", DEMO_PASSWORD)
    for url in ("/api/v1/contracts/99999999999999999999", "/api/v1/kb/9223372036854775808",
                "/api/v1/kb/1/files/99999999999999999999999"):
        assert (await demo_client.get(url)).status == 404, url


async def test_employees_read_the_accounts_they_may_access(demo_client, demo_dsn: str, walls) -> None:
    ids = await demo_ids(demo_dsn)
    globex_contract = await val(demo_dsn, """SELECT c.id FROM contracts c JOIN accounts a ON a.id = c.account_id
                                             WHERE a.name = 'Globex' ORDER BY c.id LIMIT 1""")
    acme = await val(demo_dsn, "SELECT id FROM accounts WHERE name = 'Acme'")
    # Subcontractors get none of the account data but the public KB (SPEC §3) ...
    csrf = await login_as(demo_client, "sub1", DEMO_PASSWORD)
    for url in ("/api/v1/assets", "/api/v1/contracts", f"/api/v1/contracts/{ids['contract']}",
                "/api/v1/documents", f"/api/v1/documents/{ids['document']}", "/api/v1/quotes"):
        resp = await demo_client.get(url)
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden", url
    kb = (await (await demo_client.get("/api/v1/kb")).json())["items"]
    assert kb and all(a["is_public"] for a in kb)
    await demo_client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})

    # ... unless an administrator grants it: a custom group with every right, for Acme only
    await val(demo_dsn, """INSERT INTO employee_groups (name, ticket_scope, see_others, assets,
                               asset_config_note, contracts, quotes, documents, kb)
                           VALUES ('Trusted subs', 'own', 'own', true, true, true, true, 'all', 'all')
                           RETURNING id""")
    await val(demo_dsn, """UPDATE employees SET group_id = (SELECT id FROM employee_groups
                                                            WHERE name = 'Trusted subs')
                            WHERE username = 'sub1' RETURNING id""")
    csrf = await login_as(demo_client, "sub1", DEMO_PASSWORD)
    assets = (await (await demo_client.get("/api/v1/assets")).json())["items"]
    assert {a["account_id"] for a in assets} == {acme} and all("config_note" in a for a in assets)
    docs = (await (await demo_client.get("/api/v1/documents")).json())["items"]
    assert {d["account_id"] for d in docs} == {acme}
    assert any(not d["is_public"] for d in docs)  # documents=all: internal ones too
    assert (await demo_client.get(f"/api/v1/contracts/{globex_contract}")).status == 404
    contract = await (await demo_client.get(f"/api/v1/contracts/{ids['contract']}")).json()
    assert contract["charges"] == []  # see_others=own: only the charges they logged
    kb = (await (await demo_client.get("/api/v1/kb")).json())["items"]
    assert any(not a["is_public"] for a in kb)
    resp = await demo_client.post(f"/api/v1/quotes/{ids['Q-1001']}/accept", headers={"X-CSRF-Token": csrf})
    assert resp.status == 403  # accepting is the customer's act

    await demo_client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})
    await login_as(demo_client, "tech", DEMO_PASSWORD)  # Standard, all accounts
    assets = (await (await demo_client.get("/api/v1/assets")).json())["items"]
    assert len({a["account_id"] for a in assets}) == 3
    contract = await (await demo_client.get(f"/api/v1/contracts/{ids['contract']}")).json()
    assert contract["charges_total"] == "1285.00"
    assert (await demo_client.get(f"/api/v1/contracts/{globex_contract}")).status == 200


async def test_not_logged_in_is_401(demo_client) -> None:
    for url in ("/api/v1/assets", "/api/v1/contracts", "/api/v1/documents", "/api/v1/kb",
                "/api/v1/quotes"):
        resp = await demo_client.get(url)
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "not_logged_in"
