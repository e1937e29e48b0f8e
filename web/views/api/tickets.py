"""The tickets JSON API (SPEC §7): HTTP in, `web.ticket_actions` in the middle, JSON out.

Route-level privileges are declared in web/routes.py; what a body may hold in web/schemas/;
field-level rules, scope and the transaction of each change in web/ticket_actions.py. These
handlers only read the request and shape the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.formatting import json_bytes
from web import schemas
from web import ticket_actions as actions
from web.context import client_ip, db, principal
from web.files import download_response
from web.input import path_id, read_json, read_query

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _json(data: Any, status: int = 200) -> web.Response:
    response = web.Response(body=json_bytes(data), status=status, content_type="application/json")
    # answers carry personal data: never from a shared cache
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def list_tickets(request: web.Request) -> web.Response:
    p = principal(request)
    f = read_query(request, schemas.TicketQuery).filter(employee=p.is_employee)
    page = await actions.list_tickets(db(request), p, f)
    cursor = page["next_cursor"]
    page["next"] = str(request.rel_url.update_query(cursor=cursor)) if cursor else None
    return _json(page)


async def create_ticket(request: web.Request) -> web.Response:
    p = principal(request)
    new = await read_json(request, schemas.NewTicket)
    ticket = await actions.create_ticket(db(request), p, new)
    response = _json(ticket, status=201)
    response.headers["Location"] = f"/api/v1/tickets/{ticket['id']}"
    return response


async def get_ticket(request: web.Request) -> web.Response:
    return _json(await actions.get_ticket(db(request), principal(request), path_id(request)))


async def update_ticket(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    changes = await read_json(request, schemas.TicketChange)
    return _json(await actions.update_ticket(db(request), principal(request), ticket_id,
                                             changes))


async def close_ticket(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    note = (await read_json(request, schemas.Close, allow_empty=True)).note or None
    return _json(await actions.close_ticket(db(request), principal(request), ticket_id, note))


# -- a ticket's notes, charges, emails, recipients and attachments ----------------------------


def _children(list_of: Callable[..., Awaitable[list[Any]]]) -> Handler:
    """GET of one kind of a ticket's children: `{"items": [...]}`."""

    async def handler(request: web.Request) -> web.Response:
        items = await list_of(db(request), principal(request), path_id(request))
        return _json({"items": items})

    return handler


def _add_child(model: type[Any], take: Callable[[Any], Any],
               add: Callable[..., Awaitable[Any]]) -> Handler:
    """POST of one new child of a ticket: the JSON body read as `model`, `take` gives what
    `add` stores; 201."""

    async def handler(request: web.Request) -> web.Response:
        ticket_id = path_id(request)
        new = take(await read_json(request, model))
        return _json(await add(db(request), principal(request), ticket_id, new), status=201)

    return handler


list_notes = _children(actions.list_notes)
list_charges = _children(actions.list_charges)
list_emails = _children(actions.list_emails)
list_recipients = _children(actions.list_recipients)
list_attachments = _children(actions.list_attachments)
add_note = _add_child(schemas.NewNote, lambda m: m.body, actions.add_note)
add_charge = _add_child(schemas.NewCharge, lambda m: m.charge(), actions.add_charge)
file_email = _add_child(schemas.NewEmail, lambda m: m, actions.file_email)


async def set_recipients(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    ids = (await read_json(request, schemas.RecipientsChange)).ids()
    items = await actions.set_recipients(db(request), principal(request), ticket_id, ids)
    return _json({"items": items})


async def upload_attachment(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    attachment = await actions.upload_attachment(request, principal(request), ticket_id)
    response = _json(attachment, status=201)
    response.headers["Location"] = attachment["download_url"]
    return response


async def download_attachment(request: web.Request) -> web.Response:
    row = await actions.download_attachment(db(request), principal(request),
                                            path_id(request), ip=client_ip(request))
    return download_response(filename=row["filename"], content_type=row["content_type"],
                             data=row["data"])
