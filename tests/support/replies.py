"""Replies by mail as a mail client writes them, and an SMTP client that says at which step of
the dialogue the daemon answered what (aiosmtplib over a real socket)."""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import asyncpg

from tests.support.mail import wait_until
from tests.support.smtp import Received, SmtpSink

REPLY_ADDRESS = "portald-reply@reply.portal.test"


@dataclass(frozen=True)
class Answer:
    step: str  # MAIL, RCPT or DATA: the last step the server answered
    code: int
    text: str

    @property
    def accepted(self) -> bool:
        return self.step == "DATA" and self.code == 250


def quoted(alert: Received) -> str:
    """The alert's text as a reply quotes it, below an "On … wrote:" line."""
    text = alert.message.get_body(("plain",)).get_content()
    when = alert.message["Date"]
    return f"On {when}, portald <portald@portal.test> wrote:\n" + "".join(
        f"> {line}\n" for line in text.splitlines())


def reply(to: str, *, text: str | None = None, html: str | None = None,
          sender: str = "Sub One <sub1@msp.test>", subject: str = "Re: your ticket",
          message_id: str | None = None, headers: Sequence[tuple[str, str]] = (),
          files: Sequence[tuple[str, str, bytes]] = ()) -> EmailMessage:
    """A reply as a mail client sends it: `files` are (name, type, data)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = message_id or email.utils.make_msgid(domain="phone.test")
    for name, value in headers:
        msg[name] = value
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for name, kind, data in files:
        maintype, subtype = kind.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


async def dialogue(port: int, *, rcpt: str, data: bytes | EmailMessage,
                   sender: str = "sub1@msp.test", size: int | None = None) -> Answer:
    """MAIL, RCPT, DATA one by one (no SIZE unless given): the step that was refused, or
    DATA's answer."""
    payload = data.as_bytes() if isinstance(data, EmailMessage) else data
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="client.test",
                           start_tls=False, timeout=30)
    await smtp.connect()
    try:
        steps = (("MAIL", lambda: smtp.mail(sender, options=[f"SIZE={size}"] if size else [])),
                 ("RCPT", lambda: smtp.rcpt(rcpt)), ("DATA", lambda: smtp.data(payload)))
        for step, call in steps:
            try:
                answer = await call()
            except aiosmtplib.SMTPResponseException as exc:
                return Answer(step, exc.code, exc.message)
        return Answer("DATA", answer.code, answer.message)
    finally:
        smtp.close()


async def alert_reply_to(conn: asyncpg.Connection, sink: SmtpSink, ticket_id: int,
                         employee_id: int) -> tuple[str, Received]:
    """Assign the ticket to the employee (anew) and wait for the alert: its Reply-To."""
    seen = len(sink.received)
    await conn.execute("UPDATE tickets SET assigned_to = NULL WHERE id = $1", ticket_id)
    await conn.execute("UPDATE tickets SET assigned_to = $2 WHERE id = $1", ticket_id, employee_id)
    address = await conn.fetchval("SELECT email FROM employees WHERE id = $1", employee_id)
    found: list[Received] = []

    async def arrived() -> bool:
        found[:] = [m for m in sink.received[seen:] if m.rcpt_tos == [address]
                    and f"/tickets/{ticket_id}" in m.raw.decode("ascii", "replace")]
        return bool(found)

    assert await wait_until(arrived), f"no alert to {address} about ticket {ticket_id}"
    return str(found[-1].message["Reply-To"]), found[-1]


async def stored_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """What a refused reply must leave as it was."""
    return dict(await conn.fetchrow(
        """SELECT (SELECT count(*) FROM history_notes) AS notes,
                  (SELECT count(*) FROM attachments) AS attachments,
                  (SELECT count(*) FROM blobs) AS blobs,
                  (SELECT count(*) FROM mail_events) AS events"""))
