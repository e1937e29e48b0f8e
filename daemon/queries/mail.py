"""Mail as the portal shows it: the delivery status of a ticket's mails."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon import scope
from daemon.scope import Params, Principal

DELIVERY_COLUMNS = """
    o.id, o.event, o.employee_id, e.full_name AS recipient_name, o.status, o.attempts,
    o.last_code, o.last_error, o.created_at, o.next_attempt_at, o.sent_at"""


async def delivery_status(conn: asyncpg.Connection, ticket_id: int, *,
                          principal: Principal | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The mails of one ticket, newest first: to whom, about what, and where each stands
    (queued with its next attempt, sent, or failed with the server's answer).

    With `principal`, only what that person may know: nothing unless the ticket is in their
    scope; customers see none (mail goes to employees); employees who see only their own
    rows of a ticket see only their own mails."""
    params = Params(ticket_id)
    conditions = ["o.ticket_id = $1"]
    if principal is not None:
        if not principal.is_employee:
            return []
        conditions.append(f"""EXISTS (SELECT 1 FROM tickets t
                                      WHERE t.id = o.ticket_id AND {scope.tickets(principal, params)})""")
        if principal.sees_only_own_children:
            conditions.append(f"o.employee_id = {params.add(principal.id)}")
    rows = await conn.fetch(
        f"""SELECT {DELIVERY_COLUMNS}
              FROM outbox o LEFT JOIN employees e ON e.id = o.employee_id
             WHERE {' AND '.join(conditions)}
             ORDER BY o.id DESC LIMIT {params.add(limit)}""",
        *params.values,
    )
    return [dict(r) for r in rows]
