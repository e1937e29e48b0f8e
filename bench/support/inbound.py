"""The inbound part of bench/mail.py: replies by mail sent in a row to the daemon's inbound
SMTP listener over one connection, as an MTA relaying a busy reply domain would, each one
checked afterwards to be stored exactly once."""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import asyncpg

from daemon.mail.reply_token import ReplyAddress, ReplyKey, sign

NEW_TEXT = "Checked on site: the switch port was down; replugged, link is back."
QUOTED = ("On Mon, 3 Feb 2025 at 10:00, portald <portald@portal.bench> wrote:\n"
          "> Hello Alice,\n>\n> Ticket {number} has been assigned to you.\n>\n"
          "> Open the ticket: http://portal.bench/tickets/{ticket}\n")


@dataclass(frozen=True)
class InboundResult:
    replies: int
    accepted: int
    stored_once: bool
    seconds: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


async def reply_address(conn: asyncpg.Connection, reply_to: str, employee_id: int, ticket_id: int) -> str:
    """The address the daemon puts in Reply-To for this employee and ticket."""
    key = await conn.fetchrow("SELECT id, secret FROM reply_keys WHERE retires_at IS NULL")
    token = sign(ReplyKey(key["id"], bytes(key["secret"])), employee_id=employee_id, ticket_id=ticket_id)
    return ReplyAddress.parse(reply_to).for_token(token)


def replies(address: str, number: str, ticket: int, count: int) -> list[EmailMessage]:
    out = []
    for n in range(count):
        msg = EmailMessage()
        msg["From"] = "Alice <alice@msp.bench>"
        msg["To"] = address
        msg["Subject"] = f"Re: [{number}] Assigned to you"
        msg["Date"] = email.utils.formatdate()
        msg["Message-ID"] = f"<bench-{n}@phone.bench>"
        msg.set_content(f"{NEW_TEXT}\n\n-- \nAlice\n\n" + QUOTED.format(number=number, ticket=ticket))
        out.append(msg)
    return out


async def _connection(port: int, address: str, messages: list[bytes]) -> int:
    """One SMTP connection sending `messages` one after the other: how many were accepted."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                           local_hostname="mta.bench", timeout=30)
    await smtp.connect()
    accepted = 0
    try:
        for data in messages:
            errors, _ = await smtp.sendmail("alice@msp.bench", [address], data)
            accepted += not errors
    finally:
        await smtp.quit()
    return accepted


async def send_in_a_row(conn: asyncpg.Connection, *, port: int, reply_to: str, ids: dict[str, int],
                        count: int, mailed: bool, connections: int = 1) -> InboundResult:
    """`mailed`: the ticket has another recipient, so each note also goes out as a mail;
    `connections`: side by side, as an MTA delivers a busy domain (each sends its share in a
    row)."""
    ticket, number = await conn.fetchrow(
        "INSERT INTO tickets (account_id, description, assigned_to) VALUES ($1, 'inbound bench', $2) "
        "RETURNING id, number", ids["acme"], ids["alice"])
    if mailed:
        await conn.execute("INSERT INTO ticket_recipients VALUES ($1, $2)", ticket, ids["bob"])
    address = await reply_address(conn, reply_to, ids["alice"], ticket)
    messages = [m.as_bytes() for m in replies(address, number, ticket, count)]
    started = time.perf_counter()
    accepted = sum(await asyncio.gather(*(_connection(port, address, messages[i::connections])
                                          for i in range(connections))))
    seconds = time.perf_counter() - started
    stored = await conn.fetchrow(
        """SELECT count(*) AS notes, count(DISTINCT message_id) AS distinct_ids,
                  count(*) FILTER (WHERE body = $2) AS exact
             FROM history_notes WHERE ticket_id = $1""", ticket, NEW_TEXT)
    once = stored["notes"] == stored["distinct_ids"] == stored["exact"] == count
    return InboundResult(count, accepted, once, seconds)
