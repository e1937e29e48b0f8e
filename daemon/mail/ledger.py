"""The answers of the SMTP server, kept until they are recorded on their outbox rows: recorded
as a batch goes, and kept (ahead of newer ones) when the database is away, so that an answer
obtained is never lost and a crash re-sends only what was accepted and not yet recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

import asyncpg

from daemon.config import Settings
from daemon.mail.batch import Prepared
from daemon.mail.smtp import Outcome
from daemon.metrics import Metrics
from daemon.queries import outbox as outbox_q

log = logging.getLogger("portald.outbox")
delivery_log = logging.getLogger("portald.delivery")

# as an MTA names them: accepted, to be tried again, refused for good
_DELIVERY_STATUS = {"sent": "sent", "retry": "deferred", "failed": "bounced"}

RETRY_BASE_S = 30.0  # first retry after about this long, doubling each time
RETRY_CAP_S = 3600.0  # never wait longer than this between two attempts


def retry_delay_s(attempt: int, *, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> float:
    """Exponential backoff with jitter ("equal jitter"): between half and all of the doubled
    delay, so that mails failed together do not come back together."""
    delay = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.5, 1.0)


def describe(exc: BaseException) -> str:
    # never a DSN: asyncpg errors do not carry it, and we do not add it
    return f"{exc.__class__.__name__}: {exc}"


@dataclass
class _Marks:
    """Answers not yet recorded (the database was away): kept and recorded later."""

    sent: list[tuple[int, int]] = field(default_factory=list)
    unsent: list[tuple[int, int | None, str, float, bool, bool]] = field(default_factory=list)
    # the relay accepted a mail after it could not be reached: bring its waiting mails forward
    relay_back: bool = False

    def __bool__(self) -> bool:
        return bool(self.sent or self.unsent or self.relay_back)


def log_attempt(row: asyncpg.Record, mail: Prepared, outcome: Outcome, *, duration_s: float,
                relay: str) -> None:
    """One line per delivery attempt, `key=value` as an MTA writes it, so that `grep
    outbox=42` or `grep status=deferred` in the journal finds it. The server's answer is
    header_text already (one line, no controls); no credential is ever part of it."""
    status = _DELIVERY_STATUS.get(outcome.kind, outcome.kind)
    answer = outcome.text.replace("\\", "\\\\").replace('"', '\\"')
    delivery_log.log(
        logging.INFO if outcome.kind == "sent" else logging.WARNING,
        'outbox=%d to=<%s> ticket=%s event=%s attempt=%d status=%s code=%s duration_s=%.3f '
        'relay=%s answer="%s"', row["id"], mail.recipient, mail.ticket_number or "-",
        row["event"], row["attempts"] + 1, status, outcome.code or "-", duration_s, relay, answer)


class Ledger:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, metrics: Metrics,
                 retry_base_s: float = RETRY_BASE_S, retry_cap_s: float = RETRY_CAP_S) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._marks = _Marks()
        # this instance saw the relay unreachable (a retry without any SMTP answer)
        self._relay_unreachable = False

    def attempted(self, row: asyncpg.Record, mail: Prepared, outcome: Outcome, *,
                  duration_s: float, relay: str) -> None:
        """One delivery attempt: its log line, then the answer kept for recording."""
        log_attempt(row, mail, outcome, duration_s=duration_s, relay=relay)
        self.note(row, outcome)

    def note(self, row: asyncpg.Record, outcome: Outcome) -> None:
        """Keep an answer for recording, and count it."""
        oid = row["id"]
        if outcome.kind == "sent":
            self.metrics.mails_sent.inc()
            self._marks.sent.append((oid, outcome.code or 250))
            if self._relay_unreachable:
                self._relay_unreachable = False
                self._marks.relay_back = True
            return
        if outcome.kind == "retry" and outcome.code is None:
            self._relay_unreachable = True
        if outcome.kind == "retry":
            self.metrics.mails_retried.inc()
        delay = retry_delay_s(row["attempts"] + 1, base_s=self.retry_base_s,
                              cap_s=self.retry_cap_s) if outcome.kind == "retry" else 0.0
        self._marks.unsent.append((oid, outcome.code, outcome.text, delay,
                                   outcome.kind != "retry", outcome.kind != "dropped"))

    async def record_quietly(self) -> None:
        try:
            await self.record()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("outbox: cannot record answers yet (%s); keeping them to record later",
                        describe(exc))

    async def record(self) -> None:
        if not self._marks:
            return
        marks, self._marks = self._marks, _Marks()
        try:
            async with self.pool.acquire() as conn, (conn.transaction() if marks.sent and marks.unsent
                                                     else contextlib.nullcontext()):
                if marks.relay_back:
                    await outbox_q.retry_unreachable_now(conn)
                # one statement (the usual case) is atomic by itself: no BEGIN/COMMIT round trips
                if marks.sent:
                    await outbox_q.mark_sent(conn, marks.sent)
                changed = []
                if marks.unsent:
                    changed = await outbox_q.mark_unsent(
                        conn, marks.unsent, retry_max_hours=self.settings.current.mail.retry_max_hours)
        except BaseException:
            # keep them, ahead of anything newer, for the next try
            self._marks.sent[:0] = marks.sent
            self._marks.unsent[:0] = marks.unsent
            self._marks.relay_back = self._marks.relay_back or marks.relay_back
            raise
        dropped = {m[0] for m in marks.unsent if not m[5]}
        failed = [r["id"] for r in changed if r["status"] == "failed"]
        self.metrics.mails_failed.inc(sum(1 for oid in failed if oid not in dropped))
        self.metrics.mails_dropped.inc(sum(1 for oid in failed if oid in dropped))
