"""The tickets JSON API on the demo data: what each action does, bad input, uploads,
downloads, and pagination. Real PostgreSQL and the real application; no mocks."""

from __future__ import annotations

import re

import aiohttp

from daemon.appkeys import SETTINGS
from tests.support.api import demo_ids
from web.schemas import encode_cursor


def field_of(reply) -> str | None:
    return reply.body["error"].get("field") if isinstance(reply.body, dict) else None


# -- what the actions do ----------------------------------------------------------------------


async def test_customer_creates_edits_notes_and_uploads(users, demo_db):
    ids = await demo_ids(demo_db)
    api = await users.login("full@acme")
    asset = await demo_db.fetchval("SELECT id FROM assets WHERE name = 'ACME-FW'")
    html = "<script>alert('x')</script> & <b>bold</b>"
    created = await api.post("/api/v1/tickets", {"description": html, "priority": "high",
                                                 "asset_id": asset})
    assert created.status == 201, created
    t = created.body
    assert created.headers["Location"] == f"/api/v1/tickets/{t['id']}"
    # stored and returned verbatim, as JSON text: escaping is the renderer's business
    assert t["description"] == html and t["priority"] == "high" and t["asset_id"] == asset
    assert t["account_id"] == ids["acme"] and t["status"] == "open"
    assert "assigned_to" not in t  # customers never see the assignee
    assert await demo_db.fetchval("SELECT description FROM tickets WHERE id = $1", t["id"]) == html
    got = await api.get(f"/api/v1/tickets/{t['id']}")
    assert got.status == 200 and got.body["description"] == html
    assert got.headers["Content-Type"].startswith("application/json")

    patched = await api.patch(f"/api/v1/tickets/{t['id']}", {"description": "  line 1\r\nline 2\t "})
    assert patched.status == 200 and patched.body["description"] == "line 1\nline 2"

    note = await api.post(f"/api/v1/tickets/{t['id']}/notes", {"body": "Any news?"})
    assert note.status == 201 and note.body["author_kind"] == "customer"
    notes = await api.get(f"/api/v1/tickets/{t['id']}/notes")
    assert [n["body"] for n in notes.body["items"]] == ["Any news?"]

    up = await api.upload(t["id"], b"%PDF-1.4 hello", filename="report.pdf", public="true")
    assert up.status == 201 and up.body["public"] is True
    down = await api.get(up.body["download_url"])
    assert down.status == 200 and down.body == b"%PDF-1.4 hello"
    assert down.headers["Content-Disposition"].startswith('attachment; filename="report.pdf"')
    assert down.headers["X-Content-Type-Options"] == "nosniff"
    audit = await demo_db.fetchrow("SELECT actor, target FROM audit_log WHERE action = 'download' "
                              "ORDER BY id DESC LIMIT 1")
    assert audit["actor"] == "webuser:full@acme" and audit["target"] == f"attachment:{up.body['id']}"
    # a customer's upload is public; asking otherwise is refused, not silently ignored
    private = await api.upload(t["id"], filename="b.txt", public="false")
    assert private.status == 422 and field_of(private) == "public"


async def test_employee_creates_assigns_charges_files_and_closes(users, demo_db):
    ids = await demo_ids(demo_db)
    tech = await users.login("tech")
    created = await tech.post("/api/v1/tickets", {"account_id": ids["globex"], "description": "Switch",
                                                  "assigned_to": ids["sub2"]})
    assert created.status == 201 and created.body["assigned_to"] == ids["sub2"], created
    tid = created.body["id"]
    url = f"/api/v1/tickets/{tid}"

    # an employee without access to Globex, or an inactive one, is no assignee
    wrong = await tech.patch(url, {"assigned_to": ids["sub1"]})
    assert wrong.status == 422 and field_of(wrong) == "assigned_to"
    await demo_db.execute("UPDATE employees SET active = false WHERE username = 'admin'")
    inactive = await tech.patch(url, {"assigned_to": ids["admin"]})
    assert inactive.status == 422 and field_of(inactive) == "assigned_to"
    other_asset = await demo_db.fetchval("SELECT id FROM assets WHERE name = 'ACME-FW'")
    foreign_asset = await tech.patch(url, {"asset_id": other_asset})
    assert foreign_asset.status == 422 and field_of(foreign_asset) == "asset_id"
    no_account = await tech.post("/api/v1/tickets", {"description": "x"})
    assert no_account.status == 422 and field_of(no_account) == "account_id"

    changed = await tech.patch(url, {"status": "in_progress", "assigned_to": None, "priority": "urgent"})
    assert changed.status == 200, changed
    assert (changed.body["status"], changed.body["assigned_to"], changed.body["priority"]) == (
        "in_progress", None, "urgent")

    labor = await tech.post(f"{url}/charges", {"kind": "labor", "hours": "1.5", "description": "Fix"})
    assert labor.status == 201, labor
    # tech's default hourly rate is 90.00 (daemon/dev/demo_data.py)
    assert (labor.body["quantity"], labor.body["unit_price"], labor.body["amount"]) == ("1.50", "90.00", "135.00")
    special = await tech.post(f"{url}/charges", {"kind": "labor", "hours": 2, "rate": "45.25"})
    assert special.status == 201 and special.body["amount"] == "90.50"
    expense = await tech.post(f"{url}/charges", {"kind": "expense", "amount": "12.30"})
    assert expense.status == 201 and (expense.body["quantity"], expense.body["amount"]) == ("1.00", "12.30")
    part = await tech.post(f"{url}/charges", {"kind": "part", "quantity": 3, "unit_price": "19.99"})
    assert part.status == 201 and part.body["amount"] == "59.97"
    charges = await tech.get(f"{url}/charges")
    assert [c["kind"] for c in charges.body["items"]] == ["labor", "labor", "expense", "part"]

    email = await tech.post(f"{url}/emails", {"subject": "Hello", "body": "Hi\r\nthere",
                                              "from": "a@b.example", "to": "c@d.example", "public": True})
    assert email.status == 201 and email.body["public"] is True and email.body["body"] == "Hi\nthere"
    recipients = await tech.put(f"{url}/recipients", {"employee_ids": [ids["sub2"], ids["tech"]]})
    assert recipients.status == 200
    assert {r["id"] for r in recipients.body["items"]} == {ids["sub2"], ids["tech"]}
    bad_recipient = await tech.put(f"{url}/recipients", {"employee_ids": [ids["sub1"]]})
    assert bad_recipient.status == 422 and field_of(bad_recipient) == "employee_ids"
    assert len((await tech.get(f"{url}/recipients")).body["items"]) == 2  # unchanged

    closed = await tech.post(f"{url}/close", {"note": "Done, see charges."})
    assert closed.status == 200 and closed.body["status"] == "closed" and closed.body["closed_at"]
    notes = (await tech.get(f"{url}/notes")).body["items"]
    assert notes[-1]["body"] == "Done, see charges."
    again = await tech.post(f"{url}/close", {"note": "twice"})
    assert again.status == 409 and again.body["error"]["code"] == "conflict"
    # the refused close wrote nothing, not even its note
    assert await demo_db.fetchval("SELECT count(*) FROM history_notes WHERE ticket_id = $1", tid) == 1
    reopened = await tech.patch(url, {"status": "open"})
    assert reopened.status == 200 and reopened.body["closed_at"] is None
    no_body = await tech.post(f"{url}/close")  # the body is optional
    assert no_body.status == 200 and no_body.body["status"] == "closed"


async def test_employee_list_defaults_to_own_tickets(users, demo_db):
    ids = await demo_ids(demo_db)
    tech = await users.login("tech")
    mine = (await tech.get("/api/v1/tickets", limit=200)).body["items"]
    assert mine and {t["assigned_to"] for t in mine} == {ids["tech"]}
    every = (await tech.get("/api/v1/tickets", assigned="any", limit=200)).body["items"]
    assert len(every) == await demo_db.fetchval("SELECT count(*) FROM tickets")
    acme_open = (await tech.get("/api/v1/tickets", assigned="any", account_id=ids["acme"],
                                status="open")).body["items"]
    assert acme_open and all(t["account_id"] == ids["acme"] and t["status"] != "closed"
                             for t in acme_open)
    closed = (await tech.get("/api/v1/tickets", assigned="any", status="closed")).body["items"]
    assert closed and all(t["status"] == "closed" for t in closed)
    found = (await tech.get("/api/v1/tickets", assigned="any", q="PC LOAD")).body["items"]
    assert [t["id"] for t in found] == [ids["t_initech_main"]]
    bad = await tech.get("/api/v1/tickets", assigned="everyone")
    assert bad.status == 422 and field_of(bad) == "assigned"


# -- bad input --------------------------------------------------------------------------------


async def test_bad_ticket_input_names_the_field(users, demo_db):
    ids = await demo_ids(demo_db)
    api = await users.login("full@acme")
    cases = [
        ({}, "description"),
        ({"description": 12}, "description"),
        ({"description": None}, "description"),
        ({"description": "   "}, "description"),
        ({"description": "x" * (1024 * 1024)}, "description"),  # 1 MB: refused, not a 500
        ({"description": "nul\x00byte"}, "description"),
        ({"description": "escape \x1b[31m"}, "description"),
        ({"description": "lone \ud800 surrogate"}, "description"),
        ({"description": "ok", "priority": "whenever"}, "priority"),
        ({"description": "ok", "asset_id": "3"}, "asset_id"),
        ({"description": "ok", "asset_id": True}, "asset_id"),
        ({"description": "ok", "desciption": "typo"}, "desciption"),
    ]
    for body, field in cases:
        reply = await api.post("/api/v1/tickets", body)
        assert reply.status == 422, (body if len(str(body)) < 100 else field, reply)
        assert field_of(reply) == field and reply.body["error"]["message"].startswith(f"{field}:")
    assert await demo_db.fetchval("SELECT count(*) FROM tickets WHERE created_by_webuser IS NOT NULL "
                             "AND created_at > now() - interval '1 minute'") == 0
    # tabs and newlines are text
    ok = await api.post("/api/v1/tickets", {"description": "a\tb\nc"})
    assert ok.status == 201 and ok.body["description"] == "a\tb\nc"
    # an asset of another account
    globex_asset = await demo_db.fetchval("SELECT id FROM assets WHERE name = 'GLX-MAIL'")
    foreign = await api.post("/api/v1/tickets", {"description": "x", "asset_id": globex_asset})
    assert foreign.status == 422 and field_of(foreign) == "asset_id"

    url = f"/api/v1/tickets/{ids['t_acme_main']}"
    assert (await api.patch(url, {})).status == 422
    assert field_of(await api.patch(url, {"status": "closed"})) == "status"  # 403, customers
    # malformed bodies
    for raw, ctype, status in ((b"{not json", "application/json", 400),
                               (b"[1, 2]", "application/json", 400),
                               (b'{"description": NaN}', "application/json", 400),
                               (b"\xff\xfe", "application/json", 400),
                               (b'{"description": "x"}', "text/plain", 415)):
        reply = await api.send("POST", "/api/v1/tickets", data=raw, headers={"Content-Type": ctype})
        assert reply.status == status, (raw, reply)
        assert set(reply.body["error"]) >= {"code", "message"}


async def test_bad_charges_and_emails(users, demo_db):
    ids = await demo_ids(demo_db)
    tech = await users.login("tech")
    url = f"/api/v1/tickets/{ids['t_acme_main']}"
    cases = [
        ({"kind": "labor", "hours": "-1"}, "hours"),
        ({"kind": "labor", "hours": 0}, "hours"),
        ({"kind": "labor", "hours": "100000"}, "hours"),
        ({"kind": "labor", "hours": "1.234"}, "hours"),
        ({"kind": "labor", "hours": "1", "rate": "12.345"}, "rate"),
        ({"kind": "labor", "hours": "1", "rate": 12.345}, "rate"),
        ({"kind": "labor", "hours": "1", "rate": "-5"}, "rate"),
        ({"kind": "labor", "hours": "two"}, "hours"),
        ({"kind": "labor", "hours": "1e3"}, "hours"),
        ({"kind": "labor", "hours": True}, "hours"),
        ({"kind": "labor"}, "hours"),
        ({"kind": "expense", "amount": "-3"}, "amount"),
        ({"kind": "expense", "amount": "99999999999"}, "amount"),
        ({"kind": "expense", "amount": "5", "quantity": "2"}, "quantity"),
        ({"kind": "part", "quantity": "-2", "unit_price": "5"}, "quantity"),
        ({"kind": "part", "quantity": "1000000000", "unit_price": "5"}, "quantity"),
        ({"kind": "part", "quantity": "1"}, "unit_price"),
        ({"kind": "travel", "amount": "5"}, "kind"),
        ({"hours": "1"}, "kind"),
        ({"kind": "labor", "hours": "1", "description": "x" * 3000}, "description"),
    ]
    before = await demo_db.fetchval("SELECT count(*) FROM charges")
    for body, field in cases:
        reply = await tech.post(f"{url}/charges", body)
        assert reply.status == 422 and field_of(reply) == field, (body, reply)
    assert await demo_db.fetchval("SELECT count(*) FROM charges") == before

    for body, field in (({"subject": "a\r\nBcc: x@y", "body": "b"}, "subject"),
                        ({"subject": "s", "body": "b", "from": "a@b\r\nBcc: evil@x"}, "from"),
                        ({"subject": "s", "body": "b", "to": "a@b\nX: y"}, "to"),
                        ({"subject": "s", "body": "b", "public": "yes"}, "public"),
                        ({"body": "b"}, "subject")):
        reply = await tech.post(f"{url}/emails", body)
        assert reply.status == 422 and field_of(reply) == field, (body, reply)

    # assignee that does not exist at all: the same 422 as one without access
    missing = await tech.patch(url, {"assigned_to": 10**12})
    assert missing.status == 422 and field_of(missing) == "assigned_to"
    bad_ids = await tech.put(f"{url}/recipients", {"employee_ids": ["1"]})
    assert bad_ids.status == 422 and field_of(bad_ids) == "employee_ids"


async def test_csrf_and_path_ids(users, demo_db):
    ids = await demo_ids(demo_db)
    api = await users.login("full@acme")
    url = f"/api/v1/tickets/{ids['t_acme_main']}"
    for method, path, body in (("POST", "/api/v1/tickets", {"description": "x"}),
                               ("PATCH", url, {"description": "x"}),
                               ("POST", f"{url}/notes", {"body": "x"})):
        reply = await api.send(method, path, body, csrf=False)
        assert reply.status == 403 and reply.body["error"]["code"] == "csrf_failed", (method, path)
        wrong = await api.send(method, path, body, csrf=False, headers={"X-CSRF-Token": "nope"})
        assert wrong.status == 403
    assert await demo_db.fetchval("SELECT count(*) FROM tickets WHERE description = 'x'") == 0
    for bad in ("abc", "1.5", "-1", "0", "99999999999999999999", "%F0%9D%9F%99", "1e3"):
        reply = await api.get(f"/api/v1/tickets/{bad}")
        assert reply.status == 404 and reply.body["error"]["code"] == "not_found", bad
        assert (await api.get(f"/api/v1/attachments/{bad}")).status == 404
    assert (await api.get("/api/v1/tickets/99999999")).status == 404
    # logged out: 401 in the error shape
    await api.post("/api/v1/logout")
    gone = await api.get(url)
    assert gone.status == 401 and gone.body["error"]["code"] == "not_logged_in"


# -- uploads and downloads --------------------------------------------------------------------


async def test_upload_over_the_limit_is_413(users, demo_app, demo_db):
    ids = await demo_ids(demo_db)
    settings = demo_app[SETTINGS]
    cfg = settings.current
    settings.current = cfg.model_copy(update={"http": cfg.http.model_copy(update={"upload_max_mb": 1})})
    api = await users.login("full@acme")
    before = await demo_db.fetchval("SELECT count(*) FROM blobs")
    big = await api.upload(ids["t_acme_main"], b"x" * (1024 * 1024 + 1), filename="big.bin")
    assert big.status == 413 and big.body["error"]["code"] == "too_large"
    assert await demo_db.fetchval("SELECT count(*) FROM blobs") == before
    fits = await api.upload(ids["t_acme_main"], b"x" * (1024 * 1024), filename="fits.bin")
    assert fits.status == 201
    missing = await api.post(f"/api/v1/tickets/{ids['t_acme_main']}/attachments", {"file": "x"})
    assert missing.status == 415

    # an HTML form carries its CSRF token as its first field: the upload still streams after it,
    # under the same limit
    def form(size: int) -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("csrf_token", api.csrf)
        data.add_field("file", b"y" * size, filename="form.bin", content_type="application/octet-stream")
        return data

    url = f"/api/v1/tickets/{ids['t_acme_main']}/attachments"
    by_form = await api.send("POST", url, data=form(10), csrf=False)
    assert by_form.status == 201 and by_form.body["size"] == 10, by_form
    too_big = await api.send("POST", url, data=form(1024 * 1024 + 1), csrf=False)
    assert too_big.status == 413


def multipart(boundary: str, disposition: str, data: bytes) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; {disposition}\r\n"
            f"Content-Type: text/html\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()


async def test_upload_file_name_is_neutralised(users, demo_db):
    ids = await demo_ids(demo_db)
    api = await users.login("tech")
    url = f"/api/v1/tickets/{ids['t_acme_main']}/attachments"
    boundary = "portaldTestBoundary"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    # RFC 5987 encoding lets a file name carry anything: a path and control characters
    evil = "filename*=UTF-8''..%2F..%2F..%5Cx%01%7F%1B%0D%0AX-Evil%3A%201%22.txt"
    up = await api.send("POST", url, data=multipart(boundary, evil, b"<html>payload</html>"),
                        headers=headers)
    assert up.status == 201, up
    name = up.body["filename"]
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert not re.search(r"[\x00-\x1f\x7f]", name)
    down = await api.get(up.body["download_url"])
    disposition = down.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    plain_name = disposition.split("filename*=")[0]
    assert "/" not in plain_name and "\\" not in plain_name and "\r" not in disposition
    assert not re.search(r"[\x00-\x1f\x7f]", disposition)
    assert "X-Evil" not in down.headers
    # never served as HTML, whatever the uploader declared
    assert not down.headers["Content-Type"].startswith("text/html")
    assert down.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert down.body == b"<html>payload</html>"
    # raw control characters in the part header: a malformed request, not a 500
    raw = multipart(boundary, 'filename="../../x\x01\x7f.txt"', b"data")
    refused = await api.send("POST", url, data=raw, headers=headers)
    assert refused.status == 400 and refused.body["error"]["code"] == "bad_request"
    none = await api.send("POST", url, data=f"--{boundary}--\r\n".encode(), headers=headers)
    assert none.status == 422 and field_of(none) == "file"


# -- pagination -------------------------------------------------------------------------------


async def test_cursor_walks_every_page_once(users, demo_db):
    ids = await demo_ids(demo_db)
    await demo_db.execute("""INSERT INTO tickets (account_id, description)
                        SELECT $1, 'bulk ' || n FROM generate_series(1, 230) n""", ids["acme"])
    expected = await demo_db.fetchval("SELECT count(*) FROM tickets WHERE account_id = $1", ids["acme"])
    api = await users.login("partial@acme")
    seen: list[int] = []
    page = await api.get("/api/v1/tickets", limit=50)
    pages = 1
    while True:
        assert page.status == 200 and len(page.body["items"]) <= 50
        seen += [t["id"] for t in page.body["items"]]
        if page.body["next_cursor"] is None:
            assert page.body["next"] is None
            break
        assert "limit=50" in page.body["next"] and "cursor=" in page.body["next"]
        page = await api.get(page.body["next"])
        pages += 1
    assert len(seen) == len(set(seen)) == expected and pages == -(-expected // 50)
    assert seen == sorted(seen, reverse=True)
    default = await api.get("/api/v1/tickets")
    assert len(default.body["items"]) == 50
    biggest = await api.get("/api/v1/tickets", limit=200)
    assert len(biggest.body["items"]) == 200 and biggest.body["next_cursor"]
    # above the maximum is refused like every other bad parameter (not silently clamped)
    for params, field in (({"limit": 201}, "limit"), ({"limit": 0}, "limit"),
                          ({"limit": "ten"}, "limit"), ({"cursor": "garbage!"}, "cursor"),
                          ({"cursor": encode_cursor(10**19)}, "cursor"),
                          ({"status": "sleeping"}, "status"), ({"account_id": "x"}, "account_id")):
        reply = await api.get("/api/v1/tickets", **params)
        assert reply.status == 422 and field_of(reply) == field, params
    filtered = await api.get("/api/v1/tickets", q="bulk 23", limit=200)
    assert {t["description"] for t in filtered.body["items"]} == {"bulk 23", "bulk 230"}
