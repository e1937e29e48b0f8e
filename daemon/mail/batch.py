"""A claimed batch of outbox rows made ready to send: each rendered with what its recipient may
see *now*, or dropped with the reason recorded on its row (a recipient who lost access, or was
deactivated, since the row was written gets nothing)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from daemon.access.principals import load_recipients
from daemon.access.scope import Principal
from daemon.mail.identity import MailIdentity
from daemon.mail.mime import message_bytes
from daemon.mail.reply_token import ReplyKey, sign
from daemon.mail.values import header_text
from daemon.mail.visibility import CHILD_TABLE_OF_EVENT, Visible, visible_for
from daemon.queries import mail as mail_q
from daemon.queries import reply_keys as keys_q

log = logging.getLogger("portald.mailer")

ERROR_MAX_CHARS = 500  # a server answer (or a build error) kept in outbox.last_error
RENDER_YIELD_EVERY = 10  # mails rendered between two turns of the event loop (~1 ms each)
OWN_ADDRESS_REASON = "dropped: the recipient address is the daemon's own From address (mail loop guard)"


@dataclass(frozen=True)
class Prepared:
    """A mail ready to hand to the SMTP server."""

    outbox_id: int
    recipient: str  # envelope recipient
    data: bytes
    ticket_number: str | None = None  # for the delivery log


@dataclass(frozen=True)
class Dropped:
    """An outbox row that must not be sent; `reason` is recorded on the row."""

    outbox_id: int
    reason: str


async def prepare_batch(conn: asyncpg.Connection, rows: Sequence[Mapping[str, Any]], *,
                        identity: MailIdentity) -> list[Prepared | Dropped]:
    """Render claimed outbox rows, each with what its recipient may see now."""
    principals, addresses = await load_recipients(
        conn, [r["employee_id"] for r in rows if r["employee_id"] is not None])
    visible = await visible_for(conn, [(r, principals[r["employee_id"]]) for r in rows
                                       if r["employee_id"] in principals])
    key = await _signing_key(conn, identity)
    out: list[Prepared | Dropped] = []
    for n, r in enumerate(rows, 1):
        if n % RENDER_YIELD_EVERY == 0:
            await asyncio.sleep(0)  # rendering is CPU work: let the portal's requests in
        out.append(await _prepare(conn, r, principals.get(r["employee_id"]),
                                  addresses.get(r["employee_id"], ""), visible, identity, key))
    return out


async def _signing_key(conn: asyncpg.Connection, identity: MailIdentity) -> ReplyKey | None:
    """The key that signs reply addresses now, when replies by mail are on."""
    if identity.reply_address is None:
        return None
    row = await keys_q.current(conn)
    if row is None:
        log.warning("reply by mail is on but no reply key exists; mails go without Reply-To "
                    "until one is made (portald admin inbound rotate-key)")
        return None
    return ReplyKey(row["id"], bytes(row["secret"]))


def _reply_to(identity: MailIdentity, key: ReplyKey | None, p: Principal,
              ticket_id: int | None) -> str | None:
    """This recipient's own reply address for this ticket: replying adds a note as them."""
    if key is None or identity.reply_address is None or ticket_id is None:
        return None
    return identity.reply_address.for_token(sign(key, employee_id=p.id, ticket_id=ticket_id))


async def _prepare(conn: asyncpg.Connection, r: Mapping[str, Any], p: Principal | None,
                   address: str, visible: Visible, identity: MailIdentity,
                   key: ReplyKey | None = None) -> Prepared | Dropped:
    oid = r["id"]
    if p is None:
        return Dropped(oid, "dropped: the recipient no longer exists")
    if not p.active:
        return Dropped(oid, "dropped: the recipient is inactive")
    if identity.is_own_address(address):
        return Dropped(oid, OWN_ADDRESS_REASON)
    ticket = child = None
    digest: list[asyncpg.Record] = []
    if r["event"] == "digest":
        digest = await mail_q.digest_tickets(conn, p)
        if not digest:
            return Dropped(oid, "dropped: nothing to report in the digest")
    elif r["ticket_id"] is not None:
        ticket = visible.ticket(p, r["ticket_id"])
        if ticket is None:
            return Dropped(oid, "dropped: the recipient may not see this ticket")
        if r["event"] in CHILD_TABLE_OF_EVENT:
            child = visible.child(p, r["event"], r["subject_id"])
            if child is None:
                return Dropped(oid, "dropped: the recipient may not see what the mail is about")
    try:
        data = message_bytes(r, identity=identity, recipient=p, address=address,
                             ticket=ticket, child=child, digest=digest,
                             reply_to=_reply_to(identity, key, p, ticket["id"] if ticket else None))
    except Exception as exc:  # a bug or odd data must not take the batch down with it
        log.exception("outbox row %d: cannot build the message", oid)
        return Dropped(oid, header_text(f"cannot build the message: {exc!r}", limit=ERROR_MAX_CHARS))
    return Prepared(oid, address, data, ticket["number"] if ticket is not None else None)
