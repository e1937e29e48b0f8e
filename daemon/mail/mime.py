"""A mail as bytes. The headers are written here, not by the standard library's email package:
its header folder decodes RFC 2047 encoded words found in data and re-emits what they hide
(CR/LF included, CVE-2024-6923, fixed only in some patch releases), so no text taken from data
ever goes through it. The bodies are the email package's own encoders, as set_content uses
them."""

from __future__ import annotations

import base64
import binascii
import email.policy
import email.quoprimime
import email.utils
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from daemon.access.scope import Principal
from daemon.mail.identity import MailIdentity, thread_id
from daemon.mail.render import render_mail
from daemon.mail.values import header_text

# CRLF line ends as SMTP wants them; 7bit so that non-ASCII text is encoded (quoted-printable
# or base64) and any server takes it, 8BITMIME or not. Used for the bodies only.
MESSAGE_POLICY = email.policy.SMTP.clone(cte_type="7bit")

MAX_LINE = 78  # RFC 5322's recommended limit, CRLF not counted
MAX_ENCODED_WORD = 75  # RFC 2047 section 2
_EW_OVERHEAD = len("=?utf-8?b??=")

_PRINTABLE = re.compile(r"[ -~]*\Z")  # printable ASCII and the space: written as it is
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
# an addr-spec written between angle brackets: printable ASCII, nothing that could end it
_ADDR_SPEC = re.compile(r"[!-~]+@[A-Za-z0-9.\[\]:-]+\Z")
_MSG_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>\Z")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def _clean(value: object) -> str:
    """Controls and line breaks become spaces, runs of white space one; lone surrogates (which
    no encoder takes) become U+FFFD."""
    text = _UNSAFE.sub(" ", str(value)).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return " ".join(text.split())


def _encoded_words(text: str, first_room: int) -> list[str]:
    """`text` as `=?utf-8?b?…?=` words of whole characters; the first fits in `first_room`
    columns, the others on a continuation line (a space, then the word)."""
    words: list[str] = []
    room = max(first_room, _EW_OVERHEAD + 4)
    chunk = b""
    for ch in text:
        data = ch.encode("utf-8")
        if chunk and _EW_OVERHEAD + 4 * -(-(len(chunk) + len(data)) // 3) > min(room, MAX_ENCODED_WORD):
            words.append(_encoded_word(chunk))
            chunk, room = b"", MAX_LINE - 1
        chunk += data
    words.append(_encoded_word(chunk))
    return words


def _encoded_word(data: bytes) -> str:
    return "=?utf-8?b?" + base64.b64encode(data).decode("ascii") + "?="


def _fold(name: str, tokens: Sequence[str], *, strict: bool = True) -> bytes | None:
    """`name: tokens…` folded with CRLF SP between tokens so each line fits MAX_LINE, or None
    when a token cannot fit on a line of its own (unless not `strict`: then it gets a line of
    its own all the same, within RFC 5322's hard limit of 998)."""
    lines: list[str] = []
    line = f"{name}:"
    for n, token in enumerate(tokens):
        if len(line) + 1 + len(token) <= MAX_LINE or (n == 0 and not strict):
            line += " " + token
        elif strict and (n == 0 or 1 + len(token) > MAX_LINE):
            return None
        else:
            lines.append(line)
            line = " " + token
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _plain_words(text: str) -> list[str] | None:
    """The words of a value that may be written as it is: printable ASCII with no "=?", which a
    mail client would otherwise decode as an encoded word."""
    if text and _PRINTABLE.match(text) and "=?" not in text:
        return text.split(" ")
    return None


def text_header(name: str, value: object) -> bytes:
    """An unstructured header (Subject and the like) from any text: one logical line, every
    physical line within MAX_LINE, only printable ASCII, whatever the text holds."""
    text = _clean(value)
    words = _plain_words(text)
    if words is not None and (folded := _fold(name, words)) is not None:
        return folded
    if not text:
        return f"{name}:\r\n".encode("ascii")
    folded = _fold(name, _encoded_words(text, MAX_LINE - len(name) - 2))
    assert folded is not None  # encoded words always fit
    return folded


def _phrase(display_name: str, first_room: int) -> list[str]:
    """A display name as tokens: atoms as they are, other printable ASCII quoted, anything
    else encoded words."""
    if _ATOMS.match(display_name) and "=?" not in display_name:
        return display_name.split(" ")
    if _PRINTABLE.match(display_name) and "=?" not in display_name:
        quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}"'.split(" ")
    return _encoded_words(display_name, first_room)


def address_header(name: str, addr_spec: str, display_name: object = "") -> bytes:
    """An address header (To, From, Reply-To) of one mailbox. The display name may hold
    anything; the address must be printable ASCII (ValueError otherwise: such a mail could not
    be delivered as 7-bit anyway)."""
    if not _ADDR_SPEC.match(addr_spec) or "=?" in addr_spec or "<" in addr_spec or ">" in addr_spec:
        raise ValueError(f"not a deliverable address: {addr_spec!r}")
    phrase = _clean(display_name)
    if not phrase:
        return _fold(name, [addr_spec], strict=False)  # type: ignore[return-value]
    room = MAX_LINE - len(name) - 2
    folded = _fold(name, [*_phrase(phrase, room), f"<{addr_spec}>"])
    if folded is None:  # a quoted word too long for a line, or an address that is
        # an address cannot be folded: only it may pass MAX_LINE
        folded = _fold(name, [*_encoded_words(phrase, room), f"<{addr_spec}>"], strict=False)
    return folded  # type: ignore[return-value]


def msg_id_header(name: str, value: object) -> bytes:
    """Message-ID, In-Reply-To, References: a msg-id is written as it is (it cannot be folded);
    anything else as safe text."""
    text = str(value)
    if _MSG_ID.match(text) and len(text) < 998 - len(name) - 2:
        return f"{name}: {text}\r\n".encode("ascii")
    return text_header(name, value)


def date_header(name: str, value: datetime) -> bytes:
    return f"{name}: {email.utils.format_datetime(value)}\r\n".encode("ascii")


def msg_ids_header(name: str, ids: Sequence[str]) -> bytes:
    """References and the like: msg-ids (each checked, as msg_id_header does), folded between
    them."""
    if all(_MSG_ID.match(i) for i in ids):
        return _fold(name, ids, strict=False)  # type: ignore[return-value]
    return text_header(name, " ".join(ids))


def mail_headers(row: Mapping[str, Any], *, identity: MailIdentity, recipient: Principal,
                 address: str, subject: str, child: Mapping[str, Any] | None = None,
                 reply_to: str | None = None) -> bytes:
    """The top headers of a mail, in order, before the MIME ones. `reply_to`: the signed
    reply address of this recipient and ticket (daemon/mail/reply_token.py)."""
    from_name, from_addr = email.utils.parseaddr(identity.from_header)
    out = [
        text_header("Subject", subject),
        address_header("From", from_addr or identity.from_addr, from_name),
        address_header("To", address, header_text(recipient.display_name)),
        date_header("Date", row["created_at"]),
        msg_id_header("Message-ID", row["message_id"]),
    ]
    if reply_to is not None:
        out.append(address_header("Reply-To", reply_to))
    if row["ticket_id"] is not None:
        root = thread_id(int(row["ticket_id"]), identity.host)
        # a note that came by mail answers that mail: the thread goes on from it
        reply = (child or {}).get("message_id") if row["event"] == "note" else None
        if reply and _MSG_ID.match(reply):
            out += [msg_id_header("In-Reply-To", reply), msg_ids_header("References", [root, reply])]
        else:
            out += [msg_id_header("In-Reply-To", root), msg_id_header("References", root)]
    # RFC 3834; Precedence and X-Auto-Response-Suppress keep older autoresponders (vacation
    # scripts, Exchange out-of-office) from answering, which Auto-Submitted alone does not.
    out.append(b"Auto-Submitted: auto-generated\r\nPrecedence: bulk\r\n"
               b"X-Auto-Response-Suppress: All\r\n")
    return b"".join(out)


def _new_boundary() -> str:
    return f"=_portald_{uuid.uuid4().hex}"


def build_body(text: str, html: str, boundary: str) -> EmailMessage:
    """The MIME part of a mail (MIME-Version, Content-Type and the two alternatives) as the
    standard library's email package makes it: the reference message_bytes's body is held to.
    It carries no header taken from data."""
    msg = EmailMessage(policy=MESSAGE_POLICY)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    msg.set_boundary(boundary)
    return msg


# -- the body as bytes, without building an EmailMessage ---------------------------------------
# Building an EmailMessage and flattening it costs ~1 ms of CPU per mail, most of the daemon's
# cost of a mail. _body_bytes writes byte for byte what build_body(...).as_bytes() writes, with
# the standard library's own encoders: the transfer encoding set_content would choose.

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


def _body_bytes(text: str, html: str, boundary: str) -> bytes:
    mark = boundary.encode("ascii")
    out = [b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="%s"\r\n\r\n'
           % mark]
    for n, (subtype, content) in enumerate((("plain", text), ("html", html))):
        cte, body = _encode_body(content)
        out.append(b'--%s\r\nContent-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: %s\r\n%s\r\n'
                   % (mark, subtype.encode(), cte.encode(), b"MIME-Version: 1.0\r\n" if n else b""))
        out.append(body)
        out.append(b"\r\n")
    out.append(b"--%s--\r\n" % mark)
    return b"".join(out)


def message_bytes(row: Mapping[str, Any], *, identity: MailIdentity, recipient: Principal,
                  address: str, ticket: Mapping[str, Any] | None,
                  child: Mapping[str, Any] | None = None,
                  digest: Sequence[Mapping[str, Any]] = (), reply_to: str | None = None) -> bytes:
    """One mail, ready for SMTP: the headers written here, the body as the email package
    writes it."""
    subject, text, html = render_mail(row, identity=identity, recipient=recipient, ticket=ticket,
                                      child=child, digest=digest)
    headers = mail_headers(row, identity=identity, recipient=recipient, address=address,
                           subject=subject, child=child, reply_to=reply_to)
    return headers + _body_bytes(text, html, _new_boundary())
