"""The privilege cache: an immutable snapshot of every principal, swapped in one assignment.

Correctness never rests on the listener. Each request reads `privilege_state.version` in the
same round trip that resolves its session; the cached principal is used only when the snapshot
is at least that new *and* the listener vouches for the cache (`valid`). A newer version makes
the request wait for one shared reload; an invalid cache (listener down) makes every request
read its principal straight from the database until the listener is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import asyncpg

from daemon.access.principals import customer_principal, employee_principal, load_principal
from daemon.access.scope import Kind, Principal
from daemon.metrics import Metrics
from daemon.queries import principals as q

log = logging.getLogger("portald.privileges")


@dataclass(frozen=True)
class Snapshot:
    """Every principal as of one `privilege_state.version`, read in one database snapshot."""

    version: int
    customers: Mapping[int, Principal] = field(default_factory=lambda: MappingProxyType({}))
    employees: Mapping[int, Principal] = field(default_factory=lambda: MappingProxyType({}))
    loaded_at: float = 0.0  # time.monotonic() when it was read

    def get(self, kind: Kind, user_id: int) -> Principal | None:
        return (self.customers if kind == "customer" else self.employees).get(user_id)


async def load_snapshot(conn: asyncpg.Connection | asyncpg.Pool) -> Snapshot:
    """Read the version and all principals in one REPEATABLE READ transaction, so the version
    names exactly the data read with it."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            return await load_snapshot(c)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await q.privilege_version(conn)
        customers = {r["id"]: customer_principal(r) for r in await q.all_customers(conn)}
        employees = {r["id"]: employee_principal(r) for r in await q.all_employees(conn)}
    return Snapshot(version=version, customers=MappingProxyType(customers),
                    employees=MappingProxyType(employees), loaded_at=time.monotonic())


class PrivilegeCache:
    """Holds the current `Snapshot`. `valid` is set by the listener once it is listening and
    has reloaded, and cleared by it the moment it cannot vouch for notifications any more."""

    def __init__(self, pool: asyncpg.Pool, metrics: Metrics | None = None) -> None:
        self.pool = pool
        self.metrics = metrics
        self.snapshot: Snapshot = Snapshot(version=0)
        self.valid = False
        self.reloads = 0
        self.direct_reads = 0
        # single flight: the reload running now, and how many reloads were ever started
        self._inflight: asyncio.Task[Snapshot] | None = None
        self._inflight_index = 0
        self._started = 0

    # -- state ------------------------------------------------------------------------------

    def invalidate(self, *, quiet: bool = False) -> None:
        if self.valid and not quiet:
            log.warning("privilege cache invalidated: principals are read from the database "
                        "until the listener is back")
        self.valid = False

    def mark_valid(self) -> None:
        if not self.valid:
            log.info("privilege cache valid at version %d", self.snapshot.version)
        self.valid = True

    def _install(self, snap: Snapshot) -> None:
        # Never go back in time: a slower reload may finish after a newer one.
        if snap.version >= self.snapshot.version:
            self.snapshot = snap
        if self.metrics is not None:
            self.metrics.privilege_reloads.inc()
            self.metrics.privilege_version.set(self.snapshot.version)

    # -- reloading --------------------------------------------------------------------------

    def _start(self, conn: asyncpg.Connection | asyncpg.Pool | None) -> asyncio.Task[Snapshot]:
        self._started += 1
        task = asyncio.get_running_loop().create_task(
            self._load(conn if conn is not None else self.pool),
            name=f"portald-privilege-reload-{self._started}")
        self._inflight, self._inflight_index = task, self._started
        task.add_done_callback(self._reload_done)
        return task

    async def reload(self, conn: asyncpg.Connection | asyncpg.Pool | None = None) -> Snapshot:
        """Return a snapshot read *after* this call began (the listener needs that after
        LISTEN). A reload already running when we were called may have read too early: wait
        for it, then share the next one (or start it)."""
        requested_after = self._started
        while True:
            task = self._inflight or self._start(conn)
            if self._inflight_index > requested_after:
                return await asyncio.shield(task)
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def at_least(self, version: int,
                       conn: asyncpg.Connection | None = None) -> Snapshot:
        """A snapshot of at least `version` (already committed, as a request just read it):
        all requests waiting for a newer version share one reload. With `conn` (a request's
        own connection), a reload this call starts runs on it rather than on a pooled one:
        requests that wait while holding their connections must not need another."""
        for _ in range(3):
            if self.snapshot.version >= version:
                break
            # A running reload may have started before `version` committed; if it comes back
            # older, the next round starts one that cannot have.
            if self._inflight is not None:
                await asyncio.shield(self._inflight)
                continue
            task = self._start(conn)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if conn is not None:
                    # the reload reads on our connection: it goes back to the pool only after
                    await asyncio.wait([task])
                raise
        return self.snapshot

    def _reload_done(self, task: asyncio.Task[Snapshot]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("privilege reload failed: %r", task.exception())

    async def _load(self, conn: asyncpg.Connection | asyncpg.Pool) -> Snapshot:
        started = time.perf_counter()
        snap = await load_snapshot(conn)
        self._install(snap)
        self.reloads += 1
        log.debug("privileges reloaded: version %d, %d customers, %d employees in %.1f ms",
                  snap.version, len(snap.customers), len(snap.employees),
                  (time.perf_counter() - started) * 1000)
        return self.snapshot

    # -- lookup -----------------------------------------------------------------------------

    def cached(self, kind: Kind, user_id: int, version: int) -> Principal | None | bool:
        """The principal straight from the snapshot (None: no such user) when the cache may
        be trusted and is at least at `version`; False when only `principal()` can say."""
        snap = self.snapshot
        if self.valid and snap.version >= version:
            return snap.get(kind, user_id)
        return False

    async def principal(self, kind: Kind, user_id: int, version: int,
                        conn: asyncpg.Connection | None = None) -> Principal | None:
        """The principal as of at least `version` (what the request just read from the
        database): from the snapshot when the cache may be trusted, else from the database
        (on `conn` when given: the request's own connection, outside any transaction)."""
        if self.valid:
            snap = self.snapshot
            if snap.version < version:
                try:
                    snap = await self.at_least(version, conn)
                except Exception as exc:  # the database decides below, or the request fails
                    log.warning("privilege reload failed, reading one principal instead: %r", exc)
                    snap = self.snapshot
            # Re-check validity: the listener may have dropped while we waited.
            if self.valid and snap.version >= version:
                return snap.get(kind, user_id)
        self.direct_reads += 1
        if self.metrics is not None:
            self.metrics.privilege_direct_reads.inc()
        return await load_principal(conn if conn is not None else self.pool, kind, user_id)
