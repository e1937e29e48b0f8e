"""[smtp] connections against a relay that answers each command only after a delay: the mails
go out over that many SMTP sessions side by side, each session carrying many mails, and every
guarantee of the single session still holds (exactly once, retries, the delivery log line,
a stop that finishes the mails being sent)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import asyncpg
import pytest

from tests.support.config import with_settings
from tests.support.mail import forget_mail, new_ticket, outbox_counts, running_worker, wait_until
from tests.support.seed import seed
from tests.support.smtp import SmtpSink

DELAY_S = 0.02  # per answer: a mail (MAIL, RCPT, DATA, the message) takes ~80 ms a session
MAILS = 40
BATCH = 5  # small batches, so that a few dozen mails spread over every session
FAST_RETRY = {"retry_base_s": 0.5, "retry_cap_s": 1.0}


@pytest.fixture
def slow_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(delay_s=DELAY_S)
    sink.start()
    yield sink
    sink.stop()


async def queue_notes(conn: asyncpg.Connection, count: int) -> None:
    s = await seed(conn, tickets=False)
    tickets = [await new_ticket(conn, s["acme"], recipients=(s["admin"],)) for _ in range(4)]
    await forget_mail(conn)
    await conn.execute("""INSERT INTO history_notes (ticket_id, body)
                          SELECT t, 'note ' || g FROM unnest($1::bigint[]) t, generate_series(1, $2) g""",
                       tickets, count // 4)


def message_ids(sink: SmtpSink) -> Counter:
    return Counter(m.raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for m in sink.received)


async def all_sent(conn: asyncpg.Connection, total: int) -> bool:
    return (await outbox_counts(conn)).get("sent", 0) >= total


@pytest.mark.parametrize("connections", [1, 4])
async def test_mails_go_out_over_that_many_sessions_each_once(
        conn, config, dsn, slow_sink, caplog, connections: int) -> None:
    await queue_notes(conn, MAILS)
    cfg = with_settings(config, smtp={"port": slow_sink.port, "connections": connections},
                        mail={"batch_size": BATCH})
    with caplog.at_level(logging.INFO, logger="portald.delivery"):
        async with running_worker(cfg, dsn):
            assert await wait_until(lambda: all_sent(conn, MAILS), timeout=30)
    assert slow_sink.handler.sessions_most == connections
    # each session carried many mails: no new session per mail or per batch
    assert len({m.peer for m in slow_sink.received}) == connections
    ids = message_ids(slow_sink)
    assert len(ids) == MAILS and sum(ids.values()) == MAILS
    rows = await conn.fetch("SELECT status, attempts, locked_by FROM outbox")
    assert all(r["status"] == "sent" and r["attempts"] == 1 and r["locked_by"] is None for r in rows)
    lines = [r.getMessage() for r in caplog.records if r.name == "portald.delivery"]
    assert len(lines) == MAILS and all("status=sent" in line for line in lines)


async def test_refusals_over_parallel_sessions_are_retried_or_failed(conn, config, dsn, slow_sink) -> None:
    await queue_notes(conn, MAILS)
    # the first four mails offered (one per session) are answered 451, 451, 451, 550
    slow_sink.answer_next(*["451 4.3.0 try again later"] * 3, "550 5.7.1 refused by policy")
    cfg = with_settings(config, smtp={"port": slow_sink.port, "connections": 4},
                        mail={"batch_size": BATCH})
    async with running_worker(cfg, dsn, **FAST_RETRY) as worker:
        assert await wait_until(lambda: all_sent(conn, MAILS - 1), timeout=30)
        assert worker.metrics.mails_retried._value.get() == 3
        assert worker.metrics.mails_failed._value.get() == 1
    assert slow_sink.handler.sessions_most == 4
    ids = message_ids(slow_sink)
    assert len(ids) == MAILS - 1 and sum(ids.values()) == MAILS - 1
    rows = await conn.fetch("SELECT status, attempts, last_code, message_id FROM outbox")
    [failed] = [r for r in rows if r["status"] == "failed"]
    assert failed["attempts"] == 1 and failed["last_code"] == 550
    assert failed["message_id"].encode() not in ids
    assert sorted(r["attempts"] for r in rows if r["status"] == "sent")[-3:] == [2, 2, 2]
    assert sum(r["attempts"] for r in rows) == MAILS + 3


async def test_stopping_finishes_the_mails_in_flight_on_every_session(conn, config, dsn, slow_sink) -> None:
    await queue_notes(conn, MAILS * 5)
    cfg = with_settings(config, smtp={"port": slow_sink.port, "connections": 4},
                        mail={"batch_size": BATCH})
    async with running_worker(cfg, dsn):
        await slow_sink.wait_for_async(10)
    # every mail the server accepted is marked sent, nothing else is, and no lease is left
    counts = await outbox_counts(conn)
    assert counts.get("sent", 0) == len(slow_sink.received) < MAILS * 5
    assert sum(message_ids(slow_sink).values()) == len(slow_sink.received)
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE locked_by IS NOT NULL") == 0
    assert slow_sink.handler.sessions_open == 0
