"""Ticket actions that more than one face of the product performs, one function each: a
history note and a file added by a principal, in a transaction that names them as the actor.

The portal's forms and JSON API (web/ticket_actions.py) and reply by mail
(daemon/mail/inbound.py) call these very functions, so the privilege, the scope and the limits
that decide for one decide for the other: a subcontractor who lost a ticket adds nothing to it,
by the portal or by mail.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from daemon.access.acting import acting_as
from daemon.access.scope import Principal
from daemon.db.pool import user_error
from daemon.files import safe_content_type, safe_filename
from daemon.queries import tickets as q

MAX_NOTE_CHARS = 20000  # as the schema's CHECK on history_notes.body


class Refused(Exception):
    """Not done, and nothing changed: the principal may not (403), the ticket is out of their
    scope or missing (404: the two look alike), a file is too large (413) or a value is wrong
    (422). `message` is for the person who asked."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class AlreadyStored(Exception):
    """The mail with this Message-ID already is a note on the ticket (a redelivery)."""


def require(p: Principal, *, customer: tuple[str, str] | None, employee: tuple[str, str] | None,
            what: str) -> None:
    """Refused (403) unless `p` has the action's privilege (None: that kind never may)."""
    need = customer if p.is_customer else employee
    if need is None:
        raise Refused(403, f"{'customers' if p.is_customer else 'employees'} cannot {what}")
    if not p.can(*need):
        group = "privilege group" if p.is_customer else "employee group"
        raise Refused(403, f"your {group} does not allow this ({need[0]})")


def require_add_notes(p: Principal) -> None:
    require(p, customer=("history_notes", "on"), employee=("add_notes", "on"), what="add notes")


def require_upload(p: Principal) -> None:
    require(p, customer=("upload_files", "on"), employee=("upload_attachments", "on"),
            what="upload files")


_REFUSED_BY_DATABASE = (asyncpg.IntegrityConstraintViolationError, asyncpg.RaiseError,
                        asyncpg.DataError)


def _refused(exc: BaseException) -> Refused:
    message = user_error(exc) if isinstance(exc, asyncpg.PostgresError) else None
    return Refused(422, message or "the database refused this value")


@contextlib.asynccontextmanager
async def action(conn: asyncpg.Connection, p: Principal) -> AsyncIterator[asyncpg.Connection]:
    """One action by `p` inside the principal's transaction already open on `conn` (a web
    request's): a savepoint, so that a refused action undoes only itself. `p` is named as
    its actor so that the mail triggers leave the author out of mail about their own change.
    A refusal from the database (a check, a trigger) that validation missed is Refused (422)."""
    try:
        async with conn.transaction():
            await q.declare_actor(conn, p)
            yield conn
    except _REFUSED_BY_DATABASE as exc:
        raise _refused(exc) from None


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool, p: Principal) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of its own for an action by `p` that no web request carries (a reply by
    mail): opened as the portal opens a request's (daemon/access/acting.py), so the database's
    row-level security holds for it as in the portal. The action is all the transaction holds,
    so it needs no savepoint of its own (two round trips less): a refusal undoes the whole."""
    try:
        async with pool.acquire() as conn, acting_as(conn, p):
            await q.declare_actor(conn, p)
            yield conn
    except _REFUSED_BY_DATABASE as exc:
        raise _refused(exc) from None


async def add_note(conn: asyncpg.Connection, p: Principal, ticket_id: int, body: str, *,
                   message_id: str | None = None) -> asyncpg.Record:
    """A history note by `p` on a ticket in their scope, in the caller's transaction.
    `message_id`: the mail it came from (reply by mail)."""
    require_add_notes(p)
    body = body.strip()
    if not body:
        raise Refused(422, "the note must not be empty", field="body")
    if len(body) > MAX_NOTE_CHARS:
        raise Refused(422, f"the note must be at most {MAX_NOTE_CHARS} characters (got {len(body)})",
                      field="body")
    row = await q.add_note(conn, p, ticket_id, body, message_id=message_id)
    if row is None:
        if message_id and await q.note_from_mail(conn, ticket_id, message_id):
            raise AlreadyStored(message_id)
        raise Refused(404, "not found")
    return row


async def add_attachment(conn: asyncpg.Connection, p: Principal, ticket_id: int, *,
                         filename: str | None, content_type: str | None, data: bytes,
                         public: bool, max_bytes: int) -> asyncpg.Record:
    """A file by `p` on a ticket in their scope, in the caller's transaction: its name made
    safe, its type checked, its size within `max_bytes` ([http] upload_max_mb)."""
    require_upload(p)
    if len(data) > max_bytes:
        raise Refused(413, f"the file is larger than the limit of {max_bytes // (1024 * 1024)} MB",
                      field="file")
    name = safe_filename(filename)
    row = await q.add_attachment(conn, p, ticket_id, filename=name,
                                 content_type=safe_content_type(content_type, name), data=data,
                                 is_public=public)
    if row is None:
        raise Refused(404, "not found")
    return row
