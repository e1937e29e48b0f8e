"""What an operator sees of the mail worker: one log line per delivery attempt (read from the
real daemon's output), and the queue's gauges on /metrics."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from daemon.app import build_app
from daemon.db.embedded import free_port
from tests.support.config import portal_sections, write_config
from tests.support.daemon import spawn_daemon, stop_daemon
from tests.support.mail import forget_mail, new_ticket, wait_until
from tests.support.seed import seed
from web.routes import setup_web

LINE = re.compile(r"portald\.delivery: (?P<fields>outbox=.*)$", re.MULTILINE)
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def delivery_lines(log: str) -> list[dict[str, str]]:
    return [{k: v.strip('"') for k, v in FIELD.findall(m.group("fields"))} for m in LINE.finditer(log)]


async def test_each_delivery_attempt_is_one_greppable_log_line(conn, dsn, smtp_sink, tmp_path: Path) -> None:
    s = await seed(conn, tickets=False)
    await forget_mail(conn)
    sent = await new_ticket(conn, s["acme"], "Printer on fire", assigned_to=s["tech"])
    bounced = await new_ticket(conn, s["acme"], "Scanner jammed", assigned_to=s["admin"])
    numbers = dict(await conn.fetch("SELECT id, number FROM tickets"))
    smtp_sink.handler.refuse_rcpt.add("admin@msp.test")
    sections = portal_sections(tmp_path, dsn, smtp_sink.port, http_port=free_port())
    sections["smtp"]["timeout_s"] = 2
    sections["log"] = {"level": "INFO"}
    log_path = tmp_path / "daemon.log"
    proc = spawn_daemon(write_config(tmp_path / "config.toml", sections), log_path)
    try:
        assert await wait_until(lambda: _settled(conn, 2), timeout=30), log_path.read_text()[-3000:]
        assert await wait_until(lambda: _logged(log_path, 2), timeout=10), log_path.read_text()[-3000:]
    finally:
        assert stop_daemon(proc) == 0
    lines = {int(f["outbox"]): f for f in delivery_lines(log_path.read_text())}
    rows = {r["ticket_id"]: r for r in await conn.fetch("SELECT * FROM outbox")}
    ok, refused = lines[rows[sent]["id"]], lines[rows[bounced]["id"]]
    assert ok["to"] == "<tech@msp.test>" and ok["ticket"] == numbers[sent]
    assert ok["event"] == "assigned" and ok["attempt"] == "1" and ok["status"] == "sent"
    assert ok["code"] == "250" and float(ok["duration_s"]) >= 0
    assert ok["relay"] == f"127.0.0.1:{smtp_sink.port}"
    assert refused["to"] == "<admin@msp.test>" and refused["ticket"] == numbers[bounced]
    assert refused["status"] == "bounced" and refused["code"] == "550"
    assert "no such user" in refused["answer"]
    assert len(lines) == 2  # one line per attempt, no other line of the same shape
    assert dsn not in log_path.read_text()


async def _settled(conn, count: int) -> bool:
    return await conn.fetchval("SELECT count(*) FROM outbox WHERE status <> 'queued'") >= count


async def _logged(path: Path, count: int) -> bool:
    return len(delivery_lines(await asyncio.to_thread(path.read_text))) >= count


async def test_queue_gauges_on_metrics_count_the_whole_queue(dsn, config, conn, aiohttp_client) -> None:
    s = await seed(conn, tickets=False)
    await forget_mail(conn)
    ticket = await new_ticket(conn, s["acme"])
    await forget_mail(conn)
    # what other instances hold: two mails leased to a sender elsewhere, and one old mail
    # waiting for its next attempt in an hour
    await conn.execute(
        """INSERT INTO outbox (event, ticket_id, employee_id, message_id, locked_until, locked_by,
                               created_at, next_attempt_at)
           SELECT 'note', $1, $2, '<m' || g || '@portal.test>',
                  CASE WHEN g < 3 THEN now() + interval '1 hour' END,
                  CASE WHEN g < 3 THEN 'elsewhere:1' END,
                  now() - make_interval(mins => g * 30), now() + interval '1 hour'
             FROM generate_series(1, 3) g""", ticket, s["tech"])
    client = await aiohttp_client(build_app(config, dsn, setup_web=setup_web))

    async def gauges() -> dict[str, float]:
        text = await (await client.get("/metrics")).text()
        return {m.group(1): float(m.group(2)) for m in re.finditer(
            r"^(portald_outbox_\w+) ([0-9.e+-]+)$", text, re.MULTILINE)}

    found: dict[str, float] = {}
    for _ in range(100):
        found = await gauges()
        if found.get("portald_outbox_queued") == 3:
            break
        await asyncio.sleep(0.05)
    assert found["portald_outbox_queued"] == 3
    assert found["portald_outbox_leased"] == 2
    assert 90 * 60 <= found["portald_outbox_oldest_queued_age_seconds"] < 91 * 60
