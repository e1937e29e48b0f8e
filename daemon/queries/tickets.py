"""Tickets and their children (history notes, charges, filed emails, attachments, recipients).

Every statement here takes its WHERE conditions from `daemon.access.scope`, and selects only the
columns the principal may see, so out-of-scope data is never fetched. A function that finds
nothing returns None or an empty list: the web layer answers 404 for both, alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from daemon.access import scope
from daemon.access.scope import Params, Principal

Conn = asyncpg.Connection | asyncpg.Pool

OPEN_STATUSES = ("open", "in_progress", "waiting")
STATUSES = (*OPEN_STATUSES, "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
CHARGE_KINDS = ("labor", "expense", "part")
MAX_PAGE = 200


def sees_asset(p: Principal) -> bool:
    """Whether `p` sees (and so may pick) the asset linked to a ticket: customers from
    ticket_asset=view, employees with the `assets` right (an asset is account data)."""
    return p.can("ticket_asset", "view") if p.is_customer else p.can("assets")


def ticket_columns(p: Principal, t: str = "t") -> str:
    """The ticket columns `p` may see: priority, asset and assignee only where allowed."""
    cols = [f"{t}.id", f"{t}.number", f"{t}.account_id", f"{t}.status", f"{t}.description",
            f"{t}.created_at", f"{t}.updated_at", f"{t}.closed_at",
            # a subselect, not a join: the same list serves INSERT/UPDATE … RETURNING
            f"(SELECT n.name FROM accounts n WHERE n.id = {t}.account_id) AS account_name"]
    if p.is_employee or p.can("priority", "view"):
        cols.append(f"{t}.priority")
    if sees_asset(p):
        cols += [f"{t}.asset_id",
                 f"(SELECT s.name FROM assets s WHERE s.id = {t}.asset_id) AS asset_name"]
    if p.is_employee:
        cols += [f"{t}.assigned_to",
                 f"(SELECT e.full_name FROM employees e WHERE e.id = {t}.assigned_to) AS assigned_name"]
    return ", ".join(cols)


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None  # 'open' (any open status), 'closed', one status, or None for all
    q: str | None = None
    account_id: int | None = None
    assigned_to_me: bool = False
    limit: int = 50
    after_id: int | None = None  # keyset cursor: tickets with a smaller id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_tickets(conn: Conn, p: Principal, f: TicketFilter) -> tuple[list[asyncpg.Record], int | None]:
    """One page of the tickets in scope, newest first, and the cursor of the next page."""
    params = Params()
    where = [scope.tickets(p, params)]
    if f.status == "open":
        where.append(f"t.status = ANY({params.add(list(OPEN_STATUSES))}::text[])")
    elif f.status:
        where.append(f"t.status = {params.add(f.status)}")
    if f.account_id is not None:
        where.append(f"t.account_id = {params.add(f.account_id)}")
    if f.assigned_to_me and p.is_employee:
        where.append(f"t.assigned_to = {params.add(p.id)}")
    if f.after_id is not None:
        where.append(f"t.id < {params.add(f.after_id)}")
    if f.q:
        pattern = params.add(f"%{_escape_like(f.q.strip())}%")
        search = [f"t.number ILIKE {pattern}", f"t.description ILIKE {pattern}"]
        if p.is_employee or p.can("history_notes"):
            # only notes the principal may see can make a ticket match
            search.append(f"""EXISTS (SELECT 1 FROM history_notes c WHERE c.ticket_id = t.id
                                 AND c.body ILIKE {pattern} AND {scope.children(p, params, 'history_notes')})""")
        where.append("(" + " OR ".join(search) + ")")
    limit = max(1, min(f.limit, MAX_PAGE))
    rows = await conn.fetch(
        f"""SELECT {ticket_columns(p)} FROM tickets t JOIN accounts a ON a.id = t.account_id
             WHERE {' AND '.join(where)} ORDER BY t.id DESC LIMIT {limit + 1}""", *params.values)
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_ticket(conn: Conn, p: Principal, ticket_id: int) -> asyncpg.Record | None:
    params = Params(ticket_id)
    extra = ""
    if p.is_employee:
        # employees see the account's contact details on the ticket
        extra = ", a.contact_name, a.phone AS account_phone, a.email AS account_email, a.address AS account_address"
    return await conn.fetchrow(
        f"""SELECT {ticket_columns(p)}{extra} FROM tickets t JOIN accounts a ON a.id = t.account_id
             WHERE t.id = $1 AND {scope.tickets(p, params)}""", *params.values)


async def ticket_in_scope(conn: Conn, p: Principal, ticket_id: int) -> bool:
    params = Params(ticket_id)
    return bool(await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM tickets t WHERE t.id = $1 AND {scope.tickets(p, params)})",
        *params.values))


async def create_ticket(conn: Conn, p: Principal, *, account_id: int, description: str,
                        priority: str | None = None, asset_id: int | None = None,
                        assigned_to: int | None = None) -> asyncpg.Record:
    """Insert a ticket (the caller has checked the principal may create it there) and return
    it with the columns its creator may see: they just wrote it, even when an own-scope
    creator assigns it to someone else and will not see it again."""
    return await conn.fetchrow(
        f"""INSERT INTO tickets AS t (account_id, description, priority, asset_id, assigned_to,
                                      created_by_employee, created_by_webuser)
            VALUES ($1, $2, COALESCE($3, 'normal'), $4, $5, $6, $7) RETURNING {ticket_columns(p)}""",
        account_id, description, priority, asset_id, assigned_to,
        p.id if p.is_employee else None, p.id if p.is_customer else None)


async def lock_ticket(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> asyncpg.Record | None:
    """Lock a ticket in scope for a change in the caller's transaction. Returns the raw
    columns the change rules compare against (some of which `p` may not see: the caller
    must not hand them out); None if the ticket is not in scope."""
    params = Params(ticket_id)
    return await conn.fetchrow(
        f"""SELECT t.id, t.number, t.account_id, t.status, t.description, t.priority, t.asset_id,
                   t.assigned_to
              FROM tickets t WHERE t.id = $1 AND {scope.tickets(p, params)} FOR UPDATE OF t""",
        *params.values)


async def change_ticket(conn: Conn, p: Principal, ticket_id: int,
                        changes: dict[str, Any]) -> asyncpg.Record | None:
    """Apply already-authorised column changes to a ticket in scope and return it as `p` saw
    it plus the changes (scope is judged on the row before the change, so reassigning an
    own-scope ticket away still answers); None if not in scope."""
    allowed = {"description", "priority", "asset_id", "assigned_to", "status"}
    if not set(changes) <= allowed:
        raise ValueError(f"unexpected ticket fields: {sorted(set(changes) - allowed)}")
    params = Params(ticket_id)
    sets = [f"{col} = {params.add(val)}" for col, val in changes.items()]
    if "status" in changes:
        sets.append(f"closed_at = CASE WHEN {params.add(changes['status'])}::text = 'closed' "
                    "THEN COALESCE(t.closed_at, now()) END")
    sets.append("updated_at = now()")
    return await conn.fetchrow(
        f"""UPDATE tickets t SET {', '.join(sets)} WHERE t.id = $1 AND {scope.tickets(p, params)}
            RETURNING {ticket_columns(p)}""", *params.values)


async def asset_in_account(conn: Conn, asset_id: int, account_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM assets WHERE id = $1 AND account_id = $2)", asset_id, account_id))


async def employees_for_account(conn: Conn, employee_ids: list[int], account_id: int) -> set[int]:
    """Those of `employee_ids` who are active and may access the account: the only valid
    assignees and recipients of its tickets."""
    rows = await conn.fetch(
        """SELECT e.id FROM employees e
            WHERE e.id = ANY($1::bigint[]) AND e.active AND (e.all_accounts OR EXISTS (
                  SELECT 1 FROM employee_accounts x WHERE x.employee_id = e.id AND x.account_id = $2))""",
        employee_ids, account_id)
    return {r["id"] for r in rows}


async def hourly_rate(conn: Conn, employee_id: int) -> Decimal:
    """The employee's default labor rate (a charge may carry a special one instead)."""
    rate = await conn.fetchval("SELECT hourly_rate FROM employees WHERE id = $1", employee_id)
    return rate if rate is not None else Decimal(0)


async def declare_actor(conn: asyncpg.Connection, p: Principal) -> None:
    """Name who makes the changes of this transaction (see daemon/db/sql/003_mail.sql), so the
    mail triggers can leave the author out of mail about their own change."""
    key = "portald.actor_employee_id" if p.is_employee else "portald.actor_webuser_id"
    await conn.execute("SELECT set_config($1, $2, true)", key, str(p.id))


# -- children --------------------------------------------------------------------------------


async def list_notes(conn: Conn, p: Principal, ticket_id: int) -> list[asyncpg.Record]:
    params = Params(ticket_id)
    return await conn.fetch(
        f"""SELECT c.id, c.body, c.created_at,
                   COALESCE(e.full_name, w.full_name, w.username, 'system') AS author,
                   CASE WHEN c.author_employee_id IS NOT NULL THEN 'employee'
                        WHEN c.author_webuser_id IS NOT NULL THEN 'customer' ELSE 'system' END AS author_kind
              FROM history_notes c JOIN tickets t ON t.id = c.ticket_id
              LEFT JOIN employees e ON e.id = c.author_employee_id
              LEFT JOIN customer_web_users w ON w.id = c.author_webuser_id
             WHERE c.ticket_id = $1 AND {scope.tickets(p, params)}
               AND {scope.children(p, params, 'history_notes')}
             ORDER BY c.id""", *params.values)


async def add_note(conn: Conn, p: Principal, ticket_id: int, body: str, *,
                   message_id: str | None = None) -> asyncpg.Record | None:
    """The note, or None when the ticket is out of scope or (`message_id`) the mail was
    already stored as a note on it."""
    params = Params(ticket_id, body, p.id if p.is_employee else None, p.id if p.is_customer else None,
                    message_id)
    row = await conn.fetchrow(
        f"""INSERT INTO history_notes (ticket_id, body, author_employee_id, author_webuser_id,
                                       message_id)
            SELECT t.id, $2, $3, $4, $5 FROM tickets t WHERE t.id = $1 AND {scope.tickets(p, params)}
            ON CONFLICT (ticket_id, message_id) WHERE message_id IS NOT NULL DO NOTHING
            RETURNING id, body, created_at""", *params.values)
    # the ticket's updated_at moves by trigger (history_notes_touch_ticket, 003_mail.sql)
    return row


async def note_from_mail(conn: Conn, ticket_id: int, message_id: str) -> int | None:
    """The note a mail with this Message-ID already became on this ticket (a redelivery)."""
    return await conn.fetchval(
        "SELECT id FROM history_notes WHERE ticket_id = $1 AND message_id = $2", ticket_id, message_id)


async def list_charges(conn: Conn, p: Principal, ticket_id: int) -> list[asyncpg.Record]:
    params = Params(ticket_id)
    return await conn.fetch(
        f"""SELECT c.id, c.kind, c.description, c.quantity, c.unit_price, c.amount, c.created_at,
                   e.full_name AS employee
              FROM charges c JOIN tickets t ON t.id = c.ticket_id
              LEFT JOIN employees e ON e.id = c.employee_id
             WHERE c.ticket_id = $1 AND {scope.tickets(p, params)}
               AND {scope.children(p, params, 'charges')}
             ORDER BY c.id""", *params.values)


async def add_charge(conn: Conn, p: Principal, ticket_id: int, *, kind: str, quantity: Decimal,
                     unit_price: Decimal, description: str) -> asyncpg.Record | None:
    params = Params(ticket_id, kind, quantity, unit_price, description, p.id)
    row = await conn.fetchrow(
        f"""INSERT INTO charges (ticket_id, kind, quantity, unit_price, description, employee_id)
            SELECT t.id, $2, $3, $4, $5, $6 FROM tickets t WHERE t.id = $1 AND {scope.tickets(p, params)}
            RETURNING id, kind, description, quantity, unit_price, amount, created_at""", *params.values)
    if row:
        await conn.execute("UPDATE tickets SET updated_at = now() WHERE id = $1", ticket_id)
    return row


async def list_emails(conn: Conn, p: Principal, ticket_id: int) -> list[asyncpg.Record]:
    params = Params(ticket_id)
    return await conn.fetch(
        f"""SELECT c.id, c.from_addr, c.to_addr, c.subject, c.body, c.is_public, c.created_at
              FROM ticket_emails c JOIN tickets t ON t.id = c.ticket_id
             WHERE c.ticket_id = $1 AND {scope.tickets(p, params)}
               AND {scope.children(p, params, 'ticket_emails')}
             ORDER BY c.id""", *params.values)


async def file_email(conn: Conn, p: Principal, ticket_id: int, *, from_addr: str, to_addr: str,
                     subject: str, body: str, is_public: bool, auto_submitted: str = "no") -> asyncpg.Record | None:
    params = Params(ticket_id, from_addr, to_addr, subject, body, is_public, auto_submitted, p.id)
    row = await conn.fetchrow(
        f"""INSERT INTO ticket_emails (ticket_id, from_addr, to_addr, subject, body, is_public,
                                       auto_submitted, filed_by)
            SELECT t.id, $2, $3, $4, $5, $6, $7, $8 FROM tickets t
             WHERE t.id = $1 AND {scope.tickets(p, params)}
            RETURNING id, from_addr, to_addr, subject, body, is_public, created_at""", *params.values)
    if row:
        await conn.execute("UPDATE tickets SET updated_at = now() WHERE id = $1", ticket_id)
    return row


async def list_attachments(conn: Conn, p: Principal, ticket_id: int) -> list[asyncpg.Record]:
    params = Params(ticket_id)
    return await conn.fetch(
        f"""SELECT c.id, c.filename, c.content_type, c.size, c.is_public, c.created_at,
                   COALESCE(e.full_name, w.full_name, w.username) AS uploaded_by
              FROM attachments c JOIN tickets t ON t.id = c.ticket_id
              LEFT JOIN employees e ON e.id = c.uploaded_by_employee
              LEFT JOIN customer_web_users w ON w.id = c.uploaded_by_webuser
             WHERE c.ticket_id = $1 AND {scope.tickets(p, params)}
               AND {scope.children(p, params, 'attachments')}
             ORDER BY c.id""", *params.values)


async def add_attachment(conn: asyncpg.Connection, p: Principal, ticket_id: int, *, filename: str,
                         content_type: str, data: bytes, is_public: bool = True) -> asyncpg.Record | None:
    """Store the file and its row in the caller's transaction; None if the ticket is out of scope."""
    if not await ticket_in_scope(conn, p, ticket_id):
        return None
    blob_id = await conn.fetchval("INSERT INTO blobs (data) VALUES ($1) RETURNING id", data)
    row = await conn.fetchrow(
        """INSERT INTO attachments (ticket_id, filename, content_type, size, blob_id, is_public,
                                    uploaded_by_employee, uploaded_by_webuser)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, filename, content_type, size, is_public, created_at""",
        ticket_id, filename, content_type, len(data), blob_id, is_public,
        p.id if p.is_employee else None, p.id if p.is_customer else None)
    # the ticket's updated_at moves by trigger (attachments_touch_ticket, 003_mail.sql)
    return row


async def get_attachment(conn: Conn, p: Principal, attachment_id: int) -> asyncpg.Record | None:
    """The attachment with its bytes, if both its ticket and the row itself are in scope."""
    params = Params(attachment_id)
    return await conn.fetchrow(
        f"""SELECT c.id, c.ticket_id, c.filename, c.content_type, c.size, b.data
              FROM attachments c JOIN tickets t ON t.id = c.ticket_id JOIN blobs b ON b.id = c.blob_id
             WHERE c.id = $1 AND {scope.tickets(p, params)} AND {scope.children(p, params, 'attachments')}""",
        *params.values)


async def list_recipients(conn: Conn, p: Principal, ticket_id: int) -> list[asyncpg.Record]:
    params = Params(ticket_id)
    return await conn.fetch(
        f"""SELECT e.id, e.username, e.full_name, e.email, e.active
              FROM ticket_recipients r JOIN tickets t ON t.id = r.ticket_id
              JOIN employees e ON e.id = r.employee_id
             WHERE r.ticket_id = $1 AND {scope.tickets(p, params)}
             ORDER BY e.full_name""", *params.values)


async def set_recipients(conn: asyncpg.Connection, p: Principal, ticket_id: int,
                         employee_ids: list[int]) -> list[asyncpg.Record] | None:
    """Replace the recipients (in the caller's transaction); None if the ticket is out of scope."""
    if not await ticket_in_scope(conn, p, ticket_id):
        return None
    await conn.execute("DELETE FROM ticket_recipients WHERE ticket_id = $1 AND NOT employee_id = ANY($2::bigint[])",
                       ticket_id, employee_ids)
    await conn.execute(
        """INSERT INTO ticket_recipients (ticket_id, employee_id)
           SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING""", ticket_id, employee_ids)
    return await list_recipients(conn, p, ticket_id)


async def assignable_employees(conn: Conn, account_id: int) -> list[asyncpg.Record]:
    """Active employees who may access the account: the only valid assignees of its tickets."""
    return await conn.fetch(
        """SELECT e.id, e.username, e.full_name, g.name AS group_name
             FROM employees e JOIN employee_groups g ON g.id = e.group_id
            WHERE e.active AND (e.all_accounts OR EXISTS (
                  SELECT 1 FROM employee_accounts x WHERE x.employee_id = e.id AND x.account_id = $1))
            ORDER BY e.full_name""", account_id)


async def account_assets(conn: Conn, account_id: int) -> list[asyncpg.Record]:
    """The assets a ticket of this account may be linked to (for the asset picker)."""
    return await conn.fetch("SELECT id, name FROM assets WHERE account_id = $1 ORDER BY name", account_id)
