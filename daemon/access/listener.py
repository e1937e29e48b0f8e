"""The LISTEN connection that keeps the privilege cache fresh, and vouches for it.

A dedicated asyncpg connection (never a pooled one: a pool may hand it to a query, reset it,
or close it, and LISTEN does not survive a transaction-pooling pgbouncer either). The order is
connect → LISTEN → *then* reload, so no change can slip between the load and the first
notification. While connected it probes itself: a NOTIFY sent through the pool must come back on
this connection within PROBE_TIMEOUT_S. That catches the PostgREST trap of a connection that
looks alive but delivers nothing. On any error or missed probe the cache is invalidated at once
(requests then read principals from the database) and we reconnect with exponential backoff,
reloading after each reconnect. Only cancellation ends the loop: a database restart is an
expected event, not a reason for the daemon to die.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time

import asyncpg

from daemon.access.cache import PrivilegeCache
from daemon.db.pool import CONNECT_TIMEOUT_S, OUTAGE_ERRORS, describe_connect_error
from daemon.metrics import Metrics
from daemon.queries import health

log = logging.getLogger("portald.listener")

CHANNEL = "portald_privileges"
PROBE_CHANNEL = "portald_privileges_probe"
APPLICATION_NAME = "portald-listener"

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 3.0
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 30.0
# A connection that stayed up this long earns a fresh, short backoff when it next drops.
BACKOFF_RESET_AFTER_S = 30.0
# How long start-up waits for the first LISTEN before serving anyway (from the database).
START_WAIT_S = 5.0
RELOAD_TIMEOUT_S = 30.0
STOPPING = "stopping"


class ListenerLost(Exception):
    """The connection ended or stopped delivering notifications."""


class PrivilegeListener:
    def __init__(self, dsn: str, pool: asyncpg.Pool, cache: PrivilegeCache,
                 metrics: Metrics | None = None, *, probe_interval_s: float = PROBE_INTERVAL_S,
                 probe_timeout_s: float = PROBE_TIMEOUT_S,
                 backoff_initial_s: float = BACKOFF_INITIAL_S,
                 backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self.dsn = dsn
        self.pool = pool
        self.cache = cache
        self.metrics = metrics
        # attributes, not constants, so an operator test can shorten them on a live listener
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connected = False
        self.connects = 0
        self.backend_pid: int | None = None
        self.last_probe_ok: float = 0.0  # time.monotonic()
        self.ready = asyncio.Event()  # set while listening with a fresh snapshot
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._notified_version = 0
        self._lost: str | None = None
        self._probe_token: str | None = None
        self._probe_arrived = asyncio.Event()

    @property
    def healthy(self) -> bool:
        """Listening, and the last probe came back recently (for the systemd watchdog)."""
        if not self.connected or not self.cache.valid:
            return False
        stale_after = self.probe_interval_s + self.probe_timeout_s + 1.0
        return time.monotonic() - self.last_probe_ok <= stale_after

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = self.backoff_initial_s
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                self._down(STOPPING)
                raise
            except (ListenerLost, asyncpg.PostgresError, *OUTAGE_ERRORS) as exc:
                self._down(describe_connect_error(exc) if not isinstance(exc, ListenerLost)
                           else str(exc))
            except Exception as exc:  # a bug must not stop privilege reloads for good
                log.exception("privilege listener failed unexpectedly")
                self._down(repr(exc))
            if time.monotonic() - started >= BACKOFF_RESET_AFTER_S:
                backoff = self.backoff_initial_s
            # jitter keeps several instances from reconnecting in lockstep after a restart
            delay = backoff * random.uniform(0.8, 1.2)
            log.info("privilege listener reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _down(self, reason: str) -> None:
        stopping = reason == STOPPING
        self.cache.invalidate(quiet=stopping)
        self.connected = False
        self.ready.clear()
        self.backend_pid = None
        if self.metrics is not None:
            self.metrics.listener_connected.set(0)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            # terminate, not close: a wedged backend would never answer a polite goodbye
            conn.terminate()
        if not stopping:
            log.warning("privilege listener down: %s", reason)

    async def _session(self) -> None:
        self._lost = None
        self._wake.clear()
        conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_S,
                                     server_settings={"application_name": APPLICATION_NAME})
        self._conn = conn
        conn.add_termination_listener(self._on_terminated)
        await conn.add_listener(CHANNEL, self._on_notify)
        await conn.add_listener(PROBE_CHANNEL, self._on_probe)
        self.backend_pid = conn.get_server_pid()
        # Listening now: whatever commits from here on notifies us, so this load misses nothing.
        async with asyncio.timeout(RELOAD_TIMEOUT_S):
            await self.cache.reload(conn)
        self.connected = True
        self.connects += 1
        self.last_probe_ok = time.monotonic()
        self.cache.mark_valid()
        self.ready.set()
        if self.metrics is not None:
            self.metrics.listener_connected.set(1)
        log.info("privilege listener connected (backend %s), version %d",
                 self.backend_pid, self.cache.snapshot.version)
        while True:
            # recomputed each round, so a changed probe_interval_s applies at the next wake-up
            next_probe = self.last_probe_ok + self.probe_interval_s
            timeout = max(0.0, next_probe - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            self._check_alive(conn)
            if self._notified_version > self.cache.snapshot.version:
                # Notifications that arrive during this reload set _wake again: a burst costs
                # at most one more reload, never one per change.
                async with asyncio.timeout(RELOAD_TIMEOUT_S):
                    await self.cache.reload(conn)
            if time.monotonic() >= next_probe:
                await self._probe(conn)

    def _check_alive(self, conn: asyncpg.Connection) -> None:
        if self._lost is not None or conn.is_closed():
            raise ListenerLost(self._lost or "connection closed")

    async def _probe(self, conn: asyncpg.Connection) -> None:
        token = secrets.token_hex(8)
        self._probe_token = token
        self._probe_arrived.clear()
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                # Sent through the pool, so it travels the way a privilege change's NOTIFY does.
                await health.notify(self.pool, PROBE_CHANNEL, token)
                await self._probe_arrived.wait()
        except TimeoutError:
            raise ListenerLost(f"probe not delivered within {self.probe_timeout_s:g} s") from None
        self._check_alive(conn)
        self.last_probe_ok = time.monotonic()

    # -- asyncpg callbacks (run on the loop, must not block) ---------------------------------

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            version = int(payload)
        except ValueError:
            version = self.cache.snapshot.version + 1  # unknown payload: reload to be safe
        self._notified_version = max(self._notified_version, version)
        self._wake.set()

    def _on_probe(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._probe_token:
            self._probe_arrived.set()

    def _on_terminated(self, conn: object) -> None:
        if conn is not self._conn:
            return  # a connection we already gave up on
        self._lost = "connection terminated"
        self._wake.set()
        self._probe_arrived.set()  # a probe waiting on a dead connection gives up at once

