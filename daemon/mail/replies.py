"""What a reply by mail becomes, decided when it arrives (SPEC §4 "Reply by mail").

At RCPT the address must be one of ours with a token that verifies (daemon/mail/reply_token.py)
and names an employee who may, right now, add a note to that ticket; at DATA the message must
not be automatic, and it is stored: one history note by that employee with the new text, the
files as their attachments, all in one transaction opened for them as principal, through the
very functions the portal's "add note" and upload use (daemon/services/tickets.py) — so the
rights, scope and limits are the portal's. Each refusal and each stored reply is written to
the audit table with its reason, and counted on /metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from daemon.access.principals import load_principal
from daemon.access.scope import Principal
from daemon.config import Settings
from daemon.mail.reply import Reply
from daemon.mail.reply_token import ReplyAddress, ReplyKey, read, signing_key
from daemon.mail.values import header_text
from daemon.metrics import Metrics
from daemon.queries import audit
from daemon.queries import reply_keys as keys_q
from daemon.queries import tickets as tickets_q
from daemon.services import tickets as tickets_service
from daemon.services.tickets import AlreadyStored, Refused

log = logging.getLogger("portald.inbound")

NOTHING_ADDED = "nothing was added"


@dataclass(eq=False)
class Refusal(Exception):
    """A reply not taken: an SMTP answer (5xx), a reason for the audit table and /metrics."""

    reason: str
    text: str
    code: int = 550
    status: str = "5.7.1"
    # whom a verified token named, when the refusal comes after it (for the audit row)
    who: Target | None = None

    def line(self) -> str:
        return f"{self.code} {self.status} {self.text}"


@dataclass(frozen=True)
class Target:
    """Whom a verified reply address stands for, and which ticket."""

    employee_id: int
    ticket_id: int
    username: str
    principal: Principal | None = None  # as the RCPT check found them


@dataclass
class Context:
    """What is known of one SMTP transaction, for the audit row."""

    peer: str = ""
    mail_from: str = ""
    target: Target | None = None  # the accepted recipient
    claimed: Target | None = None  # a verified token whose recipient was refused
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def named(self) -> Target | None:
        return self.target or self.claimed

    @property
    def actor(self) -> str:
        return f"employee:{self.named.username}" if self.named else "mail:unauthenticated"


def may_reply(p: Principal | None) -> Principal:
    """The principal, if it may add a note by mail at all (scope is asked separately)."""
    if p is None:
        raise Refusal("unknown_employee", "no such recipient", status="5.1.1")
    if not p.active:
        raise Refusal("inactive", f"{p.username} is inactive; {NOTHING_ADDED}")
    try:
        tickets_service.require_add_notes(p)
    except Refused as exc:
        raise Refusal("no_add_notes", f"{exc.message}; {NOTHING_ADDED}") from None
    return p


class Replies:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, metrics: Metrics) -> None:
        self.pool, self.settings, self.metrics = pool, settings, metrics

    @property
    def address(self) -> ReplyAddress:
        return ReplyAddress.parse(self.settings.current.inbound.reply_address)

    async def recipient(self, address: str) -> Target:
        """The target of a reply address at RCPT; Refusal when the address is not ours, its
        token does not verify, or its employee may not add to that ticket now."""
        token = self.address.token_of(address)
        if token is None:
            raise Refusal("not_reply_address", "no such reply address", status="5.1.1")
        claim = read(token)
        async with self.pool.acquire() as conn:  # one connection for the three questions
            keys = await keys_q.verifying(conn)
            key = signing_key(claim, [ReplyKey(r["id"], bytes(r["secret"])) for r in keys]) if claim else None
            if claim is None or key is None:
                raise Refusal("bad_token", "unknown or tampered reply address", status="5.1.1")
            if not next(r["valid"] for r in keys if r["id"] == key.id):
                raise Refusal("key_expired", "this reply address has expired; answer a newer mail "
                              "or use the portal", status="5.1.1")
            found = await load_principal(conn, "employee", claim.employee_id)
            target = Target(claim.employee_id, claim.ticket_id,
                            found.username if found else f"#{claim.employee_id}")
            try:
                p = may_reply(found)
                if not await tickets_q.ticket_in_scope(conn, p, claim.ticket_id):
                    raise Refusal("not_in_scope",
                                  f"the ticket is not (or no longer) in your scope; {NOTHING_ADDED}")
            except Refusal as refusal:
                refusal.who = target
                raise
        return Target(p.id, claim.ticket_id, p.username, p)

    async def store(self, ctx: Context, reply: Reply) -> str:
        """The reply as a note (and files) by the target employee; the SMTP answer."""
        assert ctx.target is not None
        if reply.automatic:
            raise Refusal("auto_submitted", f"automatic mail (Auto-Submitted: {reply.automatic}) "
                          f"is not taken as a reply; {NOTHING_ADDED}")
        if not reply.text and not reply.files:
            raise Refusal("empty", f"the reply has no new text and no file; {NOTHING_ADDED}",
                          status="5.6.0")
        assert ctx.target.principal is not None
        ctx.details.update(message_id=reply.message_id, from_header=reply.from_header,
                           files=[f.filename for f in reply.files])
        try:
            # opened for the employee the token names; their rights are read again inside it,
            # as of now, and the note and files are added by what that says
            async with tickets_service.transaction(self.pool, ctx.target.principal) as conn:
                p = may_reply(await load_principal(conn, "employee", ctx.target.employee_id))
                note = await self._add(conn, p, ctx.target.ticket_id, reply)
                await self._audit(conn, ctx, "inbound.accepted", {"reason": "stored", "note_id": note})
        except AlreadyStored:
            return await self._duplicate(ctx, reply)
        self.metrics.inbound_replies.labels("accepted", "stored").inc()
        log.info("reply by mail from %s stored as note %d on ticket %d", ctx.actor, note,
                 ctx.target.ticket_id)
        return f"250 2.0.0 stored as note {note}"

    async def _duplicate(self, ctx: Context, reply: Reply) -> str:
        """A reply already stored (the MTA lost our 250 and delivers again): nothing new."""
        assert ctx.target is not None and reply.message_id is not None
        async with self.pool.acquire() as conn:
            seen = await tickets_q.note_from_mail(conn, ctx.target.ticket_id, reply.message_id)
            await self._audit(conn, ctx, "inbound.duplicate", {"note_id": seen})
        self.metrics.inbound_replies.labels("accepted", "duplicate").inc()
        return f"250 2.0.0 already stored as note {seen}"

    async def _add(self, conn: asyncpg.Connection, p: Principal, ticket_id: int, reply: Reply) -> int:
        text = reply.text or "Files sent by mail: " + ", ".join(
            f.filename or "file" for f in reply.files)
        limit = self.settings.current.http.upload_max_mb * 1024 * 1024
        try:
            note = await tickets_service.add_note(conn, p, ticket_id, text, message_id=reply.message_id)
        except Refused as exc:
            raise _refusal_of(exc, "note") from None
        for f in reply.files:
            try:
                await tickets_service.add_attachment(conn, p, ticket_id, filename=f.filename,
                                                     content_type=f.content_type, data=f.data,
                                                     public=False, max_bytes=limit)
            except Refused as exc:
                raise _refusal_of(exc, "file") from None
        return note["id"]

    async def refused(self, ctx: Context, refusal: Refusal) -> str:
        """Record a refusal (nothing else was written) and give its SMTP answer."""
        self.metrics.inbound_replies.labels("refused", refusal.reason).inc()
        log.info("reply by mail refused (%s) from %s at %s: %s", refusal.reason, ctx.actor,
                 ctx.peer, refusal.text)
        try:
            async with self.pool.acquire() as conn:
                await self._audit(conn, ctx, "inbound.refused",
                                  {"reason": refusal.reason, "answer": refusal.line()})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot record a refused reply in the audit table: %r", exc)
        return refusal.line()

    async def _audit(self, conn: asyncpg.Connection, ctx: Context, action: str,
                     after: dict[str, Any]) -> None:
        target = f"ticket:{ctx.named.ticket_id}" if ctx.named else "inbound"
        details = {k: v for k, v in ctx.details.items() if v not in (None, "", [])}
        await audit.record(conn, actor=ctx.actor, action=action, target=target, ip=ctx.peer,
                           after={**after, "mail_from": header_text(ctx.mail_from), **details})


def _refusal_of(exc: Refused, what: str) -> Refusal:
    if exc.status == 404:
        return Refusal("not_in_scope", f"the ticket is not (or no longer) in your scope; {NOTHING_ADDED}")
    if exc.status == 403:
        return Refusal("no_add_notes" if what == "note" else "no_upload", f"{exc.message}; {NOTHING_ADDED}")
    if exc.status == 413:
        return Refusal("too_large", f"{exc.message}; {NOTHING_ADDED}", code=552, status="5.3.4")
    return Refusal(f"invalid_{what}", f"{exc.message}; {NOTHING_ADDED}", status="5.6.0")
