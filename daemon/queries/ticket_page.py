"""One ticket and everything its page shows, in one statement: the ticket's visible children
aggregated in PostgreSQL (`json_agg`), so the page costs one round trip instead of one per
section.

Each child is read with the same conditions as its own query in `daemon.queries.tickets`
(`daemon.access.scope.children`), correlated to a ticket that the outer WHERE has already
found in scope; row-level security applies to every subquery as to any other statement of
the request. The rows come back with the types the single queries give (times as datetimes,
amounts as decimals), so templates cannot tell the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from daemon.access import scope
from daemon.access.scope import Params, Principal
from daemon.queries.tickets import ticket_columns

_NOTES = """SELECT c.id, c.body, c.created_at,
                   COALESCE(e.full_name, w.full_name, w.username, 'system') AS author,
                   CASE WHEN c.author_employee_id IS NOT NULL THEN 'employee'
                        WHEN c.author_webuser_id IS NOT NULL THEN 'customer' ELSE 'system' END AS author_kind
              FROM history_notes c
              LEFT JOIN employees e ON e.id = c.author_employee_id
              LEFT JOIN customer_web_users w ON w.id = c.author_webuser_id
             WHERE c.ticket_id = t.id AND {cond}"""
_EMAILS = """SELECT c.id, c.from_addr, c.to_addr, c.subject, c.body, c.is_public, c.created_at
              FROM ticket_emails c WHERE c.ticket_id = t.id AND {cond}"""
_ATTACHMENTS = """SELECT c.id, c.filename, c.content_type, c.size, c.is_public, c.created_at,
                         COALESCE(e.full_name, w.full_name, w.username) AS uploaded_by
              FROM attachments c
              LEFT JOIN employees e ON e.id = c.uploaded_by_employee
              LEFT JOIN customer_web_users w ON w.id = c.uploaded_by_webuser
             WHERE c.ticket_id = t.id AND {cond}"""
# numbers as text: JSON would make floats of them, and an amount is a decimal
_CHARGES = """SELECT c.id, c.kind, c.description, c.quantity::text, c.unit_price::text,
                     c.amount::text, c.created_at, e.full_name AS employee
              FROM charges c LEFT JOIN employees e ON e.id = c.employee_id
             WHERE c.ticket_id = t.id AND {cond}"""
_RECIPIENTS = """SELECT e.id, e.username, e.full_name, e.email, e.active
              FROM ticket_recipients r JOIN employees e ON e.id = r.employee_id
             WHERE r.ticket_id = t.id"""
_ASSETS = "SELECT s.id, s.name FROM assets s WHERE s.account_id = t.account_id"
_PEOPLE = """SELECT e.id, e.username, e.full_name, g.name AS group_name
              FROM employees e JOIN employee_groups g ON g.id = e.group_id
             WHERE e.active AND (e.all_accounts OR EXISTS (
                   SELECT 1 FROM employee_accounts x WHERE x.employee_id = e.id
                      AND x.account_id = t.account_id))"""

_TIMES = ("created_at",)
_DECIMALS = ("quantity", "unit_price", "amount")


@dataclass(frozen=True)
class Wanted:
    """Which of a ticket's sections to read (the page's `sections_for`)."""

    notes: bool = False
    emails: bool = False
    attachments: bool = False
    charges: bool = False
    recipients: bool = False
    assets: bool = False  # the account's assets, for the asset picker
    people: bool = False  # the employees who may be assigned or be recipients
    hourly_rate: bool = False  # the principal's own default labor rate


def _aggregate(select: str, order: str, alias: str) -> str:
    return f"(SELECT COALESCE(json_agg(x ORDER BY {order}), '[]') FROM ({select}) x) AS {alias}"


def _sections(p: Principal, params: Params, want: Wanted) -> list[str]:
    def cond(table: str) -> str:
        return scope.children(p, params, table)

    parts = []
    if want.notes:
        parts.append(_aggregate(_NOTES.format(cond=cond("history_notes")), "x.id", "notes"))
    if want.emails:
        parts.append(_aggregate(_EMAILS.format(cond=cond("ticket_emails")), "x.id", "emails"))
    if want.attachments:
        parts.append(_aggregate(_ATTACHMENTS.format(cond=cond("attachments")), "x.id",
                                "attachments"))
    if want.charges:
        parts.append(_aggregate(_CHARGES.format(cond=cond("charges")), "x.id", "charges"))
    if want.recipients:
        parts.append(_aggregate(_RECIPIENTS, "x.full_name", "recipients"))
    if want.assets:
        parts.append(_aggregate(_ASSETS, "x.name", "assets"))
    if want.people:
        parts.append(_aggregate(_PEOPLE, "x.full_name", "people"))
    if want.hourly_rate:
        parts.append(f"(SELECT r.hourly_rate FROM employees r WHERE r.id = {params.add(p.id)})"
                     " AS hourly_rate")
    return parts


def _typed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for item in items:
        for key in _TIMES:
            if key in item:
                item[key] = datetime.fromisoformat(item[key]).astimezone(UTC)
        for key in _DECIMALS:
            if key in item:
                item[key] = Decimal(item[key])
    return items


async def ticket_page(conn: asyncpg.Connection | asyncpg.Pool, p: Principal, ticket_id: int,
                      want: Wanted) -> dict[str, Any] | None:
    """The ticket (as `daemon.queries.tickets.get_ticket` reads it) with the wanted sections
    as lists of dicts under their names, or None when the ticket is not in scope."""
    params = Params(ticket_id)
    where = scope.tickets(p, params)
    extra = ""
    if p.is_employee:
        # employees see the account's contact details on the ticket
        extra = (", a.contact_name, a.phone AS account_phone, a.email AS account_email,"
                 " a.address AS account_address")
    sections = _sections(p, params, want)
    row = await conn.fetchrow(
        f"""SELECT {ticket_columns(p)}{extra}{''.join(', ' + s for s in sections)}
              FROM tickets t JOIN accounts a ON a.id = t.account_id
             WHERE t.id = $1 AND {where}""", *params.values)
    if row is None:
        return None
    page = dict(row.items())
    for name in ("notes", "emails", "attachments", "charges", "recipients", "assets", "people"):
        if name in page:
            page[name] = _typed(orjson.loads(page[name]))
    return page
