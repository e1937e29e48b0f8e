"""The inbound part of bench/mail.py: replies by mail sent in a row to the daemon's inbound
SMTP listener over one or several connections, as an MTA relaying a busy reply domain would,
from a process of its own (bench/support/mta.py), each one checked afterwards to be stored
exactly once."""

from __future__ import annotations

import asyncio
import email.utils
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import asyncpg

from bench.support.cpu import cpu_s
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
    client_cpu_s: float  # the sending process's CPU while it sent

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
        msg["Message-ID"] = f"<bench-{ticket}-{n}@phone.bench>"
        msg.set_content(f"{NEW_TEXT}\n\n-- \nAlice\n\n" + QUOTED.format(number=number, ticket=ticket))
        out.append(msg)
    return out


MTA = Path(__file__).resolve().parent / "mta.py"


async def _send(port: int, messages: list[tuple[str, bytes]], connections: int) -> tuple[int, float, float]:
    """The messages over `connections` sessions from a process of its own: how many were
    accepted, in how many seconds, for how much of that process's CPU."""
    with tempfile.NamedTemporaryFile(suffix=".pickle") as f:
        pickle.dump(messages, f)
        f.flush()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(MTA), str(port), f.name, str(connections),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        if (await proc.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the sending process did not start")
        before = cpu_s(proc.pid)
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        used = cpu_s(proc.pid) - before
        await proc.wait()
    accepted, seconds = line.split()
    return int(accepted), float(seconds), used


async def send_in_a_row(conn: asyncpg.Connection, *, port: int, reply_to: str, ids: dict[str, int],
                        count: int, mailed: bool, connections: int = 1) -> InboundResult:
    """`mailed`: the ticket has another recipient, so each note also goes out as a mail;
    `connections`: side by side, as an MTA delivers a busy domain, each sending its share in a
    row, on a ticket of its own (replies to one ticket wait for each other by design: each
    moves the ticket's updated_at, so each holds its row until it commits)."""
    per_ticket = count // connections
    tickets, batches = [], []
    for _ in range(connections):
        ticket, number = await conn.fetchrow(
            "INSERT INTO tickets (account_id, description, assigned_to) VALUES ($1, 'inbound bench', $2) "
            "RETURNING id, number", ids["acme"], ids["alice"])
        if mailed:
            await conn.execute("INSERT INTO ticket_recipients VALUES ($1, $2)", ticket, ids["bob"])
        address = await reply_address(conn, reply_to, ids["alice"], ticket)
        tickets.append(ticket)
        batches.append([(address, m.as_bytes()) for m in replies(address, number, ticket, per_ticket)])
    # interleaved, so that connection i sends ticket i's replies (see mta.py)
    messages = [m for group in zip(*batches, strict=True) for m in group]
    accepted, seconds, client_cpu = await _send(port, messages, connections)
    stored = await conn.fetchrow(
        """SELECT count(*) AS notes, count(DISTINCT (ticket_id, message_id)) AS distinct_ids,
                  count(*) FILTER (WHERE body = $2) AS exact
             FROM history_notes WHERE ticket_id = ANY($1)""", tickets, NEW_TEXT)
    once = stored["notes"] == stored["distinct_ids"] == stored["exact"] == len(messages)
    return InboundResult(len(messages), accepted, once, seconds, client_cpu)
