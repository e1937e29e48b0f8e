"""The outbox worker: fan-out of new events, then claim → render → send → mark.

Tasks (all named, all in app[BACKGROUND], none ever ends on an expected error):
- `portald-mail-listener`: its own LISTEN connection on `portald_mail` (daemon/mail/wakeup.py);
  a notification only wakes the others, the poll every [mail] poll_interval_s is the truth.
- `portald-mail-fanout`: expands mail_events into outbox rows (daemon/mail/fanout.py).
- `portald-outbox-sender-N`, one per [smtp] connections: each claims a small batch (`FOR UPDATE SKIP LOCKED`, then a lease
  in `locked_until`/`locked_by`), renders it, sends it over one SMTP connection (kept for
  the lane's next batch while batches follow each other within SMTP_KEEP_IDLE_S, checked by
  NOOP before reuse) and records each answer (daemon/mail/ledger.py): sent; 4xx, timeouts and connection
  errors → retry with exponential backoff and jitter until [mail] retry_max_hours after the
  row was written; 5xx → failed at once with the server's words. A lease that expires (the
  sender crashed) makes its rows claimable again; a sender renews its lease while its batch
  lasts, so no live lease is ever taken over.

Delivery is at least once: a crash between the server's "250" and the mark re-sends that
batch's mails (same Message-ID, so they are recognisable as duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence

import asyncpg

from daemon.config import Config, Settings
from daemon.db.pool import COMMAND_TIMEOUT_S, CONNECT_TIMEOUT_S, is_outage, keep_session
from daemon.mail import fanout
from daemon.mail.batch import Dropped, Prepared, prepare_batch
from daemon.mail.identity import MailIdentity
from daemon.mail.ledger import RETRY_BASE_S, RETRY_CAP_S, Ledger, describe
from daemon.mail.smtp import Outcome, SmtpBatch
from daemon.mail.throttle import RateLimiter
from daemon.mail.wakeup import ERROR_BACKOFF_MAX_S, ERROR_BACKOFF_MIN_S, LaneBell, MailWakeup
from daemon.metrics import Metrics
from daemon.queries import events as events_q
from daemon.queries import outbox as outbox_q

log = logging.getLogger("portald.outbox")

SENDER_LANES = 4  # the default of [smtp] connections: batches in flight, each over its own session
# a lane holds a database connection only to claim, render and record, never while it waits
# on SMTP: a few connections serve many lanes
POOL_LANES_MAX = 8
LEASE_MIN_S = 5.0
LEASE_PER_SMTP_TIMEOUT = 2  # lease = this × [smtp] timeout_s (at least LEASE_MIN_S)
QUEUE_GAUGE_INTERVAL_S = 5.0
STOP_GRACE_S = 5.0  # on stop, beyond one SMTP timeout, for the mail being sent and the marks
# answers are recorded at least this often within a batch (what a crash may send twice)
RECORD_EVERY_MAILS = 10
RECORD_EVERY_S = 1.0
# releasing leases while the database is away: retried from this pause, doubling up to the
# max, until this long before the lease ends
RELEASE_RETRY_MIN_S = 0.1
RELEASE_RETRY_MAX_S = 1.0
RELEASE_MARGIN_S = 2.0
# a stream of events (a reply by mail every few ms) is expanded this many at a time, not one
# fan-out transaction each: fan-outs follow each other at most this often; a lone event, or
# the first of a stream, is expanded at once
FANOUT_GATHER_S = 0.02
SMTP_KEEP_IDLE_S = 2.0  # a lane's SMTP connection is closed after this long without a batch


def lease_s(cfg: Config) -> float:
    """Long enough for one SMTP exchange and a renewal; short enough that a crashed sender's
    mails go out again soon."""
    return max(LEASE_MIN_S, LEASE_PER_SMTP_TIMEOUT * cfg.smtp.timeout_s)


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def backoff_s(failures: int) -> float:
    return min(ERROR_BACKOFF_MAX_S, ERROR_BACKOFF_MIN_S * 2 ** (failures - 1))


class OutboxWorker:
    def __init__(self, *, pool: asyncpg.Pool, dsn: str, settings: Settings, metrics: Metrics,
                 lanes: int | None = None, retry_base_s: float = RETRY_BASE_S,
                 retry_cap_s: float = RETRY_CAP_S, listen: bool = True,
                 instance: str | None = None) -> None:
        self.pool = pool
        self.dsn = dsn
        self.settings = settings
        self.metrics = metrics
        self.instance = instance or instance_id()
        self.lanes = lanes = lanes or settings.current.smtp.connections
        self.listen = listen
        self.limiter = RateLimiter(settings)
        self.ledger = Ledger(pool=pool, settings=settings, metrics=metrics,
                             retry_base_s=retry_base_s, retry_cap_s=retry_cap_s)
        self.tasks: list[asyncio.Task] = []
        self._senders: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._wake_fanout = asyncio.Event()
        self._wake_send = LaneBell(lanes)
        self._gauge_at = 0.0
        self.wakeup = MailWakeup(dsn, on_outbox=self._wake_send.ring, on_events=self._wake_fanout.set,
                                 on_connect=self.wake, stopping=self._stopping)

    @property
    def listening(self) -> bool:
        return self.wakeup.listening

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> list[asyncio.Task]:
        loop = asyncio.get_running_loop()
        if self.listen:
            self.tasks.append(loop.create_task(self.wakeup.run(), name="portald-mail-listener"))
        self.tasks.append(loop.create_task(self._fanout_loop(), name="portald-mail-fanout"))
        self._senders = [loop.create_task(self._send_loop(), name=f"portald-outbox-sender-{i}")
                         for i in range(self.lanes)]
        self.tasks.extend(self._senders)
        return list(self.tasks)

    async def stop(self) -> None:
        """Finish the mail being sent, record what was sent, release the rest of the leases."""
        self._stopping.set()
        self._wake_send.ring_all()
        self._wake_fanout.set()
        others = [t for t in self.tasks if t not in self._senders]
        for t in others:
            t.cancel()
        grace = self.settings.current.smtp.timeout_s + STOP_GRACE_S
        if self._senders:
            _, pending = await asyncio.wait(self._senders, timeout=grace)
            for t in pending:
                t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_GRACE_S):
                await self.ledger.record()
                await outbox_q.release_all_leases(self.pool, instance=self.instance)

    def wake(self) -> None:
        self._wake_fanout.set()
        self._wake_send.ring_all()

    async def _idle(self, event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, timeout_s))

    async def _pause(self, seconds: float) -> None:
        await self._idle(self._stopping, seconds)

    # -- fan-out ---------------------------------------------------------------------------------

    async def _fanout_loop(self) -> None:
        failures = 0
        limit = fanout.FANOUT_BATCH
        last = 0.0
        while not self._stopping.is_set():
            gap = FANOUT_GATHER_S - (time.monotonic() - last)
            if gap > 0:
                await self._pause(gap)
            self._wake_fanout.clear()
            last = time.monotonic()
            try:
                identity = MailIdentity.from_config(self.settings.current)
                async with self.pool.acquire() as conn:
                    result = await fanout.fan_out(conn, identity=identity, limit=limit)
                    await self._refresh_gauge(conn)
                failures = 0
                limit = fanout.FANOUT_BATCH
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                limit, delay = await self._fanout_failed(exc, failures, limit)
                await self._pause(delay)
                continue
            if result.dropped:
                self.metrics.mails_dropped.inc(result.dropped)
            if result.mails:
                self._wake_send.ring()
            if result.events >= limit:
                continue  # more are waiting
            await self._idle(self._wake_fanout, self.settings.current.mail.poll_interval_s)

    async def _fanout_failed(self, exc: Exception, failures: int, limit: int) -> tuple[int, float]:
        """The next batch limit and the pause before it, after a failed fan-out."""
        delay = backoff_s(failures)
        if is_outage(exc):
            log.warning("mail fan-out: %s; retrying in %.1f s", describe(exc), delay)
            return limit, delay
        if limit > 1:
            # not an outage: find the event at fault by going one at a time
            log.exception("mail fan-out failed; retrying event by event")
            return 1, 0.0
        await self._skip_event(exc)
        return limit, 0.0

    async def _skip_event(self, exc: BaseException) -> None:
        try:
            event_id = await events_q.set_aside_first_event(self.pool, describe(exc)[:1000])
        except Exception as again:
            log.warning("mail fan-out: cannot set aside a failing event: %s", describe(again))
            return
        log.error("mail event %s cannot be expanded (%s); set aside with the error recorded, "
                  "the others go on", event_id, describe(exc))

    async def _refresh_gauge(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now - self._gauge_at >= QUEUE_GAUGE_INTERVAL_S:
            self._gauge_at = now
            state = await outbox_q.queue_state(conn)
            self.metrics.outbox_queued.set(state["queued"])
            self.metrics.outbox_leased.set(state["leased"])
            self.metrics.outbox_oldest_age.set(state["oldest_age_s"])

    # -- sending ---------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        failures = 0
        # the SMTP connection of the last batch, kept while batches follow each other within
        # SMTP_KEEP_IDLE_S: mails that trickle in one by one (each a note, a reply by mail)
        # then cost one NOOP each, not a new SMTP session each
        smtp: SmtpBatch | None = None
        used_at = 0.0
        try:
            while not self._stopping.is_set():
                cfg = self.settings.current
                try:
                    await self.ledger.record()
                    rows = await outbox_q.claim_batch(self.pool, size=cfg.mail.batch_size,
                                                      lease_s=lease_s(cfg), instance=self.instance)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    log.warning("outbox: %s; retrying in %.1f s", describe(exc), backoff_s(failures),
                                exc_info=not is_outage(exc))
                    smtp = await _close(smtp)
                    await self._pause(backoff_s(failures))
                    continue
                if not rows:
                    if smtp is not None and time.monotonic() - used_at >= SMTP_KEEP_IDLE_S:
                        smtp = await _close(smtp)
                    wait = await self._next_due_in(cfg)
                    await self._wake_send.wait(wait if smtp is None else min(wait, SMTP_KEEP_IDLE_S))
                    continue
                smtp = await self._send_batch(rows, cfg, smtp)
                used_at = time.monotonic()
        finally:
            if smtp is not None:
                await asyncio.shield(_close(smtp))

    async def _send_batch(self, rows: list[asyncpg.Record], cfg: Config,
                          smtp: SmtpBatch | None) -> SmtpBatch | None:
        """Deliver one claimed batch; the SMTP connection to keep for the next, if any."""
        more = len(rows) >= cfg.mail.batch_size
        if more:
            self._wake_send.ring()  # more are due: another lane may take the next batch
        envelope_from = MailIdentity.from_config(cfg).from_addr
        if smtp is None or not smtp.keep_for(cfg.smtp, envelope_from):
            await _close(smtp)
            smtp = SmtpBatch(cfg.smtp, envelope_from=envelope_from)
        try:
            await self._deliver(sorted(rows, key=lambda r: r["id"]), cfg, smtp)
        except asyncio.CancelledError:
            await asyncio.shield(_close(smtp))
            raise
        except Exception:  # a bug: say so, and keep the sender alive
            log.exception("outbox: delivering a batch failed")
            await _close(smtp)
            await self._pause(ERROR_BACKOFF_MIN_S)
            return None
        if self._stopping.is_set():
            return await _close(smtp)
        return smtp

    async def _next_due_in(self, cfg: Config) -> float:
        poll = float(cfg.mail.poll_interval_s)
        try:
            due = await outbox_q.next_due_in(self.pool)
        except Exception:
            return poll
        return poll if due is None else min(poll, max(0.01, due))

    async def _deliver(self, rows: Sequence[asyncpg.Record], cfg: Config, smtp: SmtpBatch) -> None:
        """Send one claimed batch over `smtp` (the caller closes it). Never raises but for
        cancellation: whatever happens, the answers obtained are recorded (now or, if the
        database is away, later), and rows not tried are released."""
        # the lease runs from the claim: count it from before the rendering
        lease_until = time.monotonic() + lease_s(cfg)
        by_id = {r["id"]: r for r in rows}
        try:
            async with self.pool.acquire() as conn:
                prepared = await prepare_batch(conn, rows, identity=MailIdentity.from_config(cfg))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("outbox: cannot render a batch: %s", describe(exc), exc_info=not is_outage(exc))
            await self._release(list(by_id), lease_until)
            await self._pause(ERROR_BACKOFF_MIN_S)
            return
        done: set[int] = set()
        try:
            await self._offer(prepared, by_id, done, cfg, smtp, lease_until)
        finally:
            await self.ledger.record_quietly()
            await self._release([oid for oid in by_id if oid not in done], lease_until)

    async def _offer(self, prepared: list[Prepared | Dropped], by_id: dict[int, asyncpg.Record],
                     done: set[int], cfg: Config, smtp: SmtpBatch, lease_until: float) -> None:
        """Hand each prepared mail to the server, renewing the lease before it runs out;
        `done` collects the rows answered (or dropped)."""
        lease = lease_s(cfg)
        unrecorded, recorded_at = 0, time.monotonic()
        for i, item in enumerate(prepared):
            if isinstance(item, Dropped):
                self.ledger.note(by_id[item.outbox_id], Outcome("dropped", None, item.reason))
                done.add(item.outbox_id)
                log.info("outbox %d: %s", item.outbox_id, item.reason)
                continue
            if self._stopping.is_set():
                break
            if time.monotonic() + cfg.smtp.timeout_s + 1.0 > lease_until:
                kept = await self._renew([p.outbox_id for p in prepared[i:]
                                          if isinstance(p, Prepared)], lease)
                if kept is None:
                    break  # cannot vouch for the lease: leave the rest to expire
                lease_until = time.monotonic() + lease
                if item.outbox_id not in kept:
                    continue  # someone else has it now
            if not await self.limiter.wait(self._stopping):
                break
            started = time.monotonic()
            outcome = await smtp.send(item)
            self.ledger.attempted(by_id[item.outbox_id], item, outcome,
                                  duration_s=time.monotonic() - started, relay=smtp.relay)
            done.add(item.outbox_id)
            unrecorded += 1
            # Record as we go: a crash re-sends only what was accepted and not recorded.
            if unrecorded >= RECORD_EVERY_MAILS or time.monotonic() - recorded_at >= RECORD_EVERY_S:
                await self.ledger.record_quietly()
                unrecorded, recorded_at = 0, time.monotonic()

    async def _renew(self, ids: list[int], lease: float) -> set[int] | None:
        try:
            return await outbox_q.renew_lease(self.pool, ids, instance=self.instance, lease_s=lease)
        except Exception as exc:
            log.warning("outbox: cannot renew a lease: %s", describe(exc))
            return None

    async def _release(self, ids: list[int], lease_until: float) -> None:
        """Give rows not sent back at once. A database restart or a cut connection lasts well
        under a second, so try again while the lease lasts: otherwise the whole batch waits out
        the lease. Only while it lasts: after that another lane may hold them under a new one."""
        delay = RELEASE_RETRY_MIN_S
        while ids:
            try:
                await outbox_q.release_leases(self.pool, ids, instance=self.instance)
                return
            except Exception as exc:
                if time.monotonic() + delay > lease_until - RELEASE_MARGIN_S:
                    log.info("outbox: cannot release leases (%s); they expire by themselves",
                             describe(exc))
                    return
            await asyncio.sleep(delay)
            delay = min(RELEASE_RETRY_MAX_S, delay * 2)


async def _close(smtp: SmtpBatch | None) -> None:
    """Close a lane's SMTP connection (QUIT, or drop it); always None, to assign."""
    if smtp is not None:
        await smtp.close()


async def create_mail_pool(dsn: str, *, lanes: int = SENDER_LANES) -> asyncpg.Pool:
    """The worker's own connections. Its transactions only keep books about mail (leases,
    answers, outbox rows expanded from events that are themselves durable), so they commit
    without waiting for the WAL flush: a PostgreSQL crash may forget the last moments of them,
    which means a mail sent again, never a mail lost; in return no fsync per batch."""
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=min(lanes, POOL_LANES_MAX) + 2, timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S, max_inactive_connection_lifetime=300, reset=keep_session,
        server_settings={"synchronous_commit": "off", "application_name": "portald-mail"})
