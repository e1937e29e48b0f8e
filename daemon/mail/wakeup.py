"""The mail worker's own LISTEN connection on `portald_mail`: a notification only wakes the
fan-out or the senders, the poll every [mail] poll_interval_s still finds everything (the
table is the truth). It probes its connection and reconnects with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import asyncpg

from daemon.mail.ledger import describe
from daemon.queries import health

log = logging.getLogger("portald.outbox")

CHANNEL = "portald_mail"
LISTEN_PROBE_INTERVAL_S = 10.0
LISTEN_PROBE_TIMEOUT_S = 5.0
LISTEN_CONNECT_TIMEOUT_S = 10.0
ERROR_BACKOFF_MIN_S = 0.5  # database trouble: first pause, doubling …
ERROR_BACKOFF_MAX_S = 30.0  # … up to this


class MailWakeup:
    """Calls `on_outbox` for a notification about new outbox rows, `on_events` for one about
    new events, and `on_connect` each time it (re)starts listening."""

    def __init__(self, dsn: str, *, on_outbox: Callable[[], None], on_events: Callable[[], None],
                 on_connect: Callable[[], None], stopping: asyncio.Event) -> None:
        self.dsn = dsn
        self._on_outbox, self._on_events, self._on_connect = on_outbox, on_events, on_connect
        self._stopping = stopping
        self.listening = False

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == "outbox":
            self._on_outbox()
        else:
            self._on_events()

    async def run(self) -> None:
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
                self._on_connect()
                await self._watch(conn, lost)
                log.warning("mail LISTEN connection lost; polling until it is back")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("mail LISTEN connection: %s; retrying in %.1f s", describe(exc), backoff)
            finally:
                self.listening = False
                if conn is not None:
                    conn.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff * random.uniform(0.8, 1.2))
            backoff = min(ERROR_BACKOFF_MAX_S, backoff * 2)

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), LISTEN_PROBE_INTERVAL_S)
            if lost.is_set():
                break
            # a connection can look alive and deliver nothing: ask it something
            async with asyncio.timeout(LISTEN_PROBE_TIMEOUT_S):
                await health.ping(conn)


class LaneBell:
    """Wake-ups for the sender lanes. A ring lets one sleeping lane go and claim (the others
    sleep on: a mail that trickles in costs one claim, not one per lane); a ring while every
    lane is busy is kept, up to one per lane, for the next lane that would sleep, so none is
    lost. `ring_all` wakes every lane (stopping, listening again)."""

    def __init__(self, lanes: int) -> None:
        self._lanes = lanes
        self._rings = 0
        self._changed = asyncio.Event()

    def ring(self) -> None:
        self._rings = min(self._lanes, self._rings + 1)
        self._changed.set()

    def ring_all(self) -> None:
        self._rings = self._lanes
        self._changed.set()

    async def wait(self, timeout_s: float) -> None:
        """Until a ring is ours, or `timeout_s` (then the lane polls all the same)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_s)
        while self._rings == 0:
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        self._rings -= 1
