"""The mail outbox as a page (filter by status, retry a failed mail) and the delivery status
of each mail of one ticket."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from daemon.formatting import when
from daemon.queries import mail as mail_q
from daemon.services.common import AdminError
from daemon.services.employees import list_employees
from daemon.services.outbox import OUTBOX_LIST_LIMIT, list_outbox, retry_outbox
from web.input import parse_id, path_id, read_form, read_query
from web.schemas.admin import Back, OutboxQuery, TicketLookup
from web.views.admin.common import actor, admin_page, connection, redirect

# "retrying" is no status of its own: a queued mail that has failed at least once
STATUS_FILTERS = ("queued", "retrying", "failed", "sent")
OUTBOX_PAGE_LIMIT = OUTBOX_LIST_LIMIT
_BACK = re.compile(r"/admin/outbox(\?status=[a-z]+)?|/admin/tickets/[0-9]{1,18}/mail")


def shown_status(row: Mapping[str, Any]) -> str:
    if row["status"] == "queued" and (row.get("attempts") or 0) > 0:
        return "retrying"
    return str(row["status"])


def _mail_row(row: Mapping[str, Any], names: Mapping[int, str]) -> dict[str, Any]:
    return {**row, "shown_status": shown_status(row),
            "recipient": names.get(row.get("employee_id") or 0, row.get("recipient_name") or ""),
            "created": when(row.get("created_at"), seconds=True),
            "next_attempt": when(row.get("next_attempt_at"), seconds=True),
            "sent": when(row.get("sent_at"), seconds=True)}


async def _names(conn: Any) -> dict[int, str]:
    listing = await list_employees(conn)
    return {e["id"]: e["username"] for e in listing["employees"]}


async def _outbox_page(request: web.Request, *, status: int = 200,
                       errors: Mapping[str, str] | None = None) -> web.Response:
    wanted = read_query(request, OutboxQuery).status
    if wanted not in STATUS_FILTERS:
        wanted = ""
    async with connection(request) as conn:
        stored = "queued" if wanted == "retrying" else (wanted or None)
        rows = await list_outbox(conn, status=stored, limit=OUTBOX_PAGE_LIMIT)
        names = await _names(conn)
    mails = [_mail_row(r, names) for r in rows]
    if wanted:
        mails = [m for m in mails if m["shown_status"] == wanted]
    return admin_page(request, "admin_outbox.html",
                  {"mails": mails, "status": wanted, "statuses": STATUS_FILTERS,
                   "limit": OUTBOX_PAGE_LIMIT},
                  status=status, errors=errors)


async def outbox_page(request: web.Request) -> web.Response:
    return await _outbox_page(request)


async def retry(request: web.Request) -> web.Response:
    outbox_id = path_id(request)
    back = (await read_form(request, Back)).back
    try:
        async with connection(request) as conn:
            await retry_outbox(conn, actor=actor(request), outbox_id=outbox_id)
    except AdminError as exc:
        return await _outbox_page(request, status=422, errors={f"retry.{outbox_id}": str(exc)})
    # back to the page the button was on: the outbox (keeping its filter) or a ticket's mail
    target = back if _BACK.fullmatch(back) else "/admin/outbox"
    return redirect(target, f"Mail {outbox_id} is queued again; the delivery worker sends it "
                    "shortly.", request=request)


async def ticket_mail_page(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    async with connection(request) as conn:
        rows = await mail_q.delivery_status(conn, ticket_id)
        names = await _names(conn)
    return admin_page(request, "admin_ticket_mail.html",
                  {"ticket_id": ticket_id, "mails": [_mail_row(r, names) for r in rows]})



async def ticket_lookup(request: web.Request) -> web.Response:
    """The outbox page's "mail of ticket" box (a GET form) lands on that ticket's mail page."""
    ticket_id = parse_id(read_query(request, TicketLookup).id.lstrip("#"))
    if ticket_id is not None:
        return web.Response(status=303, headers={"Location": f"/admin/tickets/{ticket_id}/mail"})
    return web.Response(status=303, headers={"Location": "/admin/outbox"})
