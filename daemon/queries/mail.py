"""Mail: what a mail may show its recipient (the ticket and the note, charge or email it is
about, each through the recipient's own scope), the tickets a digest lists, and the delivery
status of a ticket's mails as the portal shows it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from daemon.access import scope
from daemon.access.scope import Params, Principal
from daemon.queries.tickets import sees_asset

DIGEST_MAX_TICKETS = 100
# principals per UNION ALL statement when loading what recipients may see
PRINCIPALS_PER_QUERY = 50

# Per table: the columns a mail shows and the FROM clause; `t` is always the ticket so that
# scope.tickets() applies, `c` the child row for scope.children().
_CONTENT: dict[str, tuple[str, str]] = {
    "tickets": (
        """t.id, t.number, t.description, t.status, t.priority, t.created_at, t.updated_at,
           a.name AS account_name, ae.full_name AS assignee_name""",
        """tickets t JOIN accounts a ON a.id = t.account_id
           LEFT JOIN employees ae ON ae.id = t.assigned_to""",
    ),
    "history_notes": (
        """c.id, c.ticket_id, c.body, c.created_at, c.message_id,
           coalesce(ce.full_name, nullif(cw.full_name, ''), cw.username) AS author_name""",
        """history_notes c JOIN tickets t ON t.id = c.ticket_id
           LEFT JOIN employees ce ON ce.id = c.author_employee_id
           LEFT JOIN customer_web_users cw ON cw.id = c.author_webuser_id""",
    ),
    "charges": (
        """c.id, c.ticket_id, c.kind, c.description, c.quantity, c.unit_price, c.amount,
           c.created_at, ce.full_name AS author_name""",
        """charges c JOIN tickets t ON t.id = c.ticket_id
           LEFT JOIN employees ce ON ce.id = c.employee_id""",
    ),
    "ticket_emails": (
        """c.id, c.ticket_id, c.from_addr, c.to_addr, c.subject, c.body, c.is_public,
           c.created_at, ce.full_name AS author_name""",
        """ticket_emails c JOIN tickets t ON t.id = c.ticket_id
           LEFT JOIN employees ce ON ce.id = c.filed_by""",
    ),
}
_KEY = {table: "t.id" if table == "tickets" else "c.id" for table in _CONTENT}


def _columns(table: str, p: Principal) -> str:
    """What a mail about a row of `table` shows `p`: a ticket also carries its linked asset,
    named only to a recipient whose rights name it in the portal (tickets.sees_asset), so
    mail never tells more than the portal would."""
    columns = _CONTENT[table][0]
    if table != "tickets":
        return columns
    asset = "(SELECT s.name FROM assets s WHERE s.id = t.asset_id)" if sees_asset(p) else "NULL::text"
    return f"{columns}, {asset} AS asset_name"


async def visible_rows(conn: asyncpg.Connection, table: str,
                       wants: Mapping[int, tuple[Principal, Sequence[int]]], *,
                       ids_only: bool = False) -> dict[tuple[int, int], asyncpg.Record]:
    """Rows of `table` (tickets or a ticket child) that each principal may see, keyed by
    (principal id, row id). `wants` maps a principal id to it and the row ids asked for.
    One statement per PRINCIPALS_PER_QUERY principals: each part carries that principal's
    own scope conditions, so nobody's rule is bent to batch the work."""
    source = _CONTENT[table][1]
    found: dict[tuple[int, int], asyncpg.Record] = {}
    items = [(p, ids) for p, ids in wants.values() if ids]
    for start in range(0, len(items), PRINCIPALS_PER_QUERY):
        params = Params()
        parts = []
        for p, ids in items[start:start + PRINCIPALS_PER_QUERY]:
            cond = [f"{_KEY[table]} = ANY({params.add(sorted(set(ids)))}::bigint[])",
                    scope.tickets(p, params)]
            if table != "tickets":
                cond.append(scope.children(p, params, table))
            columns = f"{_KEY[table]} AS id" if ids_only else _columns(table, p)
            parts.append(f"SELECT {params.add(p.id)}::bigint AS for_employee, {columns} "
                         f"FROM {source} WHERE " + " AND ".join(f"({c})" for c in cond))
        for r in await conn.fetch(" UNION ALL ".join(parts), *params.values):
            found[(r["for_employee"], r["id"])] = r
    return found


async def digest_tickets(conn: asyncpg.Connection, p: Principal, *,
                         limit: int = DIGEST_MAX_TICKETS) -> list[asyncpg.Record]:
    """The open tickets a digest lists: in p's scope, and assigned to p or with p among the
    recipients, least recently touched first."""
    params = Params()
    me = params.add(p.id)
    return await conn.fetch(
        f"""SELECT {_columns("tickets", p)} FROM {_CONTENT["tickets"][1]}
             WHERE t.status <> 'closed' AND {scope.tickets(p, params)}
               AND (t.assigned_to = {me} OR EXISTS (SELECT 1 FROM ticket_recipients r
                                                      WHERE r.ticket_id = t.id AND r.employee_id = {me}))
             ORDER BY t.updated_at, t.id LIMIT {params.add(limit)}""",
        *params.values,
    )

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
