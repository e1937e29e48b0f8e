"""Every ticket action, authorised field by field and performed in one transaction: the one
place the JSON API (web/views/api/tickets.py) and the HTML forms (web/views/pages/) both call,
so a form can never do what the API refuses, nor the other way round.

Order of answers, the same for every action:
- 403 when the principal's group lacks the privilege of the action (also declared on the
  route, checked again here so that a caller cannot forget it) or of a field it sends;
- 404 (`not_found`) when the ticket or attachment is missing *or* out of scope, alike;
- 422 naming the field when a value is wrong (an asset of another account, an assignee
  without access, a charge of -3 hours), 409 when the ticket's state forbids the action.

Inputs arrive as the models of web/schemas/, so types, lengths and control characters
are checked before anything is authorised. Results are plain dicts ready for JSON
(web/ticket_json.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
from aiohttp import web

from daemon.access.scope import Principal
from daemon.formatting import plain
from daemon.queries import audit
from daemon.queries import tickets as q
from daemon.services import tickets as tickets_service
from web.context import actor_of, db
from web.errors import ApiError, not_found
from web.files import max_upload_bytes, read_upload
from web.input import invalid, read_form_data
from web.schemas import Charge, NewEmail, NewTicket, TicketChange, UploadFields, encode_cursor
from web.ticket_json import (
    attachment_json,
    charge_json,
    email_json,
    note_json,
    recipient_json,
    ticket_json,
)

# every employee has at least the lowest ticket scope: reads are bounded by scope, not a privilege
ANY_EMPLOYEE = ("ticket_scope", "own")

# -- privileges -------------------------------------------------------------------------------


def require(p: Principal, *, customer: tuple[str, str] | None, employee: tuple[str, str] | None,
            what: str) -> None:
    """403 unless `p` has the action's privilege (None: that kind of user never may)."""
    with refusals():
        tickets_service.require(p, customer=customer, employee=employee, what=what)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """A refusal of the shared ticket actions (daemon/services/tickets.py) as the portal's
    error: the same status, message and field."""
    try:
        yield
    except tickets_service.Refused as exc:
        raise ApiError(exc.status, exc.message, field=exc.field) from None


def _refuse_field(field: str, why: str) -> ApiError:
    return ApiError(403, f"{field}: {why}", field=field)


def _field_privilege(p: Principal, field: str, *, customer: tuple[str, str] | None,
                     employee: tuple[str, str] | None) -> None:
    need = customer if p.is_customer else employee
    if need is None:
        kind = "customers" if p.is_customer else "employees"
        raise _refuse_field(field, f"{kind} cannot set this field")
    if not p.can(*need):
        group = "privilege group" if p.is_customer else "employee group"
        raise _refuse_field(field, f"your {group} does not allow setting it ({need[0]})")


# -- transactions -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection, p: Principal) -> AsyncIterator[asyncpg.Connection]:
    """One action by `p` on the request's connection (daemon/services/tickets.py `action`: a
    savepoint inside the request's transaction, so a refused action undoes its own changes
    and the page can still be read for the answer; `p` named as its actor; the database's
    refusals a 422)."""
    with refusals():
        async with tickets_service.action(conn, p):
            yield conn


# -- reading ----------------------------------------------------------------------------------


async def list_tickets(conn: asyncpg.Connection, p: Principal, f: q.TicketFilter) -> dict[str, Any]:
    """One page: {"items": [...], "next_cursor": str | None}."""
    rows, next_id = await q.list_tickets(conn, p, f)
    return {"items": [ticket_json(r) for r in rows],
            "next_cursor": encode_cursor(next_id) if next_id is not None else None}


async def get_ticket(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> dict[str, Any]:
    row = await q.get_ticket(conn, p, ticket_id)
    if row is None:
        raise not_found()
    return ticket_json(row)


async def _children(conn: asyncpg.Connection, p: Principal, ticket_id: int, reader: Any) -> list[Any]:
    # an empty list of an out-of-scope ticket must still be a 404, not a quiet []
    if not await q.ticket_in_scope(conn, p, ticket_id):
        raise not_found()
    return await reader(conn, p, ticket_id)


async def list_notes(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> list[dict[str, Any]]:
    require(p, customer=("history_notes", "on"), employee=ANY_EMPLOYEE,
            what="read history notes")
    return [note_json(r) for r in await _children(conn, p, ticket_id, q.list_notes)]


async def list_charges(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> list[dict[str, Any]]:
    require(p, customer=("charges", "on"), employee=ANY_EMPLOYEE, what="read charges")
    return [charge_json(r) for r in await _children(conn, p, ticket_id, q.list_charges)]


async def list_emails(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> list[dict[str, Any]]:
    require(p, customer=("public_emails", "on"), employee=ANY_EMPLOYEE,
            what="read emails")
    return [email_json(r) for r in await _children(conn, p, ticket_id, q.list_emails)]


async def list_attachments(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> list[dict[str, Any]]:
    # a ticket's public files are documents of the account (SPEC §1 "attachments/documents")
    require(p, customer=("documents", "on"), employee=ANY_EMPLOYEE,
            what="read attachments")
    return [attachment_json(r) for r in await _children(conn, p, ticket_id, q.list_attachments)]


async def list_recipients(conn: asyncpg.Connection, p: Principal, ticket_id: int) -> list[dict[str, Any]]:
    require(p, customer=None, employee=ANY_EMPLOYEE, what="see ticket recipients")
    return [recipient_json(r) for r in await _children(conn, p, ticket_id, q.list_recipients)]


# -- creating and changing a ticket -----------------------------------------------------------


async def create_ticket(conn: asyncpg.Connection, p: Principal, new: NewTicket) -> dict[str, Any]:
    """Customers: in their own account, priority with priority=edit, asset with
    ticket_asset=edit. Employees: in an account they may access (required), assignee with
    assign_tickets."""
    require(p, customer=("tickets_add", "on"), employee=("create_tickets", "on"),
            what="create tickets")
    if p.is_customer:
        if new.account_id is not None and new.account_id != p.account_id:
            raise invalid("account_id", "no such account")
        account_id = p.account_id
    else:
        if new.account_id is None:
            raise invalid("account_id", "is required")
        if not p.may_access_account(new.account_id):
            # the same answer as for a missing account: no account ids are revealed
            raise invalid("account_id", "no such account")
        account_id = new.account_id
    assert account_id is not None
    if new.priority is not None:
        _field_privilege(p, "priority", customer=("priority", "edit"), employee=("create_tickets", "on"))
    if new.asset_id is not None:
        _field_privilege(p, "asset_id", customer=("ticket_asset", "edit"), employee=("assets", "on"))
    if new.assigned_to is not None:
        _field_privilege(p, "assigned_to", customer=None, employee=("assign_tickets", "on"))
    async with transaction(conn, p):
        if new.asset_id is not None and not await q.asset_in_account(conn, new.asset_id, account_id):
            raise invalid("asset_id", "no such asset in this account")
        if new.assigned_to is not None and not await q.employees_for_account(
                conn, [new.assigned_to], account_id):
            raise invalid("assigned_to", "not an active employee with access to this account")
        row = await q.create_ticket(conn, p, account_id=account_id, description=new.description,
                                    priority=new.priority, asset_id=new.asset_id,
                                    assigned_to=new.assigned_to)
    return ticket_json(row)


async def update_ticket(conn: asyncpg.Connection, p: Principal, ticket_id: int,
                        changes: TicketChange) -> dict[str, Any]:
    """Change description, priority, asset (customers and employees) and status, assignee
    (employees). A field sent with the value it already has is no change and needs no
    privilege, so a form may send all its fields; a field the principal may not even see is
    refused whatever its value (comparing would reveal it)."""
    sent = changes.sent()
    async with transaction(conn, p):
        current = await q.lock_ticket(conn, p, ticket_id)
        if current is None:
            raise not_found()
        apply: dict[str, Any] = {}
        for field, value in sent.items():
            if field == "priority" and p.is_customer and not p.can("priority", "view"):
                raise _refuse_field("priority", "your privilege group does not allow setting it (priority)")
            if field == "asset_id" and not q.sees_asset(p):
                right = "ticket_asset" if p.is_customer else "assets"
                group = "privilege group" if p.is_customer else "employee group"
                raise _refuse_field("asset_id", f"your {group} does not allow setting it ({right})")
            if field in ("status", "assigned_to") and p.is_customer:
                raise _refuse_field(field, "customers cannot set this field")
            if current[field] == value:
                continue
            _field_privilege(p, field, customer=_CUSTOMER_FIELD_PRIVILEGE.get(field),
                             employee=_EMPLOYEE_FIELD_RIGHT[field])
            if field == "status" and value == "closed" and not p.can("close_tickets"):
                raise _refuse_field("status", "your employee group does not allow closing tickets (close_tickets)")
            if field == "asset_id" and value is not None and not await q.asset_in_account(
                    conn, value, current["account_id"]):
                raise invalid("asset_id", "no such asset in this ticket's account")
            if field == "assigned_to" and value is not None and not await q.employees_for_account(
                    conn, [value], current["account_id"]):
                raise invalid("assigned_to",
                              "not an active employee with access to this ticket's account")
            apply[field] = value
        row = await q.change_ticket(conn, p, ticket_id, apply) if apply else await q.get_ticket(
            conn, p, ticket_id)
    if row is None:
        raise not_found()
    return ticket_json(row)


_CUSTOMER_FIELD_PRIVILEGE: dict[str, tuple[str, str]] = {
    "description": ("tickets_edit", "on"), "priority": ("priority", "edit"),
    "asset_id": ("ticket_asset", "edit")}
_EMPLOYEE_FIELD_RIGHT: dict[str, tuple[str, str]] = {
    "description": ("edit_tickets", "on"), "priority": ("edit_tickets", "on"),
    "asset_id": ("edit_tickets", "on"), "status": ("edit_tickets", "on"),
    "assigned_to": ("assign_tickets", "on")}


async def close_ticket(conn: asyncpg.Connection, p: Principal, ticket_id: int,
                       note: str | None = None) -> dict[str, Any]:
    """Close a ticket (employees with close_tickets), with an optional closing history note
    in the same transaction. 409 when it is already closed."""
    require(p, customer=None, employee=("close_tickets", "on"), what="close tickets")
    if note and not p.can("add_notes"):
        raise _refuse_field("note", "your employee group does not allow adding notes (add_notes)")
    async with transaction(conn, p):
        current = await q.lock_ticket(conn, p, ticket_id)
        if current is None:
            raise not_found()
        if current["status"] == "closed":
            raise ApiError(409, "the ticket is already closed")
        if note:
            await tickets_service.add_note(conn, p, ticket_id, note)
        row = await q.change_ticket(conn, p, ticket_id, {"status": "closed"})
    if row is None:
        raise not_found()
    return ticket_json(row)


# -- children ---------------------------------------------------------------------------------


async def add_note(conn: asyncpg.Connection, p: Principal, ticket_id: int, body: str) -> dict[str, Any]:
    # the one path of a note, which reply by mail takes too (daemon/services/tickets.py)
    require(p, customer=("history_notes", "on"), employee=("add_notes", "on"), what="add notes")
    async with transaction(conn, p):  # its Refused is the portal's error (refusals)
        row = await tickets_service.add_note(conn, p, ticket_id, body)
    return {"id": row["id"], "body": row["body"], "created_at": plain(row["created_at"]),
            "author": p.display_name, "author_kind": p.kind}


async def add_charge(conn: asyncpg.Connection, p: Principal, ticket_id: int,
                     charge: Charge) -> dict[str, Any]:
    require(p, customer=None, employee=("log_charges", "on"), what="log charges")
    async with transaction(conn, p):
        rate = charge.unit_price
        if rate is None:
            rate = await q.hourly_rate(conn, p.id)
        row = await q.add_charge(conn, p, ticket_id, kind=charge.kind, quantity=charge.quantity,
                                 unit_price=rate, description=charge.description)
    if row is None:
        raise not_found()
    return charge_json({**dict(row), "employee": p.display_name})


async def file_email(conn: asyncpg.Connection, p: Principal, ticket_id: int,
                     email: NewEmail) -> dict[str, Any]:
    require(p, customer=None, employee=("file_emails", "on"), what="file emails")
    async with transaction(conn, p):
        row = await q.file_email(conn, p, ticket_id, from_addr=email.from_addr,
                                 to_addr=email.to_addr, subject=email.subject, body=email.body,
                                 is_public=email.public)
    if row is None:
        raise not_found()
    return email_json(row)


async def set_recipients(conn: asyncpg.Connection, p: Principal, ticket_id: int,
                         employee_ids: list[int]) -> list[dict[str, Any]]:
    """Replace the ticket's recipients: only active employees who may access its account."""
    require(p, customer=None, employee=("edit_recipients", "on"), what="edit recipients")
    async with transaction(conn, p):
        current = await q.lock_ticket(conn, p, ticket_id)
        if current is None:
            raise not_found()
        valid = await q.employees_for_account(conn, employee_ids, current["account_id"])
        wrong = [i for i in employee_ids if i not in valid]
        if wrong:
            raise invalid("employee_ids", f"{wrong[0]} is not an active employee with access "
                                          "to this ticket's account")
        rows = await q.set_recipients(conn, p, ticket_id, employee_ids)
    if rows is None:
        raise not_found()
    return [recipient_json(r) for r in rows]


# -- files ------------------------------------------------------------------------------------


async def upload_attachment(request: web.Request, p: Principal, ticket_id: int) -> dict[str, Any]:
    """A multipart upload (`file`, and for employees an optional `public`, default false);
    customers' files are always public. The size limit stops reading at once (413)."""
    require(p, customer=("upload_files", "on"), employee=("upload_attachments", "on"),
            what="upload files")
    conn = db(request)
    # refuse before reading megabytes for a ticket the principal cannot see
    if not await q.ticket_in_scope(conn, p, ticket_id):
        raise not_found()
    upload = await read_upload(request)
    sent = read_form_data(upload.fields, UploadFields).public
    if p.is_customer:
        if sent is False:
            raise invalid("public", "files uploaded by customers are always public")
        public = True
    else:
        public = bool(sent)
    async with transaction(conn, p):
        row = await tickets_service.add_attachment(
            conn, p, ticket_id, filename=upload.filename, content_type=upload.content_type,
            data=upload.data, public=public, max_bytes=max_upload_bytes(request))
    return attachment_json({**dict(row), "uploaded_by": p.display_name})


async def download_attachment(conn: asyncpg.Connection, p: Principal, attachment_id: int, *,
                              ip: str = "") -> asyncpg.Record:
    """The attachment (filename, content_type, data) if in scope; the download is audited
    in the same transaction that reads it."""
    require(p, customer=("documents", "on"), employee=ANY_EMPLOYEE,
            what="download attachments")
    async with transaction(conn, p):
        row = await q.get_attachment(conn, p, attachment_id)
        if row is None:
            raise not_found()
        await audit.record(conn, actor=actor_of(p), action="download",
                           target=f"attachment:{attachment_id}",
                           after={"ticket_id": row["ticket_id"], "filename": row["filename"]}, ip=ip)
    return row

