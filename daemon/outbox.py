"""The outbox worker: fan-out of new events, then claim → render → send → mark.

Tasks (all named, all in app[BACKGROUND], none ever ends on an expected error):
- `portald-mail-listener`: its own LISTEN connection on `portald_mail`; a notification only
  wakes the others. It probes its connection and reconnects with backoff; when it is down,
  the poll every [mail] poll_interval_s still finds everything (the table is the truth).
- `portald-mail-fanout`: expands mail_events into outbox rows (daemon/fanout.py).
- `portald-outbox-sender-N`: each claims a small batch (`FOR UPDATE SKIP LOCKED`, then a lease
  in `locked_until`/`locked_by`), renders it, sends it over one SMTP connection (kept for
  the lane's next batch only while full batches follow each other, checked by NOOP before
  reuse) and records each answer: sent; 4xx, timeouts and connection errors → retry with exponential backoff and
  jitter until [mail] retry_max_hours after the row was written; 5xx → failed at once with
  the server's words. A lease that expires (the sender crashed) makes its rows claimable
  again; a sender renews its lease while its batch lasts, so no live lease is ever taken over.

Delivery is at least once: a crash between the server's "250" and the mark re-sends that
batch's mails (same Message-ID, so they are recognisable as duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from daemon import db, fanout, mailer
from daemon.config import Config
from daemon.keys import BACKGROUND, DSN, METRICS, OUTBOX, SETTINGS, Settings
from daemon.mailer import Dropped, MailIdentity, Outcome, Prepared
from daemon.metrics import Metrics

log = logging.getLogger("portald.outbox")

CHANNEL = "portald_mail"
SENDER_LANES = 4  # batches in flight at once, each over its own SMTP connection
RETRY_BASE_S = 30.0  # first retry after about this long, doubling each time
RETRY_CAP_S = 3600.0  # never wait longer than this between two attempts
LEASE_MIN_S = 5.0
LEASE_PER_SMTP_TIMEOUT = 2  # lease = this × [smtp] timeout_s (at least LEASE_MIN_S)
ERROR_BACKOFF_MIN_S = 0.5  # database trouble: first pause, doubling …
ERROR_BACKOFF_MAX_S = 30.0  # … up to this
LISTEN_PROBE_INTERVAL_S = 10.0
LISTEN_PROBE_TIMEOUT_S = 5.0
LISTEN_CONNECT_TIMEOUT_S = 10.0
QUEUE_GAUGE_INTERVAL_S = 5.0
STOP_GRACE_S = 5.0  # on stop, beyond one SMTP timeout, for the mail being sent and the marks
# answers are recorded at least this often within a batch (what a crash may send twice)
RECORD_EVERY_MAILS = 10
RECORD_EVERY_S = 1.0

CLAIM_SQL = """
    WITH due AS (
        SELECT id FROM outbox
         WHERE status = 'queued' AND next_attempt_at <= now()
           AND (locked_until IS NULL OR locked_until < now())
         ORDER BY next_attempt_at, id
         LIMIT $1
           FOR UPDATE SKIP LOCKED)
    UPDATE outbox o SET locked_until = now() + make_interval(secs => $2), locked_by = $3
      FROM due WHERE o.id = due.id
    RETURNING o.id, o.event, o.ticket_id, o.employee_id, o.subject_id, o.payload, o.message_id,
              o.attempts, o.created_at"""

RENEW_SQL = """
    UPDATE outbox SET locked_until = now() + make_interval(secs => $3)
     WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'queued'
    RETURNING id"""

# A mail the server accepted is sent, whoever holds the row now.
MARK_SENT_SQL = """
    UPDATE outbox o SET status = 'sent', sent_at = now(), attempts = o.attempts + 1,
                        last_code = r.code, last_error = NULL, locked_until = NULL, locked_by = NULL
      FROM unnest($1::bigint[], $2::int[]) AS r(id, code)
     WHERE o.id = r.id AND o.status = 'queued'"""

MARK_UNSENT_SQL = """
    UPDATE outbox o
       SET attempts = o.attempts + r.tried::int, last_code = r.code, last_error = r.error,
           locked_until = NULL, locked_by = NULL,
           next_attempt_at = now() + make_interval(secs => r.delay_s),
           status = CASE WHEN r.final
                           OR now() + make_interval(secs => r.delay_s)
                              > o.created_at + make_interval(hours => $6)
                         THEN 'failed' ELSE 'queued' END
      FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[], $5::bool[], $7::bool[])
           AS r(id, code, error, delay_s, final, tried)
     WHERE o.id = r.id AND o.status = 'queued'
    RETURNING o.id, o.status"""

RELEASE_SQL = """
    UPDATE outbox SET locked_until = NULL, locked_by = NULL
     WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'queued'"""

RELEASE_ALL_SQL = """
    UPDATE outbox SET locked_until = NULL, locked_by = NULL
     WHERE locked_by = $1 AND status = 'queued'"""

NEXT_DUE_SQL = """
    SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM outbox
     WHERE status = 'queued' AND next_attempt_at > now()
     ORDER BY next_attempt_at LIMIT 1"""

QUEUED_COUNT_SQL = "SELECT count(*) FROM outbox WHERE status = 'queued'"


def lease_s(cfg: Config) -> float:
    """Long enough for one SMTP exchange and a renewal; short enough that a crashed sender's
    mails go out again soon."""
    return max(LEASE_MIN_S, LEASE_PER_SMTP_TIMEOUT * cfg.smtp.timeout_s)


def retry_delay_s(attempt: int, *, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> float:
    """Exponential backoff with jitter ("equal jitter"): between half and all of the doubled
    delay, so that mails failed together do not come back together."""
    delay = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.5, 1.0)


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _describe(exc: BaseException) -> str:
    # never a DSN: asyncpg errors do not carry it, and we do not add it
    return f"{exc.__class__.__name__}: {exc}"


class RateLimiter:
    """[mail] rate_per_minute for this instance (0: none), shared by its sender lanes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self, stopping: asyncio.Event) -> bool:
        """Wait for the next slot; False if the worker stops meanwhile."""
        rate = self._settings.current.mail.rate_per_minute
        if rate <= 0:
            return not stopping.is_set()
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self._next - now)
                if stopping.is_set():
                    return False
            self._next = max(time.monotonic(), self._next) + 60.0 / rate
        return not stopping.is_set()


@dataclass
class _Marks:
    """Answers not yet recorded (the database was away): kept and recorded later."""

    sent: list[tuple[int, int]] = field(default_factory=list)
    unsent: list[tuple[int, int | None, str, float, bool, bool]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sent or self.unsent)


class OutboxWorker:
    def __init__(self, *, pool: asyncpg.Pool, dsn: str, settings: Settings, metrics: Metrics,
                 lanes: int = SENDER_LANES, retry_base_s: float = RETRY_BASE_S,
                 retry_cap_s: float = RETRY_CAP_S, listen: bool = True,
                 instance: str | None = None) -> None:
        self.pool = pool
        self.dsn = dsn
        self.settings = settings
        self.metrics = metrics
        self.instance = instance or instance_id()
        self.lanes = lanes
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self.listen = listen
        self.limiter = RateLimiter(settings)
        self.tasks: list[asyncio.Task] = []
        self._senders: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._wake_fanout = asyncio.Event()
        self._wake_send = asyncio.Event()
        self._marks = _Marks()
        self._gauge_at = 0.0
        self.listening = False

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> list[asyncio.Task]:
        loop = asyncio.get_running_loop()
        if self.listen:
            self.tasks.append(loop.create_task(self._listen_loop(), name="portald-mail-listener"))
        self.tasks.append(loop.create_task(self._fanout_loop(), name="portald-mail-fanout"))
        self._senders = [loop.create_task(self._send_loop(), name=f"portald-outbox-sender-{i}")
                         for i in range(self.lanes)]
        self.tasks.extend(self._senders)
        return list(self.tasks)

    async def stop(self) -> None:
        """Finish the mail being sent, record what was sent, release the rest of the leases."""
        self._stopping.set()
        self._wake_send.set()
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
                await self._record_marks()
                await self.pool.execute(RELEASE_ALL_SQL, self.instance)

    def wake(self) -> None:
        self._wake_fanout.set()
        self._wake_send.set()

    async def _idle(self, event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, timeout_s))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- LISTEN ----------------------------------------------------------------------------------

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == "outbox":
            self._wake_send.set()
        else:
            self._wake_fanout.set()

    async def _listen_loop(self) -> None:
        backoff = ERROR_BACKOFF_MIN_S
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=LISTEN_CONNECT_TIMEOUT_S)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self.listening = True
                backoff = ERROR_BACKOFF_MIN_S
                # whatever happened while we were not listening is found by looking now
                self.wake()
                while not lost.is_set():
                    await self._idle(lost, LISTEN_PROBE_INTERVAL_S)
                    if lost.is_set():
                        break
                    # a connection can look alive and deliver nothing: ask it something
                    async with asyncio.timeout(LISTEN_PROBE_TIMEOUT_S):
                        await conn.fetchval("SELECT 1")
                log.warning("mail LISTEN connection lost; polling until it is back")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("mail LISTEN connection: %s; retrying in %.1f s", _describe(exc), backoff)
            finally:
                self.listening = False
                if conn is not None:
                    conn.terminate()
            await self._pause(backoff * random.uniform(0.8, 1.2))
            backoff = min(ERROR_BACKOFF_MAX_S, backoff * 2)

    # -- fan-out ---------------------------------------------------------------------------------

    async def _fanout_loop(self) -> None:
        failures = 0
        limit = fanout.FANOUT_BATCH
        while not self._stopping.is_set():
            self._wake_fanout.clear()
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
                delay = min(ERROR_BACKOFF_MAX_S, ERROR_BACKOFF_MIN_S * 2 ** (failures - 1))
                if _is_outage(exc):
                    log.warning("mail fan-out: %s; retrying in %.1f s", _describe(exc), delay)
                elif limit > 1:
                    # not an outage: find the event at fault by going one at a time
                    log.exception("mail fan-out failed; retrying event by event")
                    limit, delay = 1, 0.0
                else:
                    await self._skip_event(exc)
                    delay = 0.0
                await self._pause(delay)
                continue
            if result.dropped:
                self.metrics.mails_dropped.inc(result.dropped)
            if result.mails:
                self._wake_send.set()
            if result.events >= limit:
                continue  # more are waiting
            await self._idle(self._wake_fanout, self.settings.current.mail.poll_interval_s)

    async def _skip_event(self, exc: BaseException) -> None:
        try:
            event_id = await self.pool.fetchval(fanout.SKIP_EVENT_SQL, _describe(exc)[:1000])
        except Exception as again:
            log.warning("mail fan-out: cannot set aside a failing event: %s", _describe(again))
            return
        log.error("mail event %s cannot be expanded (%s); set aside with the error recorded, "
                  "the others go on", event_id, _describe(exc))

    async def _refresh_gauge(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now - self._gauge_at >= QUEUE_GAUGE_INTERVAL_S:
            self._gauge_at = now
            self.metrics.outbox_queued.set(await conn.fetchval(QUEUED_COUNT_SQL))

    # -- sending ---------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        failures = 0
        # the SMTP connection of the last batch, kept only while full batches follow each other
        smtp: mailer.SmtpBatch | None = None
        try:
            while not self._stopping.is_set():
                self._wake_send.clear()
                cfg = self.settings.current
                try:
                    await self._record_marks()
                    rows = await self.pool.fetch(CLAIM_SQL, cfg.mail.batch_size, lease_s(cfg), self.instance)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    delay = min(ERROR_BACKOFF_MAX_S, ERROR_BACKOFF_MIN_S * 2 ** (failures - 1))
                    log.warning("outbox: %s; retrying in %.1f s", _describe(exc), delay,
                                exc_info=not _is_outage(exc))
                    smtp = await _close(smtp)
                    await self._pause(delay)
                    continue
                if not rows:
                    smtp = await _close(smtp)
                    await self._idle(self._wake_send, await self._next_due_in(cfg))
                    continue
                more = len(rows) >= cfg.mail.batch_size
                if more:
                    self._wake_send.set()  # more are due: another lane may take the next batch
                envelope_from = MailIdentity.from_config(cfg).from_addr
                if smtp is None or not smtp.keep_for(cfg.smtp, envelope_from):
                    await _close(smtp)
                    smtp = mailer.SmtpBatch(cfg.smtp, envelope_from=envelope_from)
                try:
                    await self._deliver(sorted(rows, key=lambda r: r["id"]), cfg, smtp)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug: say so, and keep the sender alive
                    log.exception("outbox: delivering a batch failed")
                    smtp = await _close(smtp)
                    await self._pause(ERROR_BACKOFF_MIN_S)
                    continue
                if not more or self._stopping.is_set():
                    smtp = await _close(smtp)
        finally:
            if smtp is not None:
                await asyncio.shield(_close(smtp))

    async def _next_due_in(self, cfg: Config) -> float:
        poll = float(cfg.mail.poll_interval_s)
        try:
            due = await self.pool.fetchval(NEXT_DUE_SQL)
        except Exception:
            return poll
        return poll if due is None else min(poll, max(0.01, due))

    async def _deliver(self, rows: Sequence[asyncpg.Record], cfg: Config, smtp: mailer.SmtpBatch) -> None:
        """Send one claimed batch over `smtp` (the caller closes it). Never raises but for
        cancellation: whatever happens, the answers obtained are recorded (now or, if the
        database is away, later), and rows not tried are released."""
        identity = MailIdentity.from_config(cfg)
        lease = lease_s(cfg)
        lease_until = time.monotonic() + lease
        by_id = {r["id"]: r for r in rows}
        done: set[int] = set()
        try:
            async with self.pool.acquire() as conn:
                prepared = await mailer.prepare_batch(conn, rows, identity=identity)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("outbox: cannot render a batch: %s", _describe(exc), exc_info=not _is_outage(exc))
            await self._release(list(by_id))
            await self._pause(ERROR_BACKOFF_MIN_S)
            return
        unrecorded = 0
        recorded_at = time.monotonic()
        try:
            for i, item in enumerate(prepared):
                if isinstance(item, Dropped):
                    self._note(by_id[item.outbox_id], Outcome("dropped", None, item.reason))
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
                outcome = await smtp.send(item)
                self._note(by_id[item.outbox_id], outcome)
                done.add(item.outbox_id)
                unrecorded += 1
                # Record as we go: a crash re-sends only what was accepted and not recorded.
                if unrecorded >= RECORD_EVERY_MAILS or time.monotonic() - recorded_at >= RECORD_EVERY_S:
                    await self._record_quietly()
                    unrecorded, recorded_at = 0, time.monotonic()
        finally:
            await self._record_quietly()
            await self._release([oid for oid in by_id if oid not in done])

    async def _renew(self, ids: list[int], lease: float) -> set[int] | None:
        try:
            rows = await self.pool.fetch(RENEW_SQL, ids, self.instance, lease)
        except Exception as exc:
            log.warning("outbox: cannot renew a lease: %s", _describe(exc))
            return None
        return {r["id"] for r in rows}

    async def _release(self, ids: list[int]) -> None:
        if not ids:
            return
        try:
            await self.pool.execute(RELEASE_SQL, ids, self.instance)
        except Exception as exc:  # the lease expires by itself
            log.info("outbox: cannot release leases (%s); they expire by themselves", _describe(exc))

    def _note(self, row: asyncpg.Record, outcome: Outcome) -> None:
        """Keep an answer for recording, and count it."""
        oid = row["id"]
        if outcome.kind == "sent":
            self.metrics.mails_sent.inc()
            self._marks.sent.append((oid, outcome.code or 250))
            return
        if outcome.kind == "retry":
            self.metrics.mails_retried.inc()
            log.info("outbox %d: temporary failure (%s %s), will retry", oid, outcome.code or "-",
                     outcome.text)
        elif outcome.kind == "failed":
            log.warning("outbox %d: refused for good: %s %s", oid, outcome.code or "-", outcome.text)
        delay = retry_delay_s(row["attempts"] + 1, base_s=self.retry_base_s,
                              cap_s=self.retry_cap_s) if outcome.kind == "retry" else 0.0
        self._marks.unsent.append((oid, outcome.code, outcome.text, delay,
                                   outcome.kind != "retry", outcome.kind != "dropped"))

    async def _record_quietly(self) -> None:
        try:
            await self._record_marks()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("outbox: cannot record answers yet (%s); keeping them to record later",
                        _describe(exc))

    async def _record_marks(self) -> None:
        if not self._marks:
            return
        marks, self._marks = self._marks, _Marks()
        try:
            async with self.pool.acquire() as conn, (conn.transaction() if marks.sent and marks.unsent
                                                     else contextlib.nullcontext()):
                # one statement (the usual case) is atomic by itself: no BEGIN/COMMIT round trips
                if marks.sent:
                    ids, codes = zip(*marks.sent, strict=True)
                    await conn.execute(MARK_SENT_SQL, list(ids), list(codes))
                changed = []
                if marks.unsent:
                    cols = [list(c) for c in zip(*marks.unsent, strict=True)]
                    changed = await conn.fetch(MARK_UNSENT_SQL, cols[0], cols[1], cols[2], cols[3],
                                               cols[4], self.settings.current.mail.retry_max_hours,
                                               cols[5])
        except BaseException:
            # keep them, ahead of anything newer, for the next try
            self._marks.sent[:0] = marks.sent
            self._marks.unsent[:0] = marks.unsent
            raise
        dropped = {m[0] for m in marks.unsent if not m[5]}
        failed = [r["id"] for r in changed if r["status"] == "failed"]
        self.metrics.mails_failed.inc(sum(1 for oid in failed if oid not in dropped))
        self.metrics.mails_dropped.inc(sum(1 for oid in failed if oid in dropped))


async def _close(smtp: mailer.SmtpBatch | None) -> None:
    """Close a lane's SMTP connection (QUIT, or drop it); always None, to assign."""
    if smtp is not None:
        await smtp.close()


def _is_outage(exc: BaseException) -> bool:
    """Errors of a database or network that is away (logged without a traceback)."""
    return isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError
                      | asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError
                      | asyncpg.AdminShutdownError | asyncpg.ConnectionDoesNotExistError)


async def create_mail_pool(dsn: str, *, lanes: int = SENDER_LANES) -> asyncpg.Pool:
    """The worker's own connections. Its transactions only keep books about mail (leases,
    answers, outbox rows expanded from events that are themselves durable), so they commit
    without waiting for the WAL flush: a PostgreSQL crash may forget the last moments of them,
    which means a mail sent again, never a mail lost; in return no fsync per batch."""
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=lanes + 2, timeout=db.CONNECT_TIMEOUT_S,
        command_timeout=db.COMMAND_TIMEOUT_S, max_inactive_connection_lifetime=300,
        server_settings={"synchronous_commit": "off", "application_name": "portald-mail"})


async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mail worker in the application's life: started after the pool, stopped before it."""
    try:
        pool = await create_mail_pool(app[DSN])
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise db.DatabaseUnavailable(db.describe_connect_error(exc)) from None
    worker = OutboxWorker(pool=pool, dsn=app[DSN], settings=app[SETTINGS], metrics=app[METRICS])
    app[OUTBOX] = worker
    app[BACKGROUND].extend(worker.start())
    try:
        yield
    finally:
        await worker.stop()
        await pool.close()
