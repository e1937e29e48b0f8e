"""Scheduled mail: reminders for untouched tickets, the daily digest, and outbox cleanup.

APScheduler 3 `AsyncIOScheduler` on the running loop with an in-memory job store; every job
has explicit coalesce=True, max_instances=1 and a misfire grace time. Jobs only *enqueue*
(mail_events rows, which the fan-out turns into outbox rows with the one access rule applied),
so they are short and never send mail themselves.

Once across instances: each run takes a transaction-scoped advisory lock for its job and
inserts (job, slot) into scheduler_runs with ON CONFLICT DO NOTHING; only the instance whose
insert took place does the work, in that same transaction (a failed run leaves no row, so the
next tick or another instance does it).

APScheduler's shutdown cancels coroutine jobs rather than awaiting them: each run is therefore
its own shielded, tracked task that stop() awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta

import asyncpg
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from daemon.config import Config, SchedulerConfig, Settings
from daemon.db.pool import OUTAGE_ERRORS
from daemon.queries import scheduler as q

log = logging.getLogger("portald.scheduler")

SCHEDULER_LOCK_CLASS = 0x706F7274  # "port": the portald_scheduler advisory lock class
REMINDER_CHECK_MINUTES = 15  # reminders are looked for this often (and this is their slot)
DIGEST_CATCHUP_H = 4  # a daemon (re)started this long after digest_time still sends today's
CLEANUP_AT = time(3, 17)  # daily, local time
MISFIRE_GRACE_S = 300
STOP_TIMEOUT_S = 30.0
RELOAD_CHECK_S = 5.0
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S}


async def run_once(pool: asyncpg.Pool, job: str, slot: str,
                   work: Callable[[asyncpg.Connection], Awaitable[int]]) -> int | None:
    """Run `work` for (job, slot) unless some instance already did; None when skipped."""
    async with pool.acquire() as conn, conn.transaction():
        if not await q.claim_run(conn, SCHEDULER_LOCK_CLASS, job, slot):
            return None
        return await work(conn)


# -- slots -----------------------------------------------------------------------------------

def reminder_slot(now: datetime) -> str:
    return now.replace(minute=now.minute - now.minute % REMINDER_CHECK_MINUTES, second=0,
                       microsecond=0).strftime("%Y-%m-%dT%H:%M")


def day_slot(now: datetime) -> str:
    return now.date().isoformat()


# -- the scheduler ---------------------------------------------------------------------------

class MailScheduler:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.scheduler = AsyncIOScheduler(jobstores={"default": MemoryJobStore()},
                                          job_defaults=dict(JOB_DEFAULTS))
        self._running: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None
        self._applied: SchedulerConfig | None = None

    def start(self) -> asyncio.Task:
        """Start on the running loop; returns the task that follows configuration reloads."""
        self.scheduler.start()
        self.configure(self.settings.current)
        self._watcher = asyncio.get_running_loop().create_task(
            self._follow_reloads(), name="portald-scheduler-reload")
        return self._watcher

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # its shutdown runs on the loop's next turn
        if self._running:
            log.info("waiting for %d scheduled job(s) to finish", len(self._running))
            _, pending = await asyncio.wait(set(self._running), timeout=STOP_TIMEOUT_S)
            for task in pending:
                task.cancel()

    def now(self) -> datetime:
        return datetime.now(self.scheduler.timezone)

    def configure(self, cfg: Config) -> None:
        """(Re)build the jobs from [scheduler]; only what changed is touched."""
        sch = cfg.scheduler
        if sch == self._applied:
            return
        self._applied = sch
        for job in list(self.scheduler.get_jobs()):
            job.remove()
        if sch.reminder_hours > 0:
            self.scheduler.add_job(self._job, CronTrigger(minute=f"*/{REMINDER_CHECK_MINUTES}"),
                                   args=["reminders"], id="reminders", name="reminders",
                                   **JOB_DEFAULTS)
        if sch.digest_time:
            at = time.fromisoformat(sch.digest_time)
            self.scheduler.add_job(self._job, CronTrigger(hour=at.hour, minute=at.minute),
                                   args=["digest"], id="digest", name="digest", **JOB_DEFAULTS)
            now = self.now()
            due = now.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
            if due <= now < due + timedelta(hours=DIGEST_CATCHUP_H):
                # started (or reconfigured) shortly after today's digest time: send today's
                # now; the (job, day) row keeps it to one per day
                self.scheduler.add_job(self._job, DateTrigger(now), args=["digest"],
                                       id="digest-catch-up", name="digest (catch-up)", **JOB_DEFAULTS)
        self.scheduler.add_job(self._job, CronTrigger(hour=CLEANUP_AT.hour, minute=CLEANUP_AT.minute),
                               args=["cleanup"], id="cleanup", name="cleanup", **JOB_DEFAULTS)
        log.info("scheduled: %s", ", ".join(j.id for j in self.scheduler.get_jobs()) or "nothing")

    async def _follow_reloads(self) -> None:
        while True:
            # the event wakes us at once; the timeout catches a reload that came while we
            # were not waiting (configure() does nothing when [scheduler] is unchanged)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settings.reloaded.wait(), RELOAD_CHECK_S)
            try:
                self.configure(self.settings.current)
            except Exception:
                log.exception("cannot apply the reloaded [scheduler] settings")
            if self.settings.reloaded.is_set():  # the reloader clears it at once; never spin
                await asyncio.sleep(0.1)

    async def _job(self, name: str) -> None:
        # Run as our own task, shielded: APScheduler cancels its job tasks at shutdown, and a
        # run half done is a run rolled back. stop() awaits what is in self._running.
        task = asyncio.get_running_loop().create_task(self.run_job(name), name=f"portald-job-{name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def run_job(self, name: str, *, now: datetime | None = None) -> int | None:
        """Run one job for the current slot, once across instances. Returns what it enqueued
        or removed, None if another run of this slot happened already (or it failed)."""
        cfg = self.settings.current.scheduler
        now = now or self.now()
        try:
            if name == "reminders":
                if cfg.reminder_hours <= 0:
                    return None
                done = await run_once(self.pool, name, reminder_slot(now), lambda c: q.enqueue_reminders(
                    c, reminder_hours=cfg.reminder_hours))
            elif name == "digest":
                day = day_slot(now)
                done = await run_once(self.pool, name, day, lambda c: q.enqueue_digests(c, day=day))
            elif name == "cleanup":
                done = await run_once(self.pool, name, day_slot(now), lambda c: q.clean_up(
                    c, days=cfg.cleanup_days))
            else:
                raise ValueError(f"no such job: {name}")
        except (asyncpg.PostgresError, *OUTAGE_ERRORS) as exc:
            # the next tick (or another instance) does it; nothing was recorded as done
            log.warning("scheduled job %s failed: %s: %s", name, exc.__class__.__name__, exc)
            return None
        if done is not None:
            log.info("scheduled job %s: %d row(s)", name, done)
        return done

