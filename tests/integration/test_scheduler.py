"""Scheduled mail: reminders and digests enqueue once across instances, through APScheduler
on the running loop; cleanup; reload; and a stop that waits for the job being run."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import asyncpg

from daemon.config import Settings
from daemon.mail.scheduler import JOB_DEFAULTS, MISFIRE_GRACE_S, SCHEDULER_LOCK_CLASS, MailScheduler
from tests.support.config import with_settings
from tests.support.mail import (
    fan_out_all,
    forget_mail,
    new_ticket,
    running_worker,
    set_mail_settings,
    wait_until,
)
from tests.support.seed import seed


@asynccontextmanager
async def instances(config, dsn: str, count: int = 2, *, start: bool = False):
    """`count` schedulers as separate daemons would have them: each its own pool."""
    pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=3) for _ in range(count)]
    scheds = [MailScheduler(pool=p, settings=Settings(config)) for p in pools]
    if start:
        for s in scheds:
            s.start()
    try:
        yield scheds
    finally:
        for s in scheds:
            await s.stop()
        for p in pools:
            await p.close()


async def test_reminders_enqueue_once_across_instances(conn, config, dsn) -> None:
    s = await seed(conn, tickets=False)
    stale = await new_ticket(conn, s["acme"], "Untouched", assigned_to=s["tech"])
    await new_ticket(conn, s["acme"], "Fresh", assigned_to=s["tech"])
    closed = await new_ticket(conn, s["acme"], "Done", assigned_to=s["tech"])
    await conn.execute("UPDATE tickets SET status = 'closed', closed_at = now() WHERE id = $1", closed)
    await new_ticket(conn, s["acme"], "Nobody's")
    await conn.execute("""UPDATE tickets SET updated_at = now() - interval '30 hours'
                           WHERE description <> 'Fresh'""")
    await forget_mail(conn)
    cfg = with_settings(config, scheduler={"reminder_hours": 24})
    async with instances(cfg, dsn) as (a, b):
        now = a.now()
        results = await asyncio.gather(a.run_job("reminders", now=now), b.run_job("reminders", now=now))
        assert sorted(results, key=str) == [1, None]
        # the next slot: still untouched, but reminded already within the last 24 h
        later = now + timedelta(minutes=15)
        assert await a.run_job("reminders", now=later) == 0
        assert await b.run_job("reminders", now=later) is None
        rows = await conn.fetch("SELECT ticket_id, employee_id FROM mail_events WHERE event = 'reminder'")
        assert [(r["ticket_id"], r["employee_id"]) for r in rows] == [(stale, s["tech"])]
        assert await fan_out_all(conn, cfg) == [("reminder", "tech")]
        # a day later and still untouched: one more
        await conn.execute("UPDATE mail_events SET created_at = created_at - interval '25 hours' "
                           "WHERE event = 'reminder'")
        await conn.execute("UPDATE tickets SET updated_at = now() - interval '55 hours' WHERE id = $1", stale)
        assert await a.run_job("reminders", now=later + timedelta(minutes=15)) == 1


async def test_digest_runs_once_across_started_instances(conn, config, dsn, smtp_sink) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], "Server room too warm", assigned_to=s["sub1"])
    await new_ticket(conn, s["globex"], "Not his account", assigned_to=s["tech"])
    for emp in (s["sub1"], s["admin"], s["gone"]):
        await set_mail_settings(conn, emp, alert_digest=True)
    await forget_mail(conn)
    now = datetime.now()
    if now.hour == 0 and now.minute == 0:  # "a minute ago" must be today
        await asyncio.sleep(61 - now.second)
        now = datetime.now()
    # digest time just passed: both instances catch up at start, one of them sends
    cfg = with_settings(config, scheduler={"digest_time": (now - timedelta(minutes=1)).strftime("%H:%M")})
    async with instances(cfg, dsn, start=True):
        assert await wait_until(lambda: conn.fetchval(
            "SELECT count(*) FROM scheduler_runs WHERE job = 'digest'"), timeout=5)
        await asyncio.sleep(0.3)
    assert await conn.fetchval("SELECT count(*) FROM scheduler_runs WHERE job = 'digest'") == 1
    # sub1 and admin asked (gone is inactive); only sub1 has open tickets to be told of
    events = await conn.fetch("SELECT employee_id FROM mail_events WHERE event = 'digest' ORDER BY 1")
    assert [r["employee_id"] for r in events] == sorted([s["sub1"], s["admin"]])
    async with running_worker(cfg, dsn):
        [got] = await smtp_sink.wait_for_async(1)
    msg = got.message
    assert got.rcpt_tos == ["sub1@msp.test"]
    assert msg["Subject"] == "Daily digest: 1 open ticket"
    assert msg["In-Reply-To"] is None and msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(("plain",)).get_content()
    assert f"http://portal.test/tickets/{ticket}" in text and "Server room too warm" in text
    assert "Not his account" not in text


async def test_cleanup_removes_old_sent_mail_only(conn, config, dsn) -> None:
    s = await seed(conn, tickets=False)
    await new_ticket(conn, s["acme"], assigned_to=s["tech"])
    await new_ticket(conn, s["acme"], assigned_to=s["admin"])
    await fan_out_all(conn, config)
    await conn.execute("UPDATE outbox SET status = 'sent', sent_at = now() - interval '40 days'")
    await new_ticket(conn, s["acme"], assigned_to=s["tech"])
    await fan_out_all(conn, config)
    async with instances(config, dsn, count=1) as (a,):
        assert await a.run_job("cleanup") >= 2
        assert await a.run_job("cleanup") is None  # once a day
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 1


async def test_jobs_follow_the_configuration_and_its_reload(conn, config, dsn) -> None:
    async with instances(config, dsn, count=1, start=True) as (a,):
        assert {j.id for j in a.scheduler.get_jobs()} == {"cleanup"}
        await asyncio.sleep(0.05)  # a reload comes later than the start, as SIGHUP does
        a.settings.current = with_settings(config, scheduler={"reminder_hours": 4, "digest_time": "03:00"})
        a.settings.reloaded.set()
        a.settings.reloaded.clear()
        assert await wait_until(lambda: _async({j.id for j in a.scheduler.get_jobs()} >= {"reminders", "digest"}),
                                timeout=2)
        for job in a.scheduler.get_jobs():
            assert job.coalesce is True and job.max_instances == 1
            assert job.misfire_grace_time == MISFIRE_GRACE_S
        assert JOB_DEFAULTS["coalesce"] is True


async def _async(value):
    return value


async def test_stop_waits_for_the_job_being_run(conn, config, dsn) -> None:
    s = await seed(conn, tickets=False)
    await new_ticket(conn, s["acme"], assigned_to=s["tech"])
    await conn.execute("UPDATE tickets SET updated_at = now() - interval '9 hours'")
    await forget_mail(conn)
    cfg = with_settings(config, scheduler={"reminder_hours": 8})
    blocker = await asyncpg.connect(dsn)
    try:
        tx = blocker.transaction()
        await tx.start()
        # hold the job's lock so that the run stays in flight while we stop the scheduler
        await blocker.execute("SELECT pg_advisory_xact_lock($1, hashtext('reminders'))", SCHEDULER_LOCK_CLASS)
        async with instances(cfg, dsn, count=1, start=True) as (a,):
            a.scheduler.get_job("reminders").modify(next_run_time=a.now())
            assert await wait_until(lambda: _async(bool(a._running)), timeout=3)
            stopping = asyncio.create_task(a.stop())
            await asyncio.sleep(0.3)
            assert not stopping.done()
            await tx.rollback()
            await asyncio.wait_for(stopping, 5)
            # the run finished (not cancelled): its reminder is there
            assert await conn.fetchval("SELECT count(*) FROM mail_events WHERE event = 'reminder'") == 1
    finally:
        await blocker.close()
