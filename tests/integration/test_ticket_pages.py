"""The ticket pages (HTML) and /me/alerts, through HTTP against the demo data on a real
PostgreSQL: what each privilege renders and what it leaves out, the forms end to end, errors
beside their fields, escaping, scope (404), the login round trip, and hot reload of an
employee's accounts. Changes "from elsewhere" go through the separate `db` connection.

Each test pays for a database of its own (~0.5 s), so related checks share a test."""

from __future__ import annotations

import re
from html import unescape

import aiohttp
import asyncpg
import pytest

from daemon.dev.demo_data import DEMO_PASSWORD as PASSWORD
from tests.support.api import login_as
from web.views.pages.tickets import ListParams


@pytest.fixture
def db(demo_db: asyncpg.Connection) -> asyncpg.Connection:
    return demo_db


@pytest.fixture
def client(demo_client):
    return demo_client


async def ids(db: asyncpg.Connection) -> dict[str, int]:
    """Ids of the demo rows the tests use, by a short name."""
    found: dict[str, int] = {}
    for key, start in (("acme_main", "The projects share"), ("acme_vpn", "Set up VPN access"),
                       ("acme_label", "The label printer"), ("acme_phones", "The phones in"),
                       ("globex_mail", "Outgoing mail is stuck"), ("initech_cal", "Set up a shared calendar")):
        found[key] = await db.fetchval("SELECT id FROM tickets WHERE description LIKE $1 || '%'", start)
    for name in ("Acme", "Globex", "Initech"):
        found[name.lower()] = await db.fetchval("SELECT id FROM accounts WHERE name = $1", name)
    for username in ("admin", "tech", "sub1", "sub2"):
        found[username] = await db.fetchval("SELECT id FROM employees WHERE username = $1", username)
    return found


async def get(client, path: str, status: int = 200) -> str:
    resp = await client.get(path, allow_redirects=False)
    text = await resp.text()
    assert resp.status == status, (path, resp.status, text[:500])
    return text


async def post(client, path: str, data, status: int = 303) -> aiohttp.ClientResponse:
    resp = await client.post(path, data=data, allow_redirects=False)
    if resp.status != status:
        raise AssertionError((path, resp.status, (await resp.text())[:2000]))
    return resp


def section_ids(html: str) -> set[str]:
    return set(re.findall(r'<h2 id="(h-[a-z]+)"', html))


def field_ids(html: str) -> set[str]:
    return set(re.findall(r'\bid="([a-z-]+-[a-z_]+)"', html))


# -- what each privilege renders --------------------------------------------------------------


async def test_customer_sections_follow_the_privilege_group(client, db) -> None:
    t = await ids(db)
    page = f"/tickets/{t['acme_main']}"

    await login_as(client, "full@acme", PASSWORD)
    full = await get(client, page)
    assert section_ids(full) >= {"h-description", "h-notes", "h-emails", "h-files", "h-charges"}
    assert {"description-description", "fields-priority", "fields-asset_id", "note-body",
            "attachment-file"} <= field_ids(full)
    assert "Projects share is read-only" in full  # the public email
    assert "Internal: disk pricing" not in full  # never a non-public one
    assert "share-error.png" in full and "purchase-order.txt" not in full
    assert "4 TB NAS disk" in full and "Remote review of the array" in full  # all charges
    # customers see no employee-only parts
    assert not section_ids(full) & {"h-contact", "h-recipients", "h-delivery", "h-close"}
    assert "it@acme.example" not in full and "status-status" not in field_ids(full)
    assert ">Print<" in full

    await login_as(client, "partial@acme", PASSWORD)
    partial = await get(client, page)
    assert section_ids(partial) >= {"h-notes", "h-emails", "h-files"}
    assert "h-charges" not in section_ids(partial) and "4 TB NAS disk" not in partial
    assert "<dt>Priority</dt>" in partial and "fields-priority" not in field_ids(partial)
    assert "ACME-FS01" in partial and "fields-asset_id" not in field_ids(partial)
    assert "description-description" in field_ids(partial)  # tickets_edit

    await login_as(client, "limited@acme", PASSWORD)
    limited = await get(client, page)
    assert section_ids(limited) == {"h-description", "h-details"}
    for absent in ("Charges", "History notes", "Emails", "Attachments", "Priority", "Asset",
                   "ACME-FS01", "description-description", "/assets", "/contracts"):
        assert absent not in limited, absent
    printed = await get(client, page + "/print")
    assert "Charges" not in printed and "History notes" not in printed
    listing = await get(client, "/tickets")
    assert "Priority" not in listing and "/tickets/new" in listing  # tickets_add is on


async def test_employee_sections_and_own_data_only_for_subcontractors(client, db, walls) -> None:
    t = await ids(db)
    page = f"/tickets/{t['acme_main']}"
    # the ticket's mail: one delivered to sub1, one refused for tech
    await db.execute(
        """INSERT INTO outbox (event, ticket_id, employee_id, message_id, status, last_code,
                               last_error, sent_at)
           VALUES ('note', $1, $2, '<bench-1@portal.test>', 'sent', 250, NULL, now()),
                  ('note', $1, $3, '<bench-2@portal.test>', 'failed', 550, 'mailbox unavailable', NULL)""",
        t["acme_main"], t["sub1"], t["tech"])

    await login_as(client, "sub1", PASSWORD)
    sub = await get(client, page)
    assert section_ids(sub) >= {"h-notes", "h-files", "h-charges", "h-contact", "h-close"}
    assert "it@acme.example" in sub and "Alice Anders" in sub  # the account's contact details
    # only what sub1 added: not tech's or the customer's notes, charges, files, emails
    assert "Disks installed, array rebuilding" in sub
    for other in ("Approved two additional disks", "It happens on every PC",
                  "Remote review of the array", "purchase-order.txt", "share-error.png",
                  "Internal: disk pricing", "Projects share is read-only"):
        assert other not in sub, other
    assert "smart-report.txt" in sub and "On-site diagnosis" in sub
    # Subcontractors: notes, charges, uploads and closing, but no editing or reassigning
    fields = field_ids(sub)
    assert {"note-body", "charge-labor-hours", "charge-labor-rate", "charge-expense-amount",
            "charge-part-quantity", "charge-part-unit_price", "attachment-file", "close-note"} <= fields
    assert not fields & {"description-description", "fields-priority", "assign-assigned_to",
                         "status-status", "email-subject", "recipients-employee_ids"}
    assert 'value="65.00"' in sub  # sub1's hourly rate prefilled for labor
    # delivery: only sub1's own mail
    assert "h-delivery" in section_ids(sub) and "delivery-sent" in sub
    assert "mailbox unavailable" not in sub
    printed = await get(client, page + "/print")
    assert "Disks installed" in printed and "Approved two additional disks" not in printed
    assert "<nav" not in printed and "<form" not in printed

    await login_as(client, "tech", PASSWORD)
    tech = await get(client, page)
    for seen in ("Approved two additional disks", "It happens on every PC", "Remote review of the array",
                 "purchase-order.txt", "Internal: disk pricing"):
        assert seen in tech, seen
    assert {"description-description", "fields-priority", "fields-asset_id", "assign-assigned_to",
            "status-status", "email-subject", "recipients-employee_ids"} <= field_ids(tech)
    assert 'value="90.00"' in tech
    assert "delivery-sent" in tech and "mailbox unavailable" in tech
    # the reassign picker offers only employees who may access Acme: not sub2
    picker = tech.split('id="assign-assigned_to"')[1].split("</select>")[0]
    assert "Sam Sub" in picker and "Sue Sub" not in picker
    # a closed ticket has no close form
    closed = await get(client, f"/tickets/{t['acme_label']}")
    assert "h-close" not in section_ids(closed)


async def test_out_of_scope_and_missing_tickets_are_404(client, db, walls) -> None:
    t = await ids(db)
    await login_as(client, "full@acme", PASSWORD)
    for path in (f"/tickets/{t['globex_mail']}", f"/tickets/{t['globex_mail']}/print",
                 "/tickets/999999", "/tickets/99999999999999999999"):
        page = await get(client, path, 404)
        assert "Outgoing mail" not in page
    await login_as(client, "sub1", PASSWORD)
    # an Acme ticket (sub1's account) that is not assigned to sub1
    for path in (f"/tickets/{t['acme_vpn']}", f"/tickets/{t['acme_vpn']}/print",
                 f"/tickets/{t['globex_mail']}"):
        await get(client, path, 404)
    listing = await get(client, "/tickets?mine=0&status=all")
    assert "Set up VPN access" not in listing and "The projects share" in listing
    # files: tech's internal file on sub1's own ticket, and another account's, are not found
    for filename in ("purchase-order.txt", "mailq.txt"):
        file_id = await db.fetchval("SELECT id FROM attachments WHERE filename = $1", filename)
        await get(client, f"/attachments/{file_id}", 404)
    own = await db.fetchval("SELECT id FROM attachments WHERE filename = 'smart-report.txt'")
    assert "Disk 2" in await get(client, f"/attachments/{own}")
    await login_as(client, "full@acme", PASSWORD)
    await get(client, f"/attachments/{own}", 404)  # sub1's internal file: not public


async def test_logged_out_ticket_link_logs_in_and_lands_on_the_ticket(client, db) -> None:
    t = await ids(db)
    path = f"/tickets/{t['acme_main']}"
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location == f"/login?next={path}"
    form = await get(client, location)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    nxt = unescape(re.search(r'name="next" value="([^"]+)"', form).group(1))
    assert nxt == path
    resp = await post(client, "/login", {"csrf_token": token, "next": nxt, "username": "sub1",
                                          "password": PASSWORD})
    assert resp.headers["Location"] == path
    page = await get(client, path)
    assert "The projects share" in page and "Sam Sub" in page


# -- the list ---------------------------------------------------------------------------------


async def test_customer_list_tabs_search_and_pages(client, db) -> None:
    t = await ids(db)
    await login_as(client, "full@acme", PASSWORD)
    open_ = await get(client, "/")
    assert "The projects share" in open_ and "The label printer" not in open_
    assert "Outgoing mail" not in open_  # another account's
    closed = await get(client, "/tickets?status=closed")
    assert "The label printer" in closed and "The projects share" not in closed
    found = await get(client, "/tickets?status=open&q=phones")
    assert "The phones in" in found and "The projects share" not in found
    # notes the customer may see make a ticket match
    assert "The projects share" in await get(client, "/tickets?status=open&q=every+PC")

    # 60 more open tickets: the first page shows 50 and links to the older ones
    await db.execute("""INSERT INTO tickets (account_id, description)
                        SELECT $1, 'Bulk ticket ' || g FROM generate_series(1, 60) g""", t["acme"])
    first = await get(client, "/tickets?status=open")
    assert len(re.findall(r'href="/tickets/\d+"', first)) == 50
    older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', first)
    assert older is not None
    second = await get(client, unescape(older.group(1)))
    assert "Newest" in second and 'rel="next"' not in second
    ids_first = set(re.findall(r'href="/tickets/(\d+)"', first))
    ids_second = set(re.findall(r'href="/tickets/(\d+)"', second))
    assert not ids_first & ids_second
    assert len(ids_first | ids_second) == 60 + 4  # the demo's four open Acme tickets
    # garbage filters are ignored, never an error
    await get(client, "/tickets?status=bogus&cursor=abc&account=x")


async def test_employee_list_mine_filters_and_search(client, db) -> None:
    t = await ids(db)
    await login_as(client, "tech", PASSWORD)
    mine = await get(client, "/tickets")
    assert "My tickets" in mine and "Set up VPN access" in mine and "The projects share" not in mine
    everything = await get(client, "/tickets?mine=0")
    assert "The projects share" in everything and "Outgoing mail" in everything
    globex = await get(client, f"/tickets?mine=0&account={t['globex']}")
    assert "Outgoing mail" in globex and "The projects share" not in globex
    closed = await get(client, "/tickets?mine=0&status=closed")
    assert "The label printer" in closed and "The projects share" not in closed
    # tech's own note makes the ticket match for tech
    assert "The projects share" in await get(client, "/tickets?mine=0&q=Approved+two")

    await login_as(client, "sub1", PASSWORD)
    sub = await get(client, "/tickets")
    assert "The projects share" in sub and "Set up VPN access" not in sub and "Outgoing mail" not in sub
    # open tickets first; "all" adds sub1's closed one
    assert "The label printer" not in sub
    assert "The label printer" in await get(client, "/tickets?status=all")
    # a note sub1 may not see does not make the ticket match; sub1's own note does
    assert "The projects share" not in await get(client, "/tickets?q=Approved+two")
    assert "The projects share" in await get(client, "/tickets?q=array+rebuilding")
    assert "T-" in await get(client, f"/tickets?q={(await db.fetchval('SELECT number FROM tickets WHERE id = $1', t['acme_main']))}")


def test_list_links_keep_every_filter() -> None:
    params = ListParams(status="all", q="disk & co", account_id=3, mine=False, cursor=None)
    assert params.url(cursor=77) == "/tickets?status=all&q=disk+%26+co&account=3&mine=0&cursor=77"
    assert params.url(mine="1", q="") == "/tickets?status=all&account=3&mine=1"


async def test_data_is_escaped(client, db) -> None:
    t = await ids(db)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await db.execute("UPDATE tickets SET description = $1 WHERE id = $2", evil, t["acme_main"])
    await db.execute("INSERT INTO history_notes (ticket_id, author_webuser_id, body) "
                     "SELECT $1, id, $2 FROM customer_web_users WHERE username = 'full@acme'",
                     t["acme_main"], evil)
    await login_as(client, "full@acme", PASSWORD)
    for path in (f"/tickets/{t['acme_main']}", f"/tickets/{t['acme_main']}/print", "/tickets",
                 "/tickets?q=%3Cscript%3E"):
        page = await get(client, path)
        assert "<script>" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;" in page, path


# -- hot reload ---------------------------------------------------------------------------------


async def test_widening_and_narrowing_an_employees_accounts_applies_on_the_next_request(client, db, walls) -> None:
    t = await ids(db)
    globex_ticket = await db.fetchval(
        "INSERT INTO tickets (account_id, description, assigned_to) VALUES ($1, $2, $3) RETURNING id",
        t["globex"], "Hot reload check for sub1", t["sub1"])
    await login_as(client, "sub1", PASSWORD)
    assert "Hot reload check" not in await get(client, "/tickets")
    await get(client, f"/tickets/{globex_ticket}", 404)

    await db.execute("INSERT INTO employee_accounts (employee_id, account_id) VALUES ($1, $2)",
                     t["sub1"], t["globex"])
    assert "Hot reload check" in await get(client, "/tickets")
    assert "Hot reload check" in await get(client, f"/tickets/{globex_ticket}")

    await db.execute("DELETE FROM employee_accounts WHERE employee_id = $1 AND account_id = $2",
                     t["sub1"], t["globex"])
    assert "Hot reload check" not in await get(client, "/tickets")
    await get(client, f"/tickets/{globex_ticket}", 404)



# -- forms ------------------------------------------------------------------------------------


def error_beside(html: str, form_field: str) -> str:
    """The message rendered beside a field, after checking the field points at it."""
    assert re.search(rf'id="{form_field}"[^>]*aria-invalid="true" aria-describedby="{form_field}-error"',
                     html), f"{form_field} is not marked invalid"
    found = re.search(rf'<span class="field-error" id="{form_field}-error">([^<]*)</span>', html)
    assert found, f"no error beside {form_field}"
    return unescape(found.group(1))


async def test_customer_forms_end_to_end(client, db) -> None:
    t = await ids(db)
    tid = t["acme_main"]
    page = f"/tickets/{tid}"
    csrf = await login_as(client, "full@acme", PASSWORD)

    resp = await post(client, f"{page}/notes", {"csrf_token": csrf, "body": "Still broken on PC 7"})
    assert resp.headers["Location"] == f"{page}?done=note"
    shown = await get(client, resp.headers["Location"])
    assert "Your note was added." in shown and "Still broken on PC 7" in shown

    await post(client, f"{page}/description", {"csrf_token": csrf, "description": "Share read-only (edited)"})
    other_asset = await db.fetchval("SELECT id FROM assets WHERE name = 'ACME-FW'")
    await post(client, f"{page}/fields", {"csrf_token": csrf, "priority": "urgent", "asset_id": str(other_asset)})
    row = await db.fetchrow("SELECT description, priority, asset_id FROM tickets WHERE id = $1", tid)
    assert tuple(row) == ("Share read-only (edited)", "urgent", other_asset)

    # an asset of another account: 422, the error beside the picker, the page otherwise intact
    globex_asset = await db.fetchval("SELECT id FROM assets WHERE name = 'GLX-MAIL'")
    resp = await post(client, f"{page}/fields", {"csrf_token": csrf, "priority": "low",
                                                 "asset_id": str(globex_asset)}, status=422)
    html = await resp.text()
    assert "no such asset" in error_beside(html, "fields-asset_id")
    assert "<details open>" in html and 'value="low" selected' in html  # the input is kept
    assert await db.fetchval("SELECT priority FROM tickets WHERE id = $1", tid) == "urgent"

    # an empty note: 422 beside the note field
    resp = await post(client, f"{page}/notes", {"csrf_token": csrf, "body": "   "}, status=422)
    assert "must not be empty" in error_beside(await resp.text(), "note-body")

    # upload through the HTML form (multipart, CSRF in the form)
    form = aiohttp.FormData()
    form.add_field("csrf_token", csrf)
    form.add_field("file", b"customer evidence", filename="evidence.txt", content_type="text/plain")
    resp = await post(client, f"{page}/attachments", form)
    shown = await get(client, resp.headers["Location"])
    link = re.search(r'<a href="(/attachments/\d+)">evidence.txt</a>', shown)
    assert link, "uploaded file not listed"
    download = await client.get(link.group(1))
    assert download.status == 200 and await download.read() == b"customer evidence"
    assert "attachment" in download.headers["Content-Disposition"]
    assert await db.fetchval("SELECT is_public FROM attachments WHERE filename = 'evidence.txt'")

    # a new ticket with priority and asset (Full may set both)
    new_form = await get(client, "/tickets/new")
    assert {"new-description", "new-priority", "new-asset_id"} <= field_ids(new_form)
    resp = await post(client, "/tickets/new", {"csrf_token": csrf, "description": "Wi-Fi drops in hall B",
                                               "priority": "high", "asset_id": ""})
    new_id = int(re.fullmatch(r"/tickets/(\d+)\?done=created", resp.headers["Location"]).group(1))
    row = await db.fetchrow("SELECT account_id, priority, created_by_webuser IS NOT NULL AS by_web "
                            "FROM tickets WHERE id = $1", new_id)
    assert tuple(row) == (t["acme"], "high", True)
    resp = await post(client, "/tickets/new", {"csrf_token": csrf, "description": "",
                                               "priority": "urgent"}, status=422)
    html = await resp.text()
    assert "must not be empty" in error_beside(html, "new-description")
    assert 'value="urgent" selected' in html

    # no CSRF token: refused, nothing written
    before = await db.fetchval("SELECT count(*) FROM history_notes WHERE ticket_id = $1", tid)
    await post(client, f"{page}/notes", {"body": "forged"}, status=403)
    assert await db.fetchval("SELECT count(*) FROM history_notes WHERE ticket_id = $1", tid) == before

    # Limited: no notes, no fields, a new ticket without priority or asset
    csrf = await login_as(client, "limited@acme", PASSWORD)
    await post(client, f"{page}/notes", {"csrf_token": csrf, "body": "x"}, status=403)
    await post(client, f"{page}/fields", {"csrf_token": csrf, "priority": "low"}, status=403)
    await post(client, f"{page}/description", {"csrf_token": csrf, "description": "x"}, status=403)
    new_form = await get(client, "/tickets/new")
    assert "new-description" in field_ids(new_form)
    assert not {"new-priority", "new-asset_id"} & field_ids(new_form)
    resp = await post(client, "/tickets/new", {"csrf_token": csrf, "description": "Mouse is broken"})
    limited_ticket = await get(client, resp.headers["Location"])
    assert "Mouse is broken" in limited_ticket and "The ticket was created." in limited_ticket
    # another account's ticket is not found for a post either
    await post(client, f"/tickets/{t['globex_mail']}/description",
               {"csrf_token": await login_as(client, "full@acme", PASSWORD), "description": "x"}, status=404)


async def test_subcontractor_forms_end_to_end(client, db) -> None:
    t = await ids(db)
    tid = t["acme_main"]
    page = f"/tickets/{tid}"
    csrf = await login_as(client, "sub1", PASSWORD)

    await post(client, f"{page}/notes", {"csrf_token": csrf, "body": "Array rebuilt."})
    # labor at the prefilled rate, an expense, a part
    await post(client, f"{page}/charges", {"csrf_token": csrf, "kind": "labor", "hours": "2.5",
                                           "rate": "65.00", "description": "Rebuild supervision"})
    await post(client, f"{page}/charges", {"csrf_token": csrf, "kind": "expense", "amount": "12.40",
                                           "description": "Parking"})
    await post(client, f"{page}/charges", {"csrf_token": csrf, "kind": "part", "quantity": "3",
                                           "unit_price": "4.10", "description": "SATA cables"})
    rows = await db.fetch("SELECT kind, quantity, unit_price, amount FROM charges WHERE ticket_id = $1 "
                          "AND employee_id = $2 ORDER BY id DESC LIMIT 3", tid, t["sub1"])
    assert [(r["kind"], str(r["amount"])) for r in rows] == [
        ("part", "12.30"), ("expense", "12.40"), ("labor", "162.50")]

    # a wrong number: 422 beside the hours field, the user's input kept, nothing logged
    resp = await post(client, f"{page}/charges", {"csrf_token": csrf, "kind": "labor", "hours": "-3",
                                                  "rate": "65.00", "description": "typo"}, status=422)
    html = await resp.text()
    assert "more than 0" in error_beside(html, "charge-labor-hours")
    assert 'id="charge-labor-hours" name="hours"' in html and 'value="-3"' in html
    assert 'value="typo"' in html
    assert await db.fetchval("SELECT count(*) FROM charges WHERE description = 'typo'") == 0

    form = aiohttp.FormData()
    form.add_field("csrf_token", csrf)
    form.add_field("file", b"smart data", filename="smart-2.txt", content_type="text/plain")
    await post(client, f"{page}/attachments", form)
    assert await db.fetchval("SELECT is_public FROM attachments WHERE filename = 'smart-2.txt'") is False

    # what sub1 may not do: reassign, edit, touch a ticket not assigned to it
    await post(client, f"{page}/assign", {"csrf_token": csrf, "assigned_to": str(t["tech"])}, status=403)
    await post(client, f"{page}/description", {"csrf_token": csrf, "description": "x"}, status=403)
    await post(client, f"/tickets/{t['acme_vpn']}/notes", {"csrf_token": csrf, "body": "x"}, status=404)

    resp = await post(client, f"{page}/close", {"csrf_token": csrf, "note": "Done; share writable."})
    shown = await get(client, resp.headers["Location"])
    assert "The ticket was closed." in shown and "h-close" not in section_ids(shown)
    assert "Done; share writable." in shown
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", tid) == "closed"
    # closing again: 409, explained on the page
    resp = await post(client, f"{page}/close", {"csrf_token": csrf, "note": ""}, status=409)
    assert "already closed" in await resp.text()


async def test_staff_forms_reassign_status_recipients_email_and_new_ticket(client, db) -> None:
    t = await ids(db)
    tid = t["acme_phones"]
    page = f"/tickets/{tid}"
    csrf = await login_as(client, "tech", PASSWORD)

    await post(client, f"{page}/assign", {"csrf_token": csrf, "assigned_to": str(t["sub1"])})
    assert await db.fetchval("SELECT assigned_to FROM tickets WHERE id = $1", tid) == t["sub1"]
    # sub2 may not access Acme: refused beside the picker
    resp = await post(client, f"{page}/assign", {"csrf_token": csrf, "assigned_to": str(t["sub2"])},
                      status=422)
    assert "access" in error_beside(await resp.text(), "assign-assigned_to")

    await post(client, f"{page}/status", {"csrf_token": csrf, "status": "waiting"})
    await post(client, f"{page}/recipients", [("csrf_token", csrf), ("employee_ids", str(t["sub1"])),
                                              ("employee_ids", str(t["admin"]))])
    assert {r["employee_id"] for r in await db.fetch(
        "SELECT employee_id FROM ticket_recipients WHERE ticket_id = $1", tid)} == {t["sub1"], t["admin"]}
    await post(client, f"{page}/emails", {"csrf_token": csrf, "from": "tech@msp.example",
                                          "to": "it@acme.example", "subject": "Phones", "body": "We are on it.",
                                          "public": "on"})
    shown = await get(client, page)
    assert "Sam Sub" in shown and "Waiting" in shown and "We are on it." in shown
    resp = await post(client, f"{page}/emails", {"csrf_token": csrf, "from": "", "to": "",
                                                 "subject": "", "body": "x"}, status=422)
    assert "must not be empty" in error_beside(await resp.text(), "email-subject")

    # new ticket: choose the account first, then its assets and assignable employees
    step1 = await get(client, "/tickets/new")
    assert 'name="account_id"' in step1 and "new-description" not in field_ids(step1)
    step2 = await get(client, f"/tickets/new?account_id={t['acme']}")
    assert {"new-description", "new-priority", "new-asset_id", "new-assigned_to"} <= field_ids(step2)
    assert "ACME-FS01" in step2 and "Sue Sub" not in step2
    resp = await post(client, "/tickets/new", {"csrf_token": csrf, "account_id": str(t["acme"]),
                                               "description": "Replace the reception PC",
                                               "priority": "low", "asset_id": "",
                                               "assigned_to": str(t["sub1"])})
    new_id = int(re.fullmatch(r"/tickets/(\d+)\?done=created", resp.headers["Location"]).group(1))
    assert await db.fetchval("SELECT assigned_to FROM tickets WHERE id = $1", new_id) == t["sub1"]
    # an account tech may see but sub1 may not be assigned in: 422 beside the assignee
    resp = await post(client, "/tickets/new", {"csrf_token": csrf, "account_id": str(t["globex"]),
                                               "description": "x", "assigned_to": str(t["sub1"])},
                      status=422)
    assert "access" in error_beside(await resp.text(), "new-assigned_to")

    # the new ticket is sub1's to see now
    await login_as(client, "sub1", PASSWORD)
    assert "Replace the reception PC" in await get(client, "/tickets")


# -- /me/alerts ---------------------------------------------------------------------------------


async def test_alert_settings_page_and_api(client, db) -> None:
    t = await ids(db)
    csrf = await login_as(client, "sub1", PASSWORD)
    resp = await client.get("/api/v1/me/alerts")
    assert resp.status == 200
    settings = await resp.json()
    columns = ["alert_assigned", "alert_created", "alert_reminder", "alert_digest", "recv_note",
               "recv_status", "recv_closed", "recv_email", "recv_charge", "recv_own_changes"]
    assert sorted(settings) == sorted(columns) and all(isinstance(v, bool) for v in settings.values())

    headers = {"X-CSRF-Token": csrf}
    resp = await client.put("/api/v1/me/alerts", json={"recv_charge": True, "alert_digest": True},
                            headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["recv_charge"] is True and body["alert_digest"] is True
    assert body["recv_note"] == settings["recv_note"]  # untouched
    row = await db.fetchrow("SELECT recv_charge, alert_digest FROM employee_mail_settings "
                            "WHERE employee_id = $1", t["sub1"])
    assert tuple(row) == (True, True)
    for bad, field in (({"bogus": True}, "bogus"), ({"recv_note": "yes"}, "recv_note"),
                       ({"recv_note": 1}, "recv_note")):
        resp = await client.put("/api/v1/me/alerts", json=bad, headers=headers)
        assert resp.status == 422, bad
        assert (await resp.json())["error"]["field"] == field
    assert (await client.put("/api/v1/me/alerts", json={"recv_note": False})).status == 403  # no CSRF

    page = await get(client, "/me/alerts")
    assert 'name="recv_charge" value="on" checked' in page and 'href="/me/alerts"' in page
    resp = await post(client, "/me/alerts", {"csrf_token": csrf, "alert_assigned": "on"})
    assert resp.headers["Location"] == "/me/alerts?done=saved"
    row = await db.fetchrow("SELECT * FROM employee_mail_settings WHERE employee_id = $1", t["sub1"])
    assert row["alert_assigned"] and not any(row[c] for c in columns if c != "alert_assigned")
    assert "Your settings were saved." in await get(client, "/me/alerts?done=saved")

    await login_as(client, "full@acme", PASSWORD)
    assert (await client.get("/api/v1/me/alerts")).status == 403
    await get(client, "/me/alerts", 403)
    assert "My alert settings" not in await get(client, "/tickets")
