"""The forms of the ticket pages: a new ticket, and every post on a ticket. Each change goes
through web/ticket_actions, the same authorised actions the JSON API uses, so a form can never
do what the API would refuse; a refusal the user can correct shows the page again with the
reason beside its field and the input kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from daemon.access.scope import Principal
from daemon.queries import account_data
from daemon.queries import tickets as q
from web import schemas
from web import ticket_actions as actions
from web.context import db, principal
from web.errors import ApiError
from web.input import path_id, posted, read_form_data
from web.middleware.csrf import CSRF_FIELD
from web.pages import render
from web.views.pages.tickets import form_state, positive_id, render_detail, ticket_context

# -- form posts on a ticket -------------------------------------------------------------------

# a refusal the user can correct on the page; anything else (403 without a field, 404) is
# rendered as an error page by the middleware
CORRECTABLE = frozenset({409, 413, 415, 422})


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def kept_values(data: Any) -> dict[str, Any]:
    """The user's input, to put back into the form that failed (files cannot be)."""
    values: dict[str, Any] = {}
    for key in set(data.keys()) - {CSRF_FIELD}:
        items = [v for v in data.getall(key) if isinstance(v, str)]
        if items:
            values[key] = items if key == "employee_ids" else items[0]
    return values


async def rerender(request: web.Request, ticket_id: int, form: str, err: ApiError,
                   values: dict[str, Any]) -> web.Response:
    """The ticket page again, with the error beside its field and the user's input kept."""
    if err.status not in CORRECTABLE and not (err.status == 403 and err.field):
        raise err
    p = principal(request)
    ctx = await ticket_context(db(request), p, ticket_id)
    ctx["f"] = form_state(form, error=err, values=values)
    return render_detail(request, p, ctx, status=err.status)


Act = Callable[[asyncpg.Connection, Principal, int, Any], Awaitable[Any]]


async def _ticket_post(request: web.Request, form: str, done: str, model: type[Any],
                       act: Act) -> web.Response:
    """A form post on a ticket: its fields read as `model` (the JSON API's own), then `act`."""
    p = principal(request)
    ticket_id = path_id(request)
    data = await posted(request)
    try:
        await act(db(request), p, ticket_id, read_form_data(data, model))
    except ApiError as err:
        return await rerender(request, ticket_id, form, err, kept_values(data))
    return see_other(f"/tickets/{ticket_id}?done={done}")


async def _change(conn: asyncpg.Connection, p: Principal, ticket_id: int, m: schemas.TicketChange) -> Any:
    return await actions.update_ticket(conn, p, ticket_id, m)


async def post_description(request: web.Request) -> web.Response:
    return await _ticket_post(request, "description", "description", schemas.TicketChange, _change)


async def post_fields(request: web.Request) -> web.Response:
    return await _ticket_post(request, "fields", "fields", schemas.TicketChange, _change)


async def post_status(request: web.Request) -> web.Response:
    return await _ticket_post(request, "status", "status", schemas.TicketChange, _change)


async def post_assign(request: web.Request) -> web.Response:
    return await _ticket_post(request, "assign", "assign", schemas.TicketChange, _change)


async def post_recipients(request: web.Request) -> web.Response:
    async def act(conn: asyncpg.Connection, p: Principal, ticket_id: int, m: Any) -> Any:
        return await actions.set_recipients(conn, p, ticket_id, m.ids())
    return await _ticket_post(request, "recipients", "recipients", schemas.RecipientsChange, act)


async def post_note(request: web.Request) -> web.Response:
    async def act(conn: asyncpg.Connection, p: Principal, ticket_id: int, m: Any) -> Any:
        return await actions.add_note(conn, p, ticket_id, m.body)
    return await _ticket_post(request, "note", "note", schemas.NewNote, act)


async def post_charge(request: web.Request) -> web.Response:
    kind = (await posted(request)).get("kind")
    form = f"charge-{kind}" if kind in q.CHARGE_KINDS else "charge-labor"

    async def act(conn: asyncpg.Connection, p: Principal, ticket_id: int, m: Any) -> Any:
        return await actions.add_charge(conn, p, ticket_id, m.charge())
    return await _ticket_post(request, form, "charge", schemas.NewCharge, act)


async def post_email(request: web.Request) -> web.Response:
    async def act(conn: asyncpg.Connection, p: Principal, ticket_id: int, m: Any) -> Any:
        return await actions.file_email(conn, p, ticket_id, m)
    return await _ticket_post(request, "email", "email", schemas.NewEmail, act)


async def post_close(request: web.Request) -> web.Response:
    async def act(conn: asyncpg.Connection, p: Principal, ticket_id: int, m: Any) -> Any:
        return await actions.close_ticket(conn, p, ticket_id, m.note or None)
    return await _ticket_post(request, "close", "close", schemas.Close, act)


async def post_attachment(request: web.Request) -> web.Response:
    p = principal(request)
    ticket_id = path_id(request)
    try:
        await actions.upload_attachment(request, p, ticket_id)
    except ApiError as err:
        return await rerender(request, ticket_id, "attachment", err, {})
    return see_other(f"/tickets/{ticket_id}?done=attachment")


# -- a new ticket -----------------------------------------------------------------------------


async def _new_ticket_page(request: web.Request, *, account_id: int | None,
                           f: dict[str, Any], status: int = 200) -> web.Response:
    """Customers: their account, priority and asset only where their level is edit.
    Employees: first the account (a plain GET form, so the page needs no JavaScript), then
    that account's assets and, with assign_tickets, the employees who may be assigned."""
    p = principal(request)
    ctx: dict[str, Any] = {"f": f, "accounts": [], "account": None, "assets": [], "people": []}
    conn = db(request)
    if p.is_customer:
        ctx["priority"] = p.can("priority", "edit")
        if p.can("ticket_asset", "edit"):
            assert p.account_id is not None
            ctx["assets"] = await q.account_assets(conn, p.account_id)
    else:
        ctx["priority"] = True
        accounts = await account_data.account_names(conn, p)
        ctx["accounts"] = accounts
        if account_id is None and len(accounts) == 1:
            account_id = accounts[0]["id"]
        account = next((a for a in accounts if a["id"] == account_id), None)
        ctx["account"] = account
        if account is not None:
            if q.sees_asset(p):
                ctx["assets"] = await q.account_assets(conn, account["id"])
            if p.can("assign_tickets"):
                ctx["people"] = await q.assignable_employees(conn, account["id"])
    ctx["asset_field"] = p.can("assets") if p.is_employee else p.can("ticket_asset", "edit")
    return render(request, "ticket_new.html", ctx, status=status)


async def new_ticket_page(request: web.Request) -> web.Response:
    return await _new_ticket_page(request, account_id=positive_id(request.query.get("account_id")),
                                  f=form_state())


async def new_ticket_submit(request: web.Request) -> web.Response:
    p = principal(request)
    data = await posted(request)
    try:
        ticket = await actions.create_ticket(db(request), p,
                                             read_form_data(data, schemas.NewTicket))
    except ApiError as err:
        if err.status not in CORRECTABLE and not (err.status == 403 and err.field):
            raise
        account_id = positive_id(data.get("account_id") if isinstance(data.get("account_id"), str) else None)
        return await _new_ticket_page(request, account_id=account_id, status=err.status,
                                      f=form_state("new", error=err, values=kept_values(data)))
    if p.sees_only_own_tickets and ticket.get("assigned_to") != p.id:
        # assigned to someone else by an own-scope creator: theirs now, not ours to open
        return see_other("/tickets?done=created")
    return see_other(f"/tickets/{ticket['id']}?done=created")
