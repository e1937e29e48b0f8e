"""The remote-relay part of bench/mail.py: the outbox drained against an SMTP sink that answers
every command RELAY_RTT_MS late (a relay across a network), next to the naive sender on the same
sink, and the ceilings round trips put on both."""

from __future__ import annotations

import os

import asyncpg

RELAY_RTT_MS = float(os.environ.get("BENCH_RELAY_RTT_MS", 5))
RELAY_MAILS = int(os.environ.get("BENCH_RELAY_MAILS", 4000))
RELAY_NAIVE_MAILS = int(os.environ.get("BENCH_RELAY_NAIVE_MAILS", 300))
# [smtp] connections to measure: the default, and enough sessions to carry 10x the naive sender
RELAY_CONNECTIONS = tuple(int(n) for n in os.environ.get("BENCH_RELAY_CONNECTIONS", "4,16").split(","))
# a mail on a session kept open: MAIL, RCPT, DATA, the message; one connection per mail adds
# the greeting, EHLO and QUIT
ROUND_TRIPS_KEPT = 4
ROUND_TRIPS_NAIVE = 7


async def requeue(conn: asyncpg.Connection, mails: int) -> None:
    """The first `mails` note mails queued again as they were, the rest left sent."""
    await conn.execute(
        """UPDATE outbox SET status = 'queued', sent_at = NULL, attempts = 0, last_code = NULL,
                             next_attempt_at = now()
            WHERE id IN (SELECT id FROM outbox WHERE event = 'note' ORDER BY id LIMIT $1)""", mails)
    await conn.execute("VACUUM ANALYZE outbox")


def bound_kept(connections: int) -> float:
    """Mails/s that `connections` sessions kept open can carry, by round trips alone."""
    return connections * 1e3 / (ROUND_TRIPS_KEPT * RELAY_RTT_MS)


def bound_naive() -> float:
    return 1e3 / (ROUND_TRIPS_NAIVE * RELAY_RTT_MS)
