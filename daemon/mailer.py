"""The mails themselves: what each recipient may see (through daemon/scope.py, the one access
rule), rendered as plain text and HTML from templates with thread headers; and sending a batch
over one SMTP connection, with each server answer classified as sent, retry or failed."""

from __future__ import annotations

import asyncio
import binascii
import email.policy
import email.quoprimime
import email.utils
import json
import logging
import re
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import parseaddr
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiosmtplib
import asyncpg
import jinja2

from daemon import scope
from daemon.config import Config, SmtpConfig
from daemon.principals import EMPLOYEE_SQL, employee_principal
from daemon.scope import Params, Principal

log = logging.getLogger("portald.mailer")

TEMPLATES_DIR = Path(__file__).parent / "templates" / "mail"
SUMMARY_MAX_CHARS = 80  # the description's first line in a subject
HEADER_MAX_CHARS = 200  # any other header value taken from data
DIGEST_MAX_TICKETS = 100
ERROR_MAX_CHARS = 500  # a server answer kept in outbox.last_error
RENDER_YIELD_EVERY = 10  # mails rendered between two turns of the event loop (~1 ms each)
# principals per UNION ALL statement when loading what recipients may see
PRINCIPALS_PER_QUERY = 50


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, except that it builds each header class once: the stock
    one creates a new class for every header of every message, which was a third of the cost
    of building a mail."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


# CRLF line ends as SMTP wants them; 7bit so that non-ASCII text is encoded (quoted-printable
# or base64) and any server takes it, 8BITMIME or not.
MESSAGE_POLICY = email.policy.SMTP.clone(cte_type="7bit", header_factory=_HeaderClasses())

EventName = Literal["assigned", "created", "note", "status", "closed", "email", "charge",
                    "reminder", "digest", "test"]
CHILD_TABLE_OF_EVENT = {"note": "history_notes", "charge": "charges", "email": "ticket_emails"}

# -- identity: addresses and ids -----------------------------------------------------------

_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


@dataclass(frozen=True, kw_only=True)
class MailIdentity:
    """Who the daemon is in its mails, from [http] public_url and [smtp] from."""

    public_url: str
    from_header: str  # as configured, e.g. "portald <portald@example.com>"
    from_addr: str  # the bare address: envelope sender, and never a recipient
    host: str  # right-hand side of Message-IDs and thread ids

    @classmethod
    def from_config(cls, cfg: Config) -> MailIdentity:
        host = urlsplit(cfg.http.public_url).hostname or "localhost"
        if not _DOT_ATOM.match(host):  # e.g. an IPv6 literal: not valid in a msg-id
            host = "localhost"
        return cls(public_url=cfg.http.public_url.rstrip("/"), from_header=cfg.smtp.from_,
                   from_addr=parseaddr(cfg.smtp.from_)[1], host=host)

    def is_own_address(self, address: str) -> bool:
        return address.strip().lower() == self.from_addr.lower()

    def ticket_link(self, ticket_id: int) -> str:
        # the portal's contract: /tickets/{id}, behind its login if needed
        return f"{self.public_url}/tickets/{ticket_id}"


def new_message_id(host: str) -> str:
    """Fixed when the outbox row is written, so a retry is recognisably the same mail."""
    return f"<portald.{uuid.uuid4()}@{host}>"


def thread_id(ticket_id: int, host: str) -> str:
    """The root every mail of one ticket refers to, so mail clients thread them together."""
    return f"<ticket-{ticket_id}@{host}>"


# -- header safety ---------------------------------------------------------------------------

# CR and LF would end a header; other controls and Unicode line breaks have no place either.
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def header_text(value: object, *, limit: int = HEADER_MAX_CHARS) -> str:
    """A single-line header value from data: line breaks and controls become spaces."""
    text = " ".join(_UNSAFE_IN_HEADER.sub(" ", str(value)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def summary(description: str) -> str:
    """The first non-blank line of a ticket's description, short enough for a subject."""
    for line in description.splitlines():
        if line.strip():
            return header_text(line, limit=SUMMARY_MAX_CHARS)
    return ""


def payload_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's jsonb payload as a dict (asyncpg hands jsonb over as text unless told)."""
    value = row["payload"]
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


# -- what a recipient may see ------------------------------------------------------------------

# Per table: the columns a mail shows and the FROM clause; `t` is always the ticket so that
# scope.tickets() applies, `c` the child row for scope.children().
_CONTENT: dict[str, tuple[str, str]] = {
    "tickets": (
        """t.id, t.number, t.description, t.status, t.priority, t.created_at, t.updated_at,
           a.name AS account_name, ae.full_name AS assignee_name""",
        """tickets t JOIN accounts a ON a.id = t.account_id
           LEFT JOIN employees ae ON ae.id = t.assigned_to""",
    ),
    "history_notes": (
        """c.id, c.ticket_id, c.body, c.created_at,
           coalesce(ce.full_name, nullif(cw.full_name, ''), cw.username) AS author_name""",
        """history_notes c JOIN tickets t ON t.id = c.ticket_id
           LEFT JOIN employees ce ON ce.id = c.author_employee_id
           LEFT JOIN customer_web_users cw ON cw.id = c.author_webuser_id""",
    ),
    "charges": (
        """c.id, c.ticket_id, c.kind, c.description, c.quantity, c.unit_price, c.amount,
           c.created_at, ce.full_name AS author_name""",
        """charges c JOIN tickets t ON t.id = c.ticket_id
           LEFT JOIN employees ce ON ce.id = c.employee_id""",
    ),
    "ticket_emails": (
        """c.id, c.ticket_id, c.from_addr, c.to_addr, c.subject, c.body, c.is_public,
           c.created_at, ce.full_name AS author_name""",
        """ticket_emails c JOIN tickets t ON t.id = c.ticket_id
           LEFT JOIN employees ce ON ce.id = c.filed_by""",
    ),
}
_KEY = {"tickets": "t.id"} | {table: "c.id" for table in CHILD_TABLE_OF_EVENT.values()}


# employee principals (as load_employees builds them) with their addresses, in one round trip
RECIPIENTS_SQL = f"""
    SELECT p.*, x.email
      FROM ({EMPLOYEE_SQL} WHERE e.id = ANY($1::bigint[])) p JOIN employees x ON x.id = p.id"""


async def load_employees(conn: asyncpg.Connection, ids: Iterable[int]) -> dict[int, Principal]:
    """Employee principals as of now, straight from the database (the same construction as
    principals.load_principal, for many at once)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    rows = await conn.fetch(EMPLOYEE_SQL + " WHERE e.id = ANY($1::bigint[])", ids)
    return {r["id"]: employee_principal(r, r["account_ids"]) for r in rows}


async def load_visible(conn: asyncpg.Connection, table: str,
                       wants: Mapping[int, tuple[Principal, Sequence[int]]], *,
                       ids_only: bool = False) -> dict[tuple[int, int], asyncpg.Record]:
    """Rows of `table` (tickets or a ticket child) that each principal may see, keyed by
    (principal id, row id). `wants` maps a principal id to it and the row ids asked for.
    One statement per PRINCIPALS_PER_QUERY principals: each part carries that principal's
    own scope conditions, so nobody's rule is bent to batch the work."""
    columns, source = _CONTENT[table]
    if ids_only:
        columns = f"{_KEY[table]} AS id"
    found: dict[tuple[int, int], asyncpg.Record] = {}
    items = [(p, ids) for p, ids in wants.values() if ids]
    for start in range(0, len(items), PRINCIPALS_PER_QUERY):
        params = Params()
        parts = []
        for p, ids in items[start:start + PRINCIPALS_PER_QUERY]:
            cond = [f"{_KEY[table]} = ANY({params.add(sorted(set(ids)))}::bigint[])",
                    scope.tickets(p, params)]
            if table != "tickets":
                cond.append(scope.children(p, params, table))
            parts.append(f"SELECT {params.add(p.id)}::bigint AS for_employee, {columns} "
                         f"FROM {source} WHERE " + " AND ".join(f"({c})" for c in cond))
        for r in await conn.fetch(" UNION ALL ".join(parts), *params.values):
            found[(r["for_employee"], r["id"])] = r
    return found


async def digest_tickets(conn: asyncpg.Connection, p: Principal, *,
                         limit: int = DIGEST_MAX_TICKETS) -> list[asyncpg.Record]:
    """The open tickets a digest lists: in p's scope, and assigned to p or with p among the
    recipients, least recently touched first."""
    params = Params()
    me = params.add(p.id)
    columns, source = _CONTENT["tickets"]
    return await conn.fetch(
        f"""SELECT {columns} FROM {source}
             WHERE t.status <> 'closed' AND {scope.tickets(p, params)}
               AND (t.assigned_to = {me} OR EXISTS (SELECT 1 FROM ticket_recipients r
                                                      WHERE r.ticket_id = t.id AND r.employee_id = {me}))
             ORDER BY t.updated_at, t.id LIMIT {params.add(limit)}""",
        *params.values,
    )


# -- rendering -------------------------------------------------------------------------------

@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code: no stat() per mail
    )


def _label(value: object) -> str:
    return str(value or "").replace("_", " ")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M %Z").strip() if value else ""


def _money(value: Any) -> str:
    return f"{value:,.2f}" if value is not None else ""


_SUBJECTS: dict[str, str] = {
    "assigned": "Assigned to you",
    "created": "New ticket",
    "note": "New history note",
    "closed": "Closed",
    "email": "Email filed",
    "charge": "Charge logged",
}


def subject_for(row: Mapping[str, Any], ticket: Mapping[str, Any] | None, *,
                digest_count: int = 0) -> str:
    event = row["event"]
    payload = payload_of(row)
    if event == "digest":
        return header_text(f"Daily digest: {digest_count} open ticket{'s' if digest_count != 1 else ''}")
    if ticket is None:
        return "Test mail from the portal" if event == "test" else header_text(f"portald: {event}")
    if event == "status":
        what = f"Status changed to {_label(payload.get('to'))}"
    elif event == "reminder":
        what = f"Reminder: untouched for {payload.get('hours', '?')} h"
    else:
        what = _SUBJECTS.get(event, _label(event).capitalize())
    text = f"[{ticket['number']}] {what}"
    first_line = summary(ticket["description"])
    return header_text(f"{text}: {first_line}" if first_line else text)


@cache
def _constant_header(name: str, value: str) -> Any:
    # header objects are immutable: parse the ones every mail carries once
    return MESSAGE_POLICY.header_factory(name, value)


@dataclass(frozen=True)
class Prepared:
    """A mail ready to hand to the SMTP server."""

    outbox_id: int
    recipient: str  # envelope recipient
    data: bytes


@dataclass(frozen=True)
class Dropped:
    """An outbox row that must not be sent; `reason` is recorded on the row."""

    outbox_id: int
    reason: str


def _render(row: Mapping[str, Any], *, identity: MailIdentity, recipient: Principal,
            ticket: Mapping[str, Any] | None, child: Mapping[str, Any] | None,
            digest: Sequence[Mapping[str, Any]]) -> tuple[str, str, str]:
    """Subject, plain text and HTML of one mail, from what this recipient may see."""
    event = row["event"]
    context = {
        "event": event,
        "payload": payload_of(row),
        "recipient_name": recipient.display_name,
        "ticket": ticket,
        "child": child,
        "digest": digest,
        "link": identity.ticket_link(ticket["id"]) if ticket else identity.public_url + "/tickets",
        "portal_url": identity.public_url,
        "label": _label,
        "when": _when,
        "money": _money,
    }
    env = _environment()
    name = "digest" if event == "digest" else "event"
    text = env.get_template(f"{name}.txt").render(context)
    html = env.get_template(f"{name}.html").render(context)
    return subject_for(row, ticket, digest_count=len(digest)), text, html


def _to_header(recipient: Principal, address: str) -> Any:
    try:
        return Address(display_name=header_text(recipient.display_name), addr_spec=address)
    except (ValueError, IndexError, TypeError):
        return header_text(address)


def build_message(row: Mapping[str, Any], *, identity: MailIdentity, recipient: Principal,
                  address: str, ticket: Mapping[str, Any] | None,
                  child: Mapping[str, Any] | None = None,
                  digest: Sequence[Mapping[str, Any]] = ()) -> EmailMessage:
    """One mail as an EmailMessage. Every header value from data goes through header_text.
    (The sender uses message_bytes, which writes the same bytes faster.)"""
    subject, text, html = _render(row, identity=identity, recipient=recipient, ticket=ticket,
                                  child=child, digest=digest)
    msg = EmailMessage(policy=MESSAGE_POLICY)
    for name, value in _headers(row, identity=identity, subject=subject,
                                to=_to_header(recipient, address)):
        msg[name] = value
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    # A random boundary of our own: the generator would otherwise compile a regular
    # expression per message to prove its own boundary absent from the text.
    msg.set_boundary(_new_boundary())
    return msg


def _headers(row: Mapping[str, Any], *, identity: MailIdentity, subject: str,
             to: Any) -> list[tuple[str, Any]]:
    """The top headers of a mail, in order, before the MIME ones."""
    headers: list[tuple[str, Any]] = [
        ("Subject", subject),
        ("From", _constant_header("From", identity.from_header)),
        ("To", to),
        ("Date", row["created_at"]),  # a datetime: the header takes it without parsing text
        ("Message-ID", header_text(row["message_id"])),
    ]
    if row["ticket_id"] is not None:
        root = thread_id(row["ticket_id"], identity.host)
        headers += [("In-Reply-To", root), ("References", root)]
    # RFC 3834; Precedence and X-Auto-Response-Suppress keep older autoresponders (vacation
    # scripts, Exchange out-of-office) from answering, which Auto-Submitted alone does not.
    headers += [("Auto-Submitted", _constant_header("Auto-Submitted", "auto-generated")),
                ("Precedence", _constant_header("Precedence", "bulk")),
                ("X-Auto-Response-Suppress", _constant_header("X-Auto-Response-Suppress", "All"))]
    return headers


def _new_boundary() -> str:
    return f"=_portald_{uuid.uuid4().hex}"


# -- the same mail as bytes, without building an EmailMessage ---------------------------------
# Building an EmailMessage and flattening it parses every header into a structured object and
# folds it again: ~1.3 ms of CPU per mail, most of the daemon's cost of a mail. message_bytes
# writes byte for byte what build_message(...).as_bytes(policy=MESSAGE_POLICY) writes (for the
# same boundary), in ~0.25 ms, with the standard library's own encoders: header values that
# need encoding or folding still go through MESSAGE_POLICY; the plain ones (printable ASCII
# that fits on its line) are written as they are, which is exactly what the policy would
# write for them; bodies get the transfer encoding set_content would choose.

_PLAIN_HEADER_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*\Z")  # printable ASCII, single spaces
_PLAIN_DISPLAY_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_PLAIN_ADDR_SPEC = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\Z")
_PLAIN_MSG_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>\Z")
_DOT_ATOM_ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                            r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def _fold(name: str, value: Any) -> bytes:
    """A header exactly as the policy writes it (the slow, general way)."""
    if not hasattr(value, "name"):
        value = MESSAGE_POLICY.header_factory(name, value)
    return MESSAGE_POLICY.fold_binary(name, value)


@cache
def _constant_bytes(name: str, value: str) -> bytes:
    return _fold(name, value)


def _plain(name: str, value: str) -> bytes | None:
    """`name: value` CRLF when the policy would write it unchanged, else None."""
    if (len(name) + 2 + len(value) <= MESSAGE_POLICY.max_line_length
            and "=?" not in value and _PLAIN_HEADER_VALUE.match(value)):
        return f"{name}: {value}\r\n".encode("ascii")
    return None


def _header_bytes(name: str, value: Any) -> bytes:
    if hasattr(value, "name"):  # a header object made once (the constant ones; a str too)
        return _constant_bytes(name, str(value))
    if isinstance(value, str):
        kind = name.lower()
        simple = kind == "subject" or (kind in ("message-id", "in-reply-to", "references")
                                       and _PLAIN_MSG_ID.match(value))
        if simple and (plain := _plain(name, value)) is not None:
            return plain
    elif isinstance(value, datetime) and value.tzinfo is not None:
        return f"{name}: {email.utils.format_datetime(value)}\r\n".encode("ascii")
    elif (isinstance(value, Address) and _PLAIN_ADDR_SPEC.match(value.addr_spec)
          and (not value.display_name or _PLAIN_DISPLAY_NAME.match(value.display_name))):
        text = f"{value.display_name} <{value.addr_spec}>" if value.display_name else value.addr_spec
        if "=?" not in text and (plain := _plain(name, text)) is not None:
            return plain
    return _fold(name, value)


def _encode_body(text: str) -> tuple[str, bytes]:
    """Content-Transfer-Encoding and encoded body of a text part: the choice and the encoders
    of the standard library's EmailMessage.set_content (email.contentmanager) under
    MESSAGE_POLICY, with CRLF line ends as the generator writes them."""
    max_len = MESSAGE_POLICY.max_line_length
    lines = text.encode("utf-8").splitlines()
    cte = None
    if max((len(x) for x in lines), default=0) <= max_len:
        body = b"\n".join(lines) + b"\n"
        if body.isascii():
            cte, data = "7bit", body.decode("ascii")
    if cte is None:
        sniff = b"\r\n".join(lines[:10]) + b"\r\n"
        sniff_qp = email.quoprimime.body_encode(sniff.decode("latin-1"), max_len)
        if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
            cte = "base64"
            whole = b"\r\n".join(lines) + b"\r\n"
            step = max_len // 4 * 3
            data = "".join(binascii.b2a_base64(whole[i:i + step]).decode("ascii")
                           for i in range(0, len(whole), step))
        elif len(lines) <= 10:
            cte, data = "quoted-printable", sniff_qp
        else:
            cte = "quoted-printable"
            data = email.quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), max_len)
    return cte, _NEWLINES.sub("\r\n", data).encode("ascii")


def message_bytes(row: Mapping[str, Any], *, identity: MailIdentity, recipient: Principal,
                  address: str, ticket: Mapping[str, Any] | None,
                  child: Mapping[str, Any] | None = None,
                  digest: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """The mail build_message makes, as the bytes `as_bytes(policy=MESSAGE_POLICY)` gives, at
    a fraction of the cost."""
    subject, text, html = _render(row, identity=identity, recipient=recipient, ticket=ticket,
                                  child=child, digest=digest)
    display_name = header_text(recipient.display_name)
    to_line = None
    if _PLAIN_DISPLAY_NAME.match(display_name) and _DOT_ATOM_ADDR.match(address):
        # exactly what Address() would make of them, without parsing them
        to_line = _plain("To", f"{display_name} <{address}>")
    out = [to_line if name == "To" and to_line is not None else _header_bytes(name, value)
           for name, value in _headers(row, identity=identity, subject=subject,
                                       to=None if to_line else _to_header(recipient, address))]
    boundary = _new_boundary().encode("ascii")
    out.append(b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="%s"\r\n\r\n'
               % boundary)
    for n, (subtype, content) in enumerate((("plain", text), ("html", html))):
        cte, body = _encode_body(content)
        out.append(b'--%s\r\nContent-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: %s\r\n%s\r\n'
                   % (boundary, subtype.encode(), cte.encode(), b"MIME-Version: 1.0\r\n" if n else b""))
        out.append(body)
        out.append(b"\r\n")
    out.append(b"--%s--\r\n" % boundary)
    return b"".join(out)


async def prepare_batch(conn: asyncpg.Connection, rows: Sequence[Mapping[str, Any]], *,
                        identity: MailIdentity) -> list[Prepared | Dropped]:
    """Render claimed outbox rows, each with what its recipient may see *now*: a recipient who
    lost access (or was deactivated) since the row was written gets nothing."""
    employee_ids = sorted({r["employee_id"] for r in rows if r["employee_id"] is not None})
    principals: dict[int, Principal] = {}
    addresses: dict[int, str] = {}
    for e in await conn.fetch(RECIPIENTS_SQL, employee_ids):  # principal and address at once
        principals[e["id"]] = employee_principal(e, e["account_ids"])
        addresses[e["id"]] = e["email"]

    ticket_wants: dict[int, tuple[Principal, list[int]]] = {}
    child_wants: dict[str, dict[int, tuple[Principal, list[int]]]] = {}
    for r in rows:
        p = principals.get(r["employee_id"])
        if p is None or r["ticket_id"] is None:
            continue
        ticket_wants.setdefault(p.id, (p, []))[1].append(r["ticket_id"])
        table = CHILD_TABLE_OF_EVENT.get(r["event"])
        if table and r["subject_id"] is not None:
            child_wants.setdefault(table, {}).setdefault(p.id, (p, []))[1].append(r["subject_id"])
    tickets = await load_visible(conn, "tickets", ticket_wants)
    children = {table: await load_visible(conn, table, wants) for table, wants in child_wants.items()}

    out: list[Prepared | Dropped] = []
    for n, r in enumerate(rows, 1):
        if n % RENDER_YIELD_EVERY == 0:
            await asyncio.sleep(0)  # rendering is CPU work: let the portal's requests in
        oid = r["id"]
        p = principals.get(r["employee_id"])
        address = addresses.get(r["employee_id"], "")
        if p is None:
            out.append(Dropped(oid, "dropped: the recipient no longer exists"))
            continue
        if not p.active:
            out.append(Dropped(oid, "dropped: the recipient is inactive"))
            continue
        if identity.is_own_address(address):
            out.append(Dropped(oid, "dropped: the recipient address is the daemon's own From "
                                    "address (mail loop guard)"))
            continue
        ticket = child = None
        digest: list[asyncpg.Record] = []
        if r["event"] == "digest":
            digest = await digest_tickets(conn, p)
            if not digest:
                out.append(Dropped(oid, "dropped: nothing to report in the digest"))
                continue
        elif r["ticket_id"] is not None:
            ticket = tickets.get((p.id, r["ticket_id"]))
            if ticket is None:
                out.append(Dropped(oid, "dropped: the recipient may not see this ticket"))
                continue
            table = CHILD_TABLE_OF_EVENT.get(r["event"])
            if table:
                child = children.get(table, {}).get((p.id, r["subject_id"]))
                if child is None:
                    out.append(Dropped(oid, "dropped: the recipient may not see what the mail is about"))
                    continue
        try:
            data = message_bytes(r, identity=identity, recipient=p, address=address,
                                 ticket=ticket, child=child, digest=digest)
        except Exception as exc:  # a bug or odd data must not take the batch down with it
            log.exception("outbox row %d: cannot build the message", oid)
            out.append(Dropped(oid, header_text(f"cannot build the message: {exc!r}",
                                                limit=ERROR_MAX_CHARS)))
            continue
        out.append(Prepared(oid, address, data))
    return out


# -- sending ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What became of one mail. "dropped": never offered to the server (see Dropped)."""

    kind: Literal["sent", "retry", "failed", "dropped"]
    code: int | None
    text: str

    @classmethod
    def from_reply(cls, code: int, text: str) -> Outcome:
        # 4xx: try again later; 5xx (and nonsense): the server said no for good
        kind: Literal["retry", "failed"] = "retry" if 400 <= code < 500 else "failed"
        return cls(kind, code, header_text(text, limit=ERROR_MAX_CHARS))


@cache
def _local_hostname() -> str:
    # getfqdn can take a DNS round trip: once per process, not once per connection
    return socket.getfqdn()


class SmtpBatch:
    """One SMTP connection for one batch of mails, opened at the first mail. `send` never
    raises for SMTP or network trouble: it answers with an Outcome.

    A sender lane with more batches waiting right away may carry the connection over to the
    next batch (`keep_for`): it is checked with a NOOP first and replaced if that fails, so a
    connection the server dropped meanwhile costs no mail a retry."""

    def __init__(self, cfg: SmtpConfig, *, envelope_from: str) -> None:
        self._cfg = cfg
        self._from = envelope_from
        self._client: aiosmtplib.SMTP | None = None
        # the server could not be reached: the rest of the batch is not tried against it
        self._down: Outcome | None = None
        self._reconnects = 0
        self._check = False  # a kept connection: NOOP before the next mail

    def keep_for(self, cfg: SmtpConfig, envelope_from: str) -> bool:
        """Ready this connection for another batch; False if it cannot serve it (the server
        was down in this batch, no connection is open, or the settings changed)."""
        if self._down is not None or self._client is None or cfg != self._cfg or envelope_from != self._from:
            return False
        self._reconnects = 0
        self._check = True
        return True

    async def _checked(self) -> None:
        self._check = False
        if self._client is None:
            return
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await self._client.noop()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await self._abort()  # a fresh one is opened below

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self._cfg
        client = aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, use_tls=cfg.tls, start_tls=cfg.starttls,
            username=cfg.username or None, password=cfg.password or None,
            timeout=cfg.timeout_s, local_hostname=_local_hostname(),
        )
        async with asyncio.timeout(cfg.timeout_s * 2):  # connect, greeting, EHLO, TLS, AUTH
            await client.connect()
        return client

    async def send(self, mail: Prepared) -> Outcome:
        if self._down is not None:
            return self._down
        if self._check:
            await self._checked()
        if self._client is None:
            try:
                self._client = await self._connect()
            except aiosmtplib.SMTPResponseException as exc:
                # refused at greeting or login: a server (or credentials) problem, not this
                # mail's; retrying later is right even for a 5xx here
                self._down = Outcome("retry", exc.code, header_text(
                    f"connecting: {exc.message}", limit=ERROR_MAX_CHARS))
                log.warning("SMTP server %s:%d refused the session: %d %s", self._cfg.host,
                            self._cfg.port, exc.code, self._down.text)
                return self._down
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                self._down = Outcome("retry", None, header_text(
                    f"connecting: {exc.__class__.__name__}: {exc}", limit=ERROR_MAX_CHARS))
                log.warning("SMTP server %s:%d unreachable: %s", self._cfg.host, self._cfg.port,
                            self._down.text)
                return self._down
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                refused, _ = await self._client.sendmail(self._from, [mail.recipient], mail.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return Outcome.from_reply(first.code, first.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing the session
                await self._abort()
            return Outcome.from_reply(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The connection's state is unknown now: drop it; the next mail gets a fresh one
            # (once per batch, so a server that hangs up on everything is not hammered).
            await self._abort()
            self._reconnects += 1
            outcome = Outcome("retry", None, header_text(
                f"{exc.__class__.__name__}: {exc}", limit=ERROR_MAX_CHARS))
            if self._reconnects > 1:
                self._down = outcome
            return outcome
        except ValueError as exc:  # an address aiosmtplib cannot put on the wire
            return Outcome("failed", None, header_text(f"cannot send: {exc}", limit=ERROR_MAX_CHARS))
        except Exception as exc:
            # Not an SMTP answer we know: retry later (with backoff, until retry_max_hours)
            # rather than let one odd mail stop the sender again and again.
            log.exception("unexpected error sending to %s", mail.recipient)
            await self._abort()
            return Outcome("retry", None, header_text(f"unexpected: {exc!r}", limit=ERROR_MAX_CHARS))
        for address, reply in refused.items():
            # one recipient per mail here, so this is ours; handled all the same
            if address.lower() == mail.recipient.lower():
                return Outcome.from_reply(reply.code, reply.message)
        return Outcome("sent", 250, "")

    async def _abort(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
