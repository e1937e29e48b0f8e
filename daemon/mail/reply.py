"""A reply by mail, read: the text its author wrote now, its files, its Message-ID, and whether
it was sent by a machine.

The new text is what is left once the quoted earlier mail is gone: mail-parser-reply cuts at
the "On … wrote:" / "Am … schrieb:" / Outlook "From: … Sent: …" header of the quoted part (in
the languages it knows) and drops the signature ("-- " and the usual closings); lines quoted
with ">" that remain (bottom posting, interleaved answers) are dropped too. The plain-text part
is preferred; a reply with HTML only is turned into text by inscriptis, which reads the markup
with lxml and never runs or fetches anything in it.
"""

from __future__ import annotations

import email
import email.header
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

from inscriptis import get_text
from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage as ParsedReply

_LANGUAGES = list(MAIL_LANGUAGES)
_MSG_ID = re.compile(r"<[!-;=?-~]{1,250}@[!-;=?-~]{1,250}>\Z")  # printable, no < > or spaces
# controls have no place in a note; newlines and tabs stay
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b\u2028\u2029]")
_BLANK_RUNS = re.compile(r"\n{3,}")
FORWARDED_NAME = "forwarded.eml"
# more than a note may hold (20000), less than what would keep the loop busy for long
PARSED_MAX_CHARS = 25_000
HTML_MAX_CHARS = 1_000_000


class MalformedReply(Exception):
    """The message cannot be read as a mail."""


@dataclass(frozen=True)
class ReplyFile:
    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Reply:
    text: str  # the new text; empty when the author wrote nothing above the quote
    files: list[ReplyFile] = field(default_factory=list)
    message_id: str | None = None
    automatic: str | None = None  # the Auto-Submitted value when other than "no"
    from_header: str = ""


def read_reply(raw: bytes) -> Reply:
    """Raises MalformedReply for what is not a mail at all."""
    try:
        # compat32: headers are read only when asked, as plain text; the modern policy parses
        # each header into an object at every access, which was most of the cost of a reply
        msg = email.message_from_bytes(raw)
        leaves = list(_leaves(msg))
        body = _body(leaves)
        text = ""
        if body is not None:
            content = _text_of(body)
            if body.get_content_type() == "text/html":
                content = get_text(content[:HTML_MAX_CHARS])
            text = new_text(content)
        files = [f for part in leaves if part is not body and (f := _file_of(part))]
        return Reply(text=text, files=files, message_id=_message_id(msg),
                     automatic=_automatic(msg), from_header=_decoded(msg.get("From", ""))[:300])
    except MalformedReply:
        raise
    except Exception as exc:  # the email package raises many kinds on odd input
        raise MalformedReply(f"{exc.__class__.__name__}") from None


def _body(leaves: list[Message]) -> Message | None:
    """The text the author wrote: the first plain part that is not an attachment, else the
    first HTML one (as EmailMessage.get_body prefers them)."""
    for kind in ("text/plain", "text/html"):
        for part in leaves:
            if (part.get_content_type() == kind and part.get_content_disposition() != "attachment"
                    and not part.get_filename()):
                return part
    return None


def _decoded(value: object) -> str:
    """A header's text, RFC 2047 encoded words decoded."""
    text = str(value or "")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def new_text(body: str) -> str:
    """What the author wrote now: no quoted mail, no signature, no controls."""
    body = _CONTROLS.sub("", body.replace("\r\n", "\n").replace("\r", "\n"))
    # ">" lines go first (cheap), so a long quote costs the parser nothing; its regular
    # expressions hold the loop while they run, so they see at most PARSED_MAX_CHARS
    kept = "\n".join(line for line in body.split("\n") if not line.lstrip().startswith(">"))
    kept = kept[:PARSED_MAX_CHARS]
    replies = ParsedReply(text=kept, languages=list(_LANGUAGES), keep_hyphen_lists=True).read().replies
    latest = replies[0].body if replies else kept
    return _BLANK_RUNS.sub("\n\n", latest).strip()


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    try:
        return payload.decode(part.get_content_charset() or "us-ascii", errors="replace")
    except LookupError:  # a charset nobody knows
        return payload.decode("utf-8", errors="replace")


def _leaves(part: Message) -> Iterator[Message]:
    """Every part that is not a container; a forwarded message counts as one part (a file)."""
    if part.get_content_type() == "message/rfc822":
        yield part
    elif part.is_multipart():
        for sub in part.get_payload():
            yield from _leaves(sub)
    else:
        yield part


def _file_of(part: Message) -> ReplyFile | None:
    """A part the author attached. The other text alternative, and pictures embedded in the
    HTML (a Content-ID, not marked as attachment: a signature's logo), are not files."""
    disposition = part.get_content_disposition()
    filename = _decoded(part.get_filename()) or None
    kind = part.get_content_type()
    if kind == "message/rfc822":
        inner = part.get_payload(0) if part.is_multipart() else None
        data = inner.as_bytes() if inner is not None else b""
        return ReplyFile(filename or FORWARDED_NAME, kind, data)
    if disposition != "attachment" and (not filename or part.get("Content-ID")):
        return None
    return ReplyFile(filename, kind, part.get_payload(decode=True) or b"")


def _message_id(msg: Message) -> str | None:
    value = str(msg.get("Message-ID", "")).strip()
    return value if _MSG_ID.match(value) else None


def _automatic(msg: Message) -> str | None:
    """RFC 3834: anything but "no" means a machine sent it (out of office, a bounce, a list)."""
    value = msg.get("Auto-Submitted")
    if value is None:
        return None
    word = str(value).split(";", 1)[0].strip().lower()
    return None if word == "no" else (word or "(empty)")
