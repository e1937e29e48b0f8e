"""Insecure direct object references, asked the same way of every principal: each ticket route
with a valid body, called for ids that must answer exactly as a missing one does, and a check
that nothing was written under them."""

from __future__ import annotations

import asyncpg

from tests.support.api import Api, Reply

MISSING = 10**12  # an id no row has

# Every ticket route with a valid body: only the ticket id varies.
TICKET_ROUTES: list[tuple[str, str, dict | None]] = [
    ("GET", "", None),
    ("PATCH", "", {"description": "pwned"}),
    ("POST", "/close", {}),
    ("GET", "/notes", None),
    ("POST", "/notes", {"body": "pwned"}),
    ("GET", "/charges", None),
    ("POST", "/charges", {"kind": "expense", "amount": "1.00"}),
    ("GET", "/emails", None),
    ("POST", "/emails", {"subject": "pwned", "body": "pwned"}),
    ("GET", "/recipients", None),
    ("PUT", "/recipients", {"employee_ids": []}),
    ("GET", "/attachments", None),
    ("UPLOAD", "/attachments", None),
]


async def call(api: Api, method: str, ticket_id: int, suffix: str, body: dict | None) -> Reply:
    path = f"/api/v1/tickets/{ticket_id}{suffix}"
    if method == "UPLOAD":
        return await api.upload(ticket_id, b"pwned", filename="pwned.txt")
    if method == "GET":
        return await api.get(path)
    return await api.send(method, path, body)


async def assert_like_missing(api: Api, ticket_ids: list[int], *, who: str) -> None:
    """Each route answers for each of `ticket_ids` exactly what it answers for a missing id,
    and that answer is 404 wherever the route is open to the user at all."""
    assert ticket_ids
    for method, suffix, body in TICKET_ROUTES:
        missing = await call(api, method, MISSING, suffix, body)
        assert missing.status in (403, 404), (who, method, suffix, missing)
        for ticket_id in ticket_ids:
            reply = await call(api, method, ticket_id, suffix, body)
            assert (reply.status, reply.body) == (missing.status, missing.body), (
                who, method, suffix, ticket_id, reply)


async def assert_nothing_written(db: asyncpg.Connection, ticket_ids: list[int]) -> None:
    assert await db.fetchval(
        """SELECT count(*) FROM tickets t WHERE t.id = ANY($1::bigint[]) AND (t.description = 'pwned'
           OR t.status = 'closed' AND t.closed_at > now() - interval '1 minute'
           OR EXISTS (SELECT 1 FROM history_notes n WHERE n.ticket_id = t.id AND n.body = 'pwned')
           OR EXISTS (SELECT 1 FROM attachments a WHERE a.ticket_id = t.id AND a.filename = 'pwned.txt')
           OR EXISTS (SELECT 1 FROM ticket_emails e WHERE e.ticket_id = t.id AND e.subject = 'pwned')
           OR EXISTS (SELECT 1 FROM charges c WHERE c.ticket_id = t.id AND c.created_at > now() - interval '1 minute'))""",
        ticket_ids) == 0
