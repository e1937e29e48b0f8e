"""Customers who see only the tickets they raised (SPEC §2, tickets_view=own), on the demo's
own@acme (group `Own tickets`: Partial with tickets_view=own): lists, search, detail,
children, attachments and downloads, HTML and API, answer for Acme's other tickets exactly as
for missing ones; what they raise is theirs; the level is live."""

from __future__ import annotations

import asyncpg

from daemon.access.explain import explain
from tests.support.api import Api, demo_ids
from tests.support.idor import MISSING, assert_like_missing, assert_nothing_written


async def _raised(db: asyncpg.Connection) -> tuple[list[int], list[int]]:
    """(the Acme tickets own@acme raised, Acme's other tickets)."""
    rows = await db.fetch(
        """SELECT t.id, t.created_by_webuser = w.id AS mine
             FROM tickets t JOIN accounts a ON a.id = t.account_id,
                  customer_web_users w
            WHERE a.name = 'Acme' AND w.username = 'own@acme' ORDER BY t.id""")
    return ([r["id"] for r in rows if r["mine"]], [r["id"] for r in rows if not r["mine"]])


async def _listed(api: Api, **params: str) -> set[int]:
    reply = await api.get("/api/v1/tickets", limit=200, **params)
    assert reply.status == 200, reply
    return {t["id"] for t in reply.body["items"]}


async def test_only_the_tickets_they_raised_on_every_api_route(users, demo_db, walls) -> None:
    mine, others = await _raised(demo_db)
    assert len(mine) == 2 and len(others) >= 4
    own = await users.login("own@acme")
    assert (await own.get("/api/v1/me")).body["privileges"]["tickets_view"] == "own"
    assert await _listed(own) == set(mine)
    assert await _listed(own, status="closed") == {mine[1]}
    # search: words of Acme's other tickets and of their notes find nothing
    for text in ("dial tone", "projects share", "Approved two", "label printer"):
        assert await _listed(own, q=text) == set(), text
    assert await _listed(own, q="battery") == {mine[0]}
    await assert_like_missing(own, others, who="own@acme")
    await assert_nothing_written(demo_db, others)
    # on their own ticket, what Partial shows
    for suffix in ("", "/notes", "/emails", "/attachments"):
        assert (await own.get(f"/api/v1/tickets/{mine[0]}{suffix}")).status == 200, suffix
    files = (await own.get(f"/api/v1/tickets/{mine[0]}/attachments")).body["items"]
    assert [f["filename"] for f in files] == ["battery-report.txt"]  # public ones only
    assert (await own.get(f"/api/v1/attachments/{files[0]['id']}")).status == 200
    # the public files of the others' tickets download like missing ones
    missing = await own.get(f"/api/v1/attachments/{MISSING}")
    foreign = await demo_db.fetch("SELECT id FROM attachments WHERE ticket_id = ANY($1::bigint[])",
                                  others)
    assert foreign
    for r in foreign:
        reply = await own.get(f"/api/v1/attachments/{r['id']}")
        assert (reply.status, reply.body) == (404, missing.body)


async def test_only_the_tickets_they_raised_on_every_page(users, demo_db, walls) -> None:
    mine, others = await _raised(demo_db)
    ids = await demo_ids(demo_db)
    own = await users.login("own@acme")
    for status, theirs in (("open", mine[0]), ("closed", mine[1])):
        listing = (await own.get("/tickets", status=status)).body.decode()
        assert f'href="/tickets/{theirs}"' in listing, status
        assert not any(f'href="/tickets/{t}"' in listing for t in others), status
    found = (await own.get("/tickets", q="dial tone")).body.decode()
    assert "meeting room" not in found
    assert not any(f'href="/tickets/{t}"' in found for t in others)
    share = await demo_db.fetchval("SELECT id FROM attachments WHERE filename = 'share-error.png'")
    for path in (f"/tickets/{ids['t_acme_main']}", f"/tickets/{ids['t_acme_main']}/print",
                 f"/attachments/{share}"):
        assert (await own.get(path)).status == 404, path
    for form, data in (("notes", {"body": "pwned"}), ("description", {"description": "pwned"})):
        reply = await own.send("POST", f"/tickets/{ids['t_acme_main']}/{form}", csrf=False,
                               data={"csrf_token": own.csrf, **data}, allow_redirects=False)
        assert reply.status == 404, (form, reply.status)
    await assert_nothing_written(demo_db, [ids["t_acme_main"]])
    assert (await own.get(f"/tickets/{mine[0]}")).status == 200
    assert (await own.get(f"/tickets/{mine[0]}/print")).status == 200


async def test_what_they_raise_is_theirs_and_what_others_raise_is_not(users, demo_db, walls) -> None:
    own = await users.login("own@acme")
    created = await own.post("/api/v1/tickets", {"description": "The scanner jams."})
    assert created.status == 201
    assert await demo_db.fetchval("SELECT w.username FROM tickets t JOIN customer_web_users w "
                                  "ON w.id = t.created_by_webuser WHERE t.id = $1",
                                  created.body["id"]) == "own@acme"
    assert created.body["id"] in await _listed(own)
    # through the page's form as well
    form = await own.send("POST", "/tickets/new", csrf=False,
                          data={"csrf_token": own.csrf, "description": "The monitor flickers."},
                          allow_redirects=False)
    assert form.status == 303
    page_ticket = int(form.headers["Location"].split("/")[2].split("?")[0])
    assert (await own.get(f"/tickets/{page_ticket}")).status == 200
    # a ticket raised elsewhere (no web user) or by a colleague is nobody's own / theirs
    elsewhere = await demo_db.fetchval(
        "INSERT INTO tickets (account_id, description) SELECT id, 'from the phone' FROM accounts "
        "WHERE name = 'Acme' RETURNING id")
    colleague = await users.login("full@acme")
    by_colleague = (await colleague.post("/api/v1/tickets", {"description": "Coffee machine"})).body["id"]
    for ticket_id in (elsewhere, by_colleague):
        assert (await own.get(f"/api/v1/tickets/{ticket_id}")).status == 404
        assert ticket_id in await _listed(colleague)  # the account's tickets for Partial/Full


async def test_the_level_is_live_and_explained(users, demo_db) -> None:
    mine, others = await _raised(demo_db)
    own = await users.login("own@acme")
    assert await _listed(own) == set(mine)
    await demo_db.execute("UPDATE customer_groups SET tickets_view = 'account' WHERE name = 'Own tickets'")
    assert await _listed(own) == set(mine + others)  # the next request sees it (SPEC §5)
    await demo_db.execute("UPDATE customer_groups SET tickets_view = 'own' WHERE name = 'Own tickets'")
    assert await _listed(own) == set(mine)

    r = await explain(demo_db, "own@acme", mine[0])
    assert r["visible"] and r["rule"] == "raised_by_user" and "tickets_view = own" in r["reason"]
    r = await explain(demo_db, "own@acme", others[0])
    assert not r["visible"] and r["rule"] == "not_raised_by_user" and r["answer"].startswith("404")
    r = await explain(demo_db, "partial@acme", others[0])
    assert r["visible"] and r["rule"] == "customer_account" and "tickets_view = account" in r["reason"]
