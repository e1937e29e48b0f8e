"""A mail as bytes: the standard library's email package under one policy, and a faster
writer of exactly the same bytes. Every header value taken from data goes through
daemon.mail.values.header_text, so data never becomes a header."""

from __future__ import annotations

import binascii
import email.policy
import email.quoprimime
import email.utils
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from functools import cache
from typing import Any

from daemon.access.scope import Principal
from daemon.mail.identity import MailIdentity, thread_id
from daemon.mail.render import render_mail
from daemon.mail.values import header_text


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


@cache
def _constant_header(name: str, value: str) -> Any:
    # header objects are immutable: parse the ones every mail carries once
    return MESSAGE_POLICY.header_factory(name, value)


def _to_header(recipient: Principal, address: str) -> Any:
    try:
        return Address(display_name=header_text(recipient.display_name), addr_spec=address)
    except (ValueError, IndexError, TypeError):
        return header_text(address)


def build_message(row: Mapping[str, Any], *, identity: MailIdentity, recipient: Principal,
                  address: str, ticket: Mapping[str, Any] | None,
                  child: Mapping[str, Any] | None = None,
                  digest: Sequence[Mapping[str, Any]] = (), reply_to: str | None = None) -> EmailMessage:
    """One mail as an EmailMessage. Every header value from data goes through header_text.
    (The sender uses message_bytes, which writes the same bytes faster.)"""
    subject, text, html = render_mail(row, identity=identity, recipient=recipient, ticket=ticket,
                                  child=child, digest=digest)
    msg = EmailMessage(policy=MESSAGE_POLICY)
    for name, value in _headers(row, identity=identity, subject=subject,
                                to=_to_header(recipient, address), child=child, reply_to=reply_to):
        msg[name] = value
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    # A random boundary of our own: the generator would otherwise compile a regular
    # expression per message to prove its own boundary absent from the text.
    msg.set_boundary(_new_boundary())
    return msg


def _headers(row: Mapping[str, Any], *, identity: MailIdentity, subject: str,
             to: Any, child: Mapping[str, Any] | None = None,
             reply_to: str | None = None) -> list[tuple[str, Any]]:
    """The top headers of a mail, in order, before the MIME ones. `reply_to`: the signed
    reply address of this recipient and ticket (daemon/mail/reply_token.py)."""
    headers: list[tuple[str, Any]] = [
        ("Subject", subject),
        ("From", _constant_header("From", identity.from_header)),
        ("To", to),
    ]
    if reply_to is not None:
        headers.append(("Reply-To", reply_to))
    headers += [
        ("Date", row["created_at"]),  # a datetime: the header takes it without parsing text
        ("Message-ID", header_text(row["message_id"])),
    ]
    if row["ticket_id"] is not None:
        root = thread_id(row["ticket_id"], identity.host)
        # a note that came by mail answers that mail: the thread goes on from it
        reply = (child or {}).get("message_id") if row["event"] == "note" else None
        if reply and _PLAIN_MSG_ID.match(reply):
            headers += [("In-Reply-To", reply), ("References", f"{root} {reply}")]
        else:
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
                  digest: Sequence[Mapping[str, Any]] = (), reply_to: str | None = None) -> bytes:
    """The mail build_message makes, as the bytes `as_bytes(policy=MESSAGE_POLICY)` gives, at
    a fraction of the cost."""
    subject, text, html = render_mail(row, identity=identity, recipient=recipient, ticket=ticket,
                                  child=child, digest=digest)
    display_name = header_text(recipient.display_name)
    to_line = None
    if _PLAIN_DISPLAY_NAME.match(display_name) and _DOT_ATOM_ADDR.match(address):
        # exactly what Address() would make of them, without parsing them
        to_line = _plain("To", f"{display_name} <{address}>")
    out = [to_line if name == "To" and to_line is not None else _header_bytes(name, value)
           for name, value in _headers(row, identity=identity, subject=subject,
                                       to=None if to_line else _to_header(recipient, address),
                                       child=child, reply_to=reply_to)]
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
