"""The mails the demo catcher caught (daemon/dev/catcher.py), read back for the portal's demo
page, and a reply to one of them sent the way a recipient's mail client would: to its
Reply-To, through the daemon's own inbound SMTP listener (daemon/mail/inbound.py).

Demo only: `portald run --mail-catcher` (`make run`) hands the catcher's folder to the
portal; without it none of this is reachable.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from daemon.config import Config
from daemon.mail.values import header_text

LIST_LIMIT = 200
NAME = re.compile(r"\d{8}-\d{6}-\d{9}\Z")  # what the catcher writes, without ".eml"
SHOWN_HEADERS = ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
                 "References", "Auto-Submitted")
_TICKET_LINK = re.compile(r"https?://\S+?/tickets/(\d+)\b")
SEND_TIMEOUT_S = 30


@dataclass(frozen=True)
class CaughtSummary:
    name: str
    to: str
    subject: str
    date: str
    reply_to: str


@dataclass(frozen=True)
class CaughtMail:
    name: str
    headers: list[tuple[str, str]]
    text: str
    html: str
    ticket_link: str | None
    ticket_id: int | None
    message: EmailMessage

    @property
    def reply_to(self) -> str:
        return str(self.message.get("Reply-To", ""))


def _parse(path: Path, *, headers_only: bool = False) -> EmailMessage:
    data = path.read_bytes()
    if headers_only:
        data = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def list_caught(directory: Path, limit: int = LIST_LIMIT) -> list[CaughtSummary]:
    """The newest mails first (the names sort by the time they were caught)."""
    names = sorted((p for p in directory.glob("*.eml") if NAME.match(p.stem)), reverse=True)[:limit]
    out = []
    for path in names:
        msg = _parse(path, headers_only=True)
        out.append(CaughtSummary(path.stem, str(msg.get("To", "")), str(msg.get("Subject", "")),
                                 str(msg.get("Date", "")), str(msg.get("Reply-To", ""))))
    return out


def read_caught(directory: Path, name: str) -> CaughtMail | None:
    """One mail by its name (None for anything that is not one of the catcher's names)."""
    path = directory / f"{name}.eml"
    if not NAME.match(name) or not path.is_file():
        return None
    msg = _parse(path)
    text_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    text = text_part.get_content() if text_part is not None else ""
    link = _TICKET_LINK.search(text)
    return CaughtMail(name=name, headers=[(h, str(msg[h])) for h in SHOWN_HEADERS if msg[h] is not None],
                      text=text, html=html_part.get_content() if html_part is not None else "",
                      ticket_link=link.group(0) if link else None,
                      ticket_id=int(link.group(1)) if link else None, message=msg)


def reply_message(mail: CaughtMail, text: str, *, quote: bool = True) -> EmailMessage:
    """The reply a recipient's mail client writes: to the Reply-To, threaded on the mail, the
    mail quoted below the new text."""
    original = mail.message
    reply = EmailMessage()
    reply["From"] = header_text(original.get("To", ""))
    reply["To"] = mail.reply_to
    reply["Subject"] = header_text("Re: " + str(original.get("Subject", "")))
    reply["Date"] = email.utils.formatdate(localtime=True)
    reply["Message-ID"] = email.utils.make_msgid(domain="demo-reply.localhost")
    if original["Message-ID"]:
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = " ".join(filter(None, (str(original.get("References", "")),
                                                      str(original["Message-ID"]))))
    body = text.strip() + "\n"
    if quote:
        said = f"On {original.get('Date', 'an earlier day')}, {original.get('From', 'portald')} wrote:\n"
        body += "\n" + said + "".join(f"> {line}\n" for line in mail.text.splitlines())
    reply.set_content(body)
    return reply


async def send_reply(cfg: Config, mail: CaughtMail, text: str, *, quote: bool = True) -> tuple[bool, str]:
    """Send the reply to the daemon's own inbound listener: (accepted, the server's answer)."""
    message = reply_message(mail, text, quote=quote)
    host = cfg.inbound.host if cfg.inbound.host not in ("0.0.0.0", "::") else "127.0.0.1"
    sender = email.utils.parseaddr(str(message["From"]))[1] or "demo@localhost"
    try:
        async with aiosmtplib.SMTP(hostname=host, port=cfg.inbound.port, start_tls=False,
                                   local_hostname="localhost", timeout=SEND_TIMEOUT_S) as smtp:
            _, answer = await smtp.send_message(message, sender=sender, recipients=[mail.reply_to])
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0]
        return False, f"{first.code} {first.message}"
    except aiosmtplib.SMTPResponseException as exc:
        return False, f"{exc.code} {exc.message}"
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return False, f"the inbound listener on {host}:{cfg.inbound.port} cannot be reached ({exc})"
    return True, answer
