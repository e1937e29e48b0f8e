"""The ticket pages of the portal (HTML, no JavaScript needed): the list, one ticket and its
print view; the forms on them are web/views/pages/ticket_forms.py.

Reads go through daemon/queries (scoped there). What a page shows is decided in one place,
`sections_for`: a section a privilege turns off is not rendered at all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from daemon.access.scope import Principal
from daemon.queries import account_data, mail
from daemon.queries import tickets as q
from daemon.queries.ticket_page import Wanted, ticket_page
from web import ticket_actions as actions
from web.context import client_ip, db, principal
from web.errors import ApiError, not_found
from web.files import download_response
from web.input import parse_id, path_id, read_query
from web.pages import render
from web.schemas import TicketListPage
from web.views.pages.ticket_children import child_rows
from web.views.pages.ticket_rows import list_rows

PAGE_SIZE = 50

STATUS_LABELS = {"open": "Open", "in_progress": "In progress", "waiting": "Waiting",
                 "closed": "Closed"}
PRIORITY_LABELS = {p: p.capitalize() for p in q.PRIORITIES}

# ?done=<key> after a successful form post: the notice shown on the ticket page
DONE_MESSAGES = {
    "created": "The ticket was created.",
    "description": "The description was saved.",
    "fields": "The ticket was updated.",
    "assign": "The ticket was reassigned.",
    "status": "The status was changed.",
    "recipients": "The recipients were saved.",
    "note": "Your note was added.",
    "charge": "The charge was logged.",
    "email": "The email was filed.",
    "attachment": "The file was uploaded.",
    "close": "The ticket was closed.",
    # demo mode: the reply sent from the caught mail's page (web/views/admin/caught_mail.py)
    "reply": "Your reply came in by mail and is now a note on the ticket.",
}


# -- what a principal sees and may do on one ticket -------------------------------------------


@dataclass(frozen=True)
class TicketSections:
    """Which sections and forms a ticket page renders for one principal. The actions check
    again on every post; this only keeps the page from offering what they would refuse."""

    edit_description: bool
    priority: str  # none · view · edit
    asset: str  # none · view · edit
    notes: bool
    add_note: bool
    emails: bool
    file_email: bool
    attachments: bool
    upload: bool
    charges: bool
    log_charges: bool
    contact: bool
    assignee: bool
    assign: bool
    status: bool
    recipients: bool
    edit_recipients: bool
    delivery: bool
    close: bool


def sections_for(p: Principal, ticket: asyncpg.Record | dict[str, Any]) -> TicketSections:
    closed = ticket["status"] == "closed"
    if p.is_customer:
        return TicketSections(
            edit_description=p.can("tickets_edit"),
            priority=p.level("priority") if p.can("priority", "view") else "none",
            asset=p.level("ticket_asset") if p.can("ticket_asset", "view") else "none",
            notes=p.can("history_notes"), add_note=p.can("history_notes"),
            emails=p.can("public_emails"), file_email=False,
            # public ticket files are documents of the account; uploading is its own privilege
            attachments=p.can("documents"), upload=p.can("upload_files"),
            charges=p.can("charges"), log_charges=False,
            contact=False, assignee=False, assign=False, status=False, recipients=False,
            edit_recipients=False, delivery=False, close=False)
    edit = p.can("edit_tickets")
    return TicketSections(
        edit_description=edit,
        priority="edit" if edit else "view",
        asset=("edit" if edit else "view") if q.sees_asset(p) else "none",
        notes=True, add_note=p.can("add_notes"),
        emails=True, file_email=p.can("file_emails"),
        attachments=True, upload=p.can("upload_attachments"),
        charges=True, log_charges=p.can("log_charges"),
        contact=True, assignee=True, assign=p.can("assign_tickets"), status=edit,
        recipients=True, edit_recipients=p.can("edit_recipients"), delivery=True,
        close=p.can("close_tickets") and not closed)


# -- small helpers ----------------------------------------------------------------------------


def positive_id(value: str | None) -> int | None:
    """A positive id from a query string, or None (a bad filter is simply ignored)."""
    return parse_id(value)


# -- the list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListParams:
    """The list's query string, read leniently: an unknown value falls back to the default."""

    status: str  # open · closed · a status · all (employees)
    q: str
    account_id: int | None
    mine: bool
    cursor: int | None

    @classmethod
    def read(cls, p: Principal, query: TicketListPage) -> ListParams:
        # everyone starts on the tickets still to be worked; employees may pick "all"
        choices = ("open", "closed") if p.is_customer else ("all", "open", *q.STATUSES)
        return cls(status=query.status if query.status in choices else "open",
                   q=query.q,
                   account_id=query.account if p.is_employee else None,
                   # employees start on the tickets assigned to them
                   mine=p.is_employee and query.mine != "0",
                   cursor=query.cursor)

    def url(self, **changes: Any) -> str:
        """This list's URL with some parameters changed (None drops one)."""
        return _list_url(self, tuple(changes.items()))


@functools.lru_cache(maxsize=1024)
def _list_url(params: ListParams, changes: tuple[tuple[str, Any], ...]) -> str:
    # a list page writes three or four of these, the same ones on every view of it
    values: dict[str, Any] = {"status": params.status, "q": params.q,
                              "account": params.account_id or "",
                              "mine": "1" if params.mine else "0", "cursor": params.cursor or ""}
    values.update(changes)
    kept = {k: v for k, v in values.items() if v not in (None, "")}
    return "/tickets" + ("?" + urlencode(kept) if kept else "")


async def ticket_list(request: web.Request) -> web.Response:
    p = principal(request)
    params = ListParams.read(p, read_query(request, TicketListPage))
    f = q.TicketFilter(status=None if params.status == "all" else params.status,
                       q=params.q or None, account_id=params.account_id,
                       assigned_to_me=params.mine, limit=PAGE_SIZE, after_id=params.cursor)
    conn = db(request)
    rows, next_cursor = await q.list_tickets(conn, p, f)
    accounts = await account_data.account_names(conn, p) if p.is_employee else []
    show_priority = p.is_employee or p.can("priority", "view")
    return render(request, "tickets_list.html", {
        "tickets": rows, "params": params, "accounts": accounts,
        "rows": list_rows(aiohttp_jinja2.get_env(request.app), rows, employee=p.is_employee,
                          show_priority=show_priority, status_labels=STATUS_LABELS,
                          priority_labels=PRIORITY_LABELS),
        "next_url": params.url(cursor=next_cursor) if next_cursor else None,
        "first_url": params.url(cursor=None) if params.cursor else None,
        "statuses": q.STATUSES,
        "show_priority": show_priority,
        "done": DONE_MESSAGES.get(request.query.get("done", "")),
    })


# -- one ticket -------------------------------------------------------------------------------


async def ticket_context(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> dict[str, Any]:
    """Everything a ticket page shows to `p`; raises 404 when the ticket is not in scope. Only
    the sections `p` may see are read: the ticket and its sections in one statement, and for
    employees the ticket's mail in a second."""
    # which sections `p` may see depends on the principal alone; only `close` needs the ticket
    s = sections_for(p, {"status": "open"})
    found = await ticket_page(conn, p, ticket_id, Wanted(
        notes=s.notes, emails=s.emails, attachments=s.attachments, charges=s.charges,
        recipients=s.recipients, assets=s.asset == "edit",
        people=s.assign or s.edit_recipients, hourly_rate=s.log_charges))
    if found is None:
        raise not_found()
    s = sections_for(p, found)
    ctx: dict[str, Any] = {"ticket": found, "s": s}
    for section in ("notes", "emails", "attachments", "charges", "recipients", "people",
                    "assets"):
        ctx[section] = found.pop(section, [])
    ctx["charges_total"] = sum((c["amount"] for c in ctx["charges"]), Decimal(0))
    ctx["deliveries"] = (await mail.delivery_status(conn, ticket_id, principal=p)
                         if s.delivery else [])
    if s.log_charges:
        rate = found.pop("hourly_rate")
        ctx["hourly_rate"] = rate if rate is not None else Decimal(0)
    return ctx


# the visible label of each form field, for the error summary at the top of a page
FIELD_LABELS = {
    "description": "Description", "priority": "Priority", "asset_id": "Asset",
    "status": "Status", "assigned_to": "Assignee", "employee_ids": "Recipients",
    "body": "Text", "note": "Closing note", "hours": "Hours", "rate": "Hourly rate",
    "amount": "Amount", "quantity": "Quantity", "unit_price": "Unit price", "kind": "Kind",
    "from": "From", "to": "To", "subject": "Subject", "public": "Public", "file": "File",
    "account_id": "Account",
}


def form_state(form: str | None = None, *, error: ApiError | None = None,
               values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Which form failed, on which field, with what message, and the user's input to keep.
    `message` drops the "field: " prefix of web.input's messages (it stands beside the
    field); `summary` names the field by its label for the list at the top of the page."""
    message = summary = error.message if error else ""
    field = error.field if error else None
    if field and message.startswith(f"{field}: "):
        message = message[len(field) + 2:]
        summary = f"{FIELD_LABELS.get(field, field)}: {message}"
    return {"form": form, "error": error, "field": field, "message": message,
            "summary": summary, "values": values or {}}


def render_detail(request: web.Request, p: Principal, ctx: dict[str, Any], *,
                  status: int = 200) -> web.Response:
    """ticket_detail.html for `ctx` (ticket_context's, with `f` and `done`)."""
    ctx["rows"] = child_rows(ctx["notes"], ctx["emails"], ctx["attachments"], ctx["charges"],
                             employee=p.is_employee)
    return render(request, "ticket_detail.html", ctx, status=status)


async def ticket_detail(request: web.Request) -> web.Response:
    p = principal(request)
    ticket_id = path_id(request)
    conn = db(request)
    ctx = await ticket_context(conn, p, ticket_id)
    ctx["done"] = DONE_MESSAGES.get(request.query.get("done", ""))
    ctx["f"] = form_state()
    return render_detail(request, p, ctx)


async def ticket_print(request: web.Request) -> web.Response:
    p = principal(request)
    ticket_id = path_id(request)
    conn = db(request)
    ctx = await ticket_context(conn, p, ticket_id)
    return render(request, "ticket_print.html", ctx)


async def download_attachment(request: web.Request) -> web.Response:
    """A ticket's file, for the page's links: the same audited action as the API's download,
    with HTML error pages."""
    row = await actions.download_attachment(db(request), principal(request),
                                            path_id(request), ip=client_ip(request))
    return download_response(filename=row["filename"], content_type=row["content_type"],
                             data=row["data"])
