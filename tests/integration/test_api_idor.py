"""Insecure direct object references: every ticket route, asked for every object of another
account (or, for a subcontractor, of tickets not assigned to them), answers exactly as for an
object that does not exist. Search never reaches outside the scope either."""

from __future__ import annotations

from tests.support.api import Api, demo_ids
from tests.support.idor import MISSING, assert_like_missing, assert_nothing_written


async def test_customer_reaches_nothing_of_another_account(users, demo_db, walls):
    ids = await demo_ids(demo_db)
    api = await users.login("full@acme")
    foreign = [r["id"] for r in await demo_db.fetch(
        "SELECT id FROM tickets WHERE account_id <> $1 ORDER BY id", ids["acme"])]
    await assert_like_missing(api, foreign, who="full@acme")
    # the routes a customer may use answered 404, not 403
    assert (await api.get(f"/api/v1/tickets/{foreign[0]}/notes")).status == 404
    assert (await api.upload(foreign[0])).status == 404
    await assert_nothing_written(demo_db, foreign)

    # attachments of other accounts, and the non-public ones of their own
    hidden = [r["id"] for r in await demo_db.fetch(
        """SELECT a.id FROM attachments a JOIN tickets t ON t.id = a.ticket_id
            WHERE t.account_id <> $1 OR NOT a.is_public""", ids["acme"])]
    missing = await api.get(f"/api/v1/attachments/{MISSING}")
    assert missing.status == 404
    for attachment_id in hidden:
        reply = await api.get(f"/api/v1/attachments/{attachment_id}")
        assert (reply.status, reply.body) == (404, missing.body), attachment_id
    assert await demo_db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'download'") == 0

    # their own ticket's lists hold only public emails and files
    main = ids["t_acme_main"]
    emails = (await api.get(f"/api/v1/tickets/{main}/emails")).body["items"]
    assert emails and all(e["public"] for e in emails)
    assert "Internal: disk pricing" not in {e["subject"] for e in emails}
    files = (await api.get(f"/api/v1/tickets/{main}/attachments")).body["items"]
    assert [f["filename"] for f in files] == ["share-error.png"]
    public_id = files[0]["id"]
    assert (await api.get(f"/api/v1/attachments/{public_id}")).status == 200

    # the list never shows another account's ticket, whatever the filter
    listed = (await api.get("/api/v1/tickets", account_id=ids["globex"], limit=200)).body["items"]
    assert listed == []
    every = (await api.get("/api/v1/tickets", limit=200)).body["items"]
    assert {t["account_id"] for t in every} == {ids["acme"]}


async def test_subcontractor_reaches_only_own_tickets_and_own_data(users, demo_db, walls):
    ids = await demo_ids(demo_db)
    sub1 = await users.login("sub1")
    outside = [r["id"] for r in await demo_db.fetch(
        "SELECT id FROM tickets WHERE account_id <> $1 OR assigned_to IS DISTINCT FROM $2 ORDER BY id",
        ids["acme"], ids["sub1"])]
    acme_not_mine = await demo_db.fetch("SELECT id FROM tickets WHERE account_id = $1 AND "
                                    "assigned_to IS DISTINCT FROM $2", ids["acme"], ids["sub1"])
    assert acme_not_mine  # the demo has Acme tickets of tech and unassigned ones
    await assert_like_missing(sub1, outside, who="sub1")
    for suffix in ("", "/notes", "/charges", "/attachments", "/recipients"):
        assert (await sub1.get(f"/api/v1/tickets/{outside[0]}{suffix}")).status == 404
    await assert_nothing_written(demo_db, outside)

    # on their own ticket, only what they added themselves
    main = ids["t_acme_main"]
    notes = (await sub1.get(f"/api/v1/tickets/{main}/notes")).body["items"]
    assert notes and {n["author"] for n in notes} == {"Sam Sub"}
    charges = (await sub1.get(f"/api/v1/tickets/{main}/charges")).body["items"]
    assert charges and {c["employee"] for c in charges} == {"Sam Sub"}
    files = (await sub1.get(f"/api/v1/tickets/{main}/attachments")).body["items"]
    assert [f["filename"] for f in files] == ["smart-report.txt"]
    emails = (await sub1.get(f"/api/v1/tickets/{main}/emails")).body["items"]
    assert emails == []  # both emails of the ticket were filed by tech
    others = [r["id"] for r in await demo_db.fetch(
        """SELECT a.id FROM attachments a JOIN tickets t ON t.id = a.ticket_id
            WHERE a.uploaded_by_employee IS DISTINCT FROM $1""", ids["sub1"])]
    assert len(others) > 5
    for attachment_id in others:
        assert (await sub1.get(f"/api/v1/attachments/{attachment_id}")).status == 404
    assert (await sub1.get(f"/api/v1/attachments/{files[0]['id']}")).status == 200

    # a ticket reassigned away leaves their scope at once
    tech = await users.login("tech")
    moved = await tech.patch(f"/api/v1/tickets/{main}", {"assigned_to": ids["tech"]})
    assert moved.status == 200
    assert (await sub1.get(f"/api/v1/tickets/{main}")).status == 404
    assert (await sub1.get(f"/api/v1/attachments/{files[0]['id']}")).status == 404


async def test_search_stays_in_scope(users, demo_db, walls):
    ids = await demo_ids(demo_db)
    customer = await users.login("full@acme")
    limited = await users.login("limited@acme")
    sub1 = await users.login("sub1")

    async def found(api: Api, text: str, **params: str) -> set[int]:
        reply = await api.get("/api/v1/tickets", q=text, limit=200, **params)
        assert reply.status == 200, reply
        return {t["id"] for t in reply.body["items"]}

    # words only in a Globex ticket and its notes
    for text in ("stuck in the queue", "relay", "312 messages"):
        assert await found(customer, text) == set()
        assert await found(sub1, text, assigned="any") == set()
    # a word only in tech's note on sub1's own ticket: sub1 does not see that note
    assert await found(sub1, "Approved two", assigned="any") == set()
    # ... the customer (history_notes=on) does, Limited (no history notes) does not
    assert await found(customer, "Approved two") == {ids["t_acme_main"]}
    assert await found(limited, "Approved two") == set()
    # sub1's own note finds the ticket for sub1
    assert await found(sub1, "array rebuilding") == {ids["t_acme_main"]}
    # LIKE wildcards are literal
    assert await found(customer, "%") == set()
    assert await found(customer, "_") == set()
