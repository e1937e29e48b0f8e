"""The tickets JSON API (SPEC §7): HTTP in, `web.ticket_actions` in the middle, JSON out.

Route-level privileges are declared in web/routes.py; field-level rules, scope and the
transaction of each change live in web/ticket_actions.py. These handlers only read the
request and shape the answer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.keys import POOL
from web import ticket_actions as actions
from web.auth import client_ip, principal
from web.files import download_response
from web.validation import json_fields, path_id, query_fields


def _json(data: Any, status: int = 200) -> web.Response:
    response = web.json_response(data, status=status)
    # answers carry personal data: never from a shared cache
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def list_tickets(request: web.Request) -> web.Response:
    p = principal(request)
    f = actions.ticket_filter(query_fields(request), p)
    page = await actions.list_tickets(request.app[POOL], p, f)
    cursor = page["next_cursor"]
    page["next"] = str(request.rel_url.update_query(cursor=cursor)) if cursor else None
    return _json(page)


async def create_ticket(request: web.Request) -> web.Response:
    p = principal(request)
    new = actions.NewTicket.from_fields(await json_fields(request))
    ticket = await actions.create_ticket(request.app[POOL], p, new)
    response = _json(ticket, status=201)
    response.headers["Location"] = f"/api/v1/tickets/{ticket['id']}"
    return response


async def get_ticket(request: web.Request) -> web.Response:
    return _json(await actions.get_ticket(request.app[POOL], principal(request), path_id(request)))


async def update_ticket(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    changes = actions.TicketChanges.from_fields(await json_fields(request))
    return _json(await actions.update_ticket(request.app[POOL], principal(request), ticket_id,
                                             changes))


async def close_ticket(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    note = actions.closing_note(await json_fields(request, allow_empty=True))
    return _json(await actions.close_ticket(request.app[POOL], principal(request), ticket_id, note))


async def list_notes(request: web.Request) -> web.Response:
    items = await actions.list_notes(request.app[POOL], principal(request), path_id(request))
    return _json({"items": items})


async def add_note(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    body = actions.note_body(await json_fields(request))
    return _json(await actions.add_note(request.app[POOL], principal(request), ticket_id, body),
                 status=201)


async def list_charges(request: web.Request) -> web.Response:
    items = await actions.list_charges(request.app[POOL], principal(request), path_id(request))
    return _json({"items": items})


async def add_charge(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    charge = actions.NewCharge.from_fields(await json_fields(request))
    return _json(await actions.add_charge(request.app[POOL], principal(request), ticket_id, charge),
                 status=201)


async def list_emails(request: web.Request) -> web.Response:
    items = await actions.list_emails(request.app[POOL], principal(request), path_id(request))
    return _json({"items": items})


async def file_email(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    email = actions.NewEmail.from_fields(await json_fields(request))
    return _json(await actions.file_email(request.app[POOL], principal(request), ticket_id, email),
                 status=201)


async def list_recipients(request: web.Request) -> web.Response:
    items = await actions.list_recipients(request.app[POOL], principal(request), path_id(request))
    return _json({"items": items})


async def set_recipients(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    ids = actions.recipient_ids(await json_fields(request))
    items = await actions.set_recipients(request.app[POOL], principal(request), ticket_id, ids)
    return _json({"items": items})


async def list_attachments(request: web.Request) -> web.Response:
    items = await actions.list_attachments(request.app[POOL], principal(request), path_id(request))
    return _json({"items": items})


async def upload_attachment(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    attachment = await actions.upload_attachment(request, principal(request), ticket_id)
    response = _json(attachment, status=201)
    response.headers["Location"] = attachment["download_url"]
    return response


async def download_attachment(request: web.Request) -> web.Response:
    row = await actions.download_attachment(request.app[POOL], principal(request),
                                            path_id(request), ip=client_ip(request))
    return download_response(filename=row["filename"], content_type=row["content_type"],
                             data=row["data"])
