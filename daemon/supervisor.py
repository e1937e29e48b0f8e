"""`portald run --workers N`: N worker processes on one port (SO_REUSEPORT), each a whole
daemon as `portald run` is with one process (pool, privilege listener, outbox worker,
scheduler, inbound SMTP listener), under this supervisor.

- Once per daemon, here: the embedded PostgreSQL (started and migrated before any worker),
  the demo mail catcher, and the systemd protocol (the unit's NotifyAccess=main).
- Workers report the way a daemon reports to systemd, with the same code (daemon/notify.py):
  their NOTIFY_SOCKET names a datagram socket in a private directory, their WATCHDOG_USEC
  asks for a ping every WORKER_PING_S, and each datagram's sender is known by its
  credentials (SO_PASSCRED).
- READY=1 once every worker has said READY=1, i.e. its sockets listen. WATCHDOG=1 while
  every serving worker pinged within WORKER_STALE_S. A worker being started again does not
  hold the ping back: its death is handled here already; one that does not come up within
  WORKER_START_S is killed and started again.
- SIGHUP goes to every worker (each re-reads the configuration; one still starting gets it
  once it serves); READY=1 follows once the serving ones have reloaded. SIGTERM or SIGINT: STOPPING=1, then SIGTERM to every worker, each of which
  stops gracefully; exit 0 once all have stopped cleanly.
- A worker that dies is started again after a delay doubling from RESTART_MIN_S to
  RESTART_MAX_S (back to the minimum once a worker has served RESTART_RESET_S), counted in
  portald_worker_restarts_total. A worker that dies before the first READY=1 ends start-up:
  its reason (a port in use, the database away) is the whole daemon's.
- Several workers are as safe as several daemons on one database: the outbox is claimed with
  FOR UPDATE SKIP LOCKED under a lease, a scheduled job takes an advisory lock and a
  (job, slot) row, and the inbound SMTP listener shares its port as HTTP does, so a reply is
  taken by whichever worker the kernel hands the MTA's connection to.
- /metrics is the whole daemon's: prometheus-client's multiprocess mode, in the private
  directory (daemon/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import multiprocess, values

from daemon.config import Config, ConfigError, load_config
from daemon.logs import set_level
from daemon.metrics import MULTIPROC_ENV, worker_restarts
from daemon.notify import SystemdNotifier, watchdog_interval_s
from daemon.runner import SHUTDOWN_GRACE_S, StartRefused, prepared
from daemon.worker_link import Reports

log = logging.getLogger("portald.supervisor")

WORKER_PING_S = 2.0  # each worker's watchdog ping to the supervisor
WORKER_STALE_S = 3 * WORKER_PING_S  # a serving worker silent this long is not healthy
WORKER_START_S = 120.0  # from its start to READY=1
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
RESTART_RESET_S = 60.0
RELOAD_S = 10.0  # the most a reload waits for the workers' READY=1
STOP_S = SHUTDOWN_GRACE_S + 10.0  # a worker's own grace, and its clean-up after it


@dataclass
class Worker:
    slot: int
    proc: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)
    last_ping: float = 0.0
    reload_due: bool = False  # a SIGHUP came while it was starting: pass it on once it serves

    @property
    def pid(self) -> int:
        return self.proc.pid


def probe_port(host: str, port: int, what: str) -> None:
    """Refuse a port another program listens on: with SO_REUSEPORT alone, a second daemon of
    the same user would silently share it. The workers then bind it with SO_REUSEPORT."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror)
        raise StartRefused from None
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                log.error("cannot listen on %s:%d: %s (is another portald running? set %s)",
                          host, port, exc.strerror, what)
                raise StartRefused from None


class Supervisor:
    def __init__(self, *, count: int, command: list[str], env: dict[str, str],
                 config_path: Path | None) -> None:
        self.count, self.command, self.env = count, command, env
        self.config_path = config_path
        self.workers: dict[int, Worker] = {}  # slot → its current process
        self.stopping = asyncio.Event()
        self.all_ready = asyncio.Event()
        self.start_failed = asyncio.Event()
        self.serving = False
        self.notifier = SystemdNotifier()
        self.restarts = worker_restarts(None)
        self._healthy = True

    # -- what the workers report ---------------------------------------------------------------

    def on_report(self, pid: int, report: dict[str, str]) -> None:
        worker = next((w for w in self.workers.values() if w.pid == pid), None)
        if worker is None:
            return
        if report.get("WATCHDOG") == "1":
            worker.last_ping = time.monotonic()
        if report.get("READY") == "1":
            worker.last_ping = time.monotonic()
            if not worker.ready.is_set():
                log.info("worker %d (pid %d) serving", worker.slot, pid)
            worker.ready.set()
            worker.reloaded.set()
            if worker.reload_due:
                worker.reload_due = False
                self._send(worker, signal.SIGHUP)
            if len(self.workers) == self.count and all(w.ready.is_set() for w in self.workers.values()):
                self.all_ready.set()

    def healthy(self) -> bool:
        """Every serving worker pinged lately, and one serves at least."""
        now = time.monotonic()
        serving = [w for w in self.workers.values() if w.ready.is_set()]
        return bool(serving) and all(now - w.last_ping < WORKER_STALE_S for w in serving)

    # -- one slot ------------------------------------------------------------------------------

    async def _spawn(self, slot: int) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            *self.command, "--worker-slot", str(slot), "--supervisor-pid", str(os.getpid()),
            env=self.env, process_group=0)  # a Ctrl-C reaches the supervisor only: it stops them
        worker = Worker(slot, proc)
        self.workers[slot] = worker
        log.info("worker %d started (pid %d)", slot, proc.pid)
        return worker

    async def _run_one(self, worker: Worker) -> int:
        """The worker's exit code; a worker not serving within WORKER_START_S is killed."""
        exited = asyncio.ensure_future(worker.proc.wait())
        came_up = asyncio.ensure_future(worker.ready.wait())
        try:
            await asyncio.wait({exited, came_up}, timeout=WORKER_START_S,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            came_up.cancel()
        if not worker.ready.is_set() and not exited.done() and not self.stopping.is_set():
            log.error("worker %d (pid %d) not serving after %.0f s: killed", worker.slot,
                      worker.pid, WORKER_START_S)
            worker.proc.kill()
        return await exited

    async def keep(self, slot: int) -> int:
        """Run the slot's worker and start it again whenever it dies; its last exit code."""
        delay = RESTART_MIN_S
        while True:
            worker = await self._spawn(slot)
            if self.stopping.is_set():  # the stop began while it was being started
                self._send(worker, signal.SIGTERM)
            code = await self._run_one(worker)
            multiprocess.mark_process_dead(worker.pid)
            if self.stopping.is_set():
                return code
            if not self.serving:
                log.error("worker %d (pid %d) %s during start-up", slot, worker.pid, _exit(code))
                self.start_failed.set()
                return code
            if time.monotonic() - worker.started > RESTART_RESET_S:
                delay = RESTART_MIN_S
            log.error("worker %d (pid %d) %s; starting it again in %.1f s", slot, worker.pid,
                      _exit(code), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return 0
            self.restarts.inc()
            delay = min(2 * delay, RESTART_MAX_S)

    # -- the daemon ----------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        keepers = [loop.create_task(self.keep(slot), name=f"portald-worker-{slot}")
                   for slot in range(1, self.count + 1)]
        watchdog = None
        try:
            if await self._first_ready():
                self.serving = True
                log.info("serving with %d workers", self.count)
                self.notifier.ready()
                self.notifier.status(f"serving with {self.count} workers")
                interval = watchdog_interval_s()
                if interval:
                    watchdog = loop.create_task(self._watchdog(interval), name="portald-watchdog")
                await self.stopping.wait()
            return await self._stop(keepers)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _first_ready(self) -> bool:
        waits = [asyncio.ensure_future(e.wait())
                 for e in (self.all_ready, self.start_failed, self.stopping)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if self.all_ready.is_set() and not self.start_failed.is_set():
            return not self.stopping.is_set()
        self.stopping.set()
        return False

    async def _stop(self, keepers: list[asyncio.Task]) -> int:
        log.info("stopping: each worker finishes its in-flight requests and the mail being sent")
        self.notifier.stopping()
        self.stopping.set()
        self._signal_all(signal.SIGTERM)
        done, pending = await asyncio.wait(keepers, timeout=STOP_S)
        if pending:
            log.error("%d worker(s) still running after %.0f s: killed", len(pending), STOP_S)
            self._signal_all(signal.SIGKILL)
            await asyncio.wait(pending)
        codes = [task.result() for task in keepers]
        # -SIGTERM: a worker stopped while starting, before its handlers were in (nothing in
        # flight yet), by the signal's default action
        failed = self.start_failed.is_set() or bool(pending) or \
            any(code not in (0, -signal.SIGTERM) for code in codes)
        if failed:
            log.error("stopped, not cleanly (exit codes of the workers: %s)", codes)
        else:
            log.info("stopped")
        return 1 if failed else 0

    def _signal_all(self, sig: signal.Signals) -> None:
        for worker in self.workers.values():
            self._send(worker, sig)

    @staticmethod
    def _send(worker: Worker, sig: signal.Signals) -> None:
        if worker.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(sig)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():
            log.warning("%s received while stopping: ignored, the stop goes on", sig.name)
        self.stopping.set()

    def _on_sighup(self) -> None:
        if not self.stopping.is_set():
            asyncio.get_running_loop().create_task(self._reload(), name="portald-reload")

    async def _reload(self) -> None:
        """Every serving worker re-reads the configuration. One still starting gets its SIGHUP
        once it serves: sent now, it would die of it, its handlers not yet in."""
        self.notifier.reloading()
        with contextlib.suppress(ConfigError):  # the workers log the refusal, each
            set_level(load_config(self.config_path).log.level)
        serving = [w for w in self.workers.values()
                   if w.ready.is_set() and w.proc.returncode is None]
        for worker in self.workers.values():
            # one still starting may have read the file before it changed
            worker.reload_due = not worker.ready.is_set()
        for worker in serving:
            worker.reloaded.clear()
            self._send(worker, signal.SIGHUP)
        waits = [asyncio.ensure_future(w.reloaded.wait()) for w in serving]
        if waits:
            await asyncio.wait(waits, timeout=RELOAD_S)
        for wait in waits:
            wait.cancel()
        self.notifier.ready()

    async def _watchdog(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            healthy = self.healthy()
            if healthy:
                self.notifier.watchdog()
            elif self._healthy:
                log.warning("a worker stopped answering its watchdog: no ping to systemd until "
                            "every serving worker does")
            self._healthy = healthy


def _exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _worker_env(private: Path, dsn: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "NOTIFY_SOCKET")}
    env.update({"NOTIFY_SOCKET": str(private / "notify"),
                "WATCHDOG_USEC": str(int(2 * WORKER_PING_S * 1_000_000)),
                MULTIPROC_ENV: str(private / "metrics")})
    if dsn is not None:  # the embedded server this process started
        env["PORTALD_DATABASE_DSN"] = dsn
    return env


def _use_metrics_dir(directory: Path) -> None:
    directory.mkdir()
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus-client picks its value store when imported, which the CLI has done already:
    # let it pick again, so that this process's restart counter lands in the shared files
    values.ValueClass = values.get_value_class()


async def supervise(cfg: Config, *, count: int, mail_catcher: bool | None) -> int:
    """Serve with `count` worker processes until SIGTERM/SIGINT; 0 when all stopped cleanly."""
    private = Path(tempfile.mkdtemp(prefix="portald-"))
    try:
        probe_port(cfg.http.host, cfg.http.port, "[http] port")
        if cfg.inbound.enabled:
            probe_port(cfg.inbound.host, cfg.inbound.port, "[inbound] port")
        async with prepared(cfg, mail_catcher) as (dsn, caught):
            _use_metrics_dir(private / "metrics")
            command = [sys.executable, "-m", "daemon", "run"]
            if cfg.path is not None:
                command += ["--config", str(cfg.path)]
            if caught is not None:
                command.append("--mail-catcher")
            supervisor = Supervisor(count=count, command=command, config_path=cfg.path,
                                    env=_worker_env(private, None if cfg.database.dsn else dsn))
            reports = Reports(private / "notify", supervisor.on_report)
            try:
                return await supervisor.run()
            finally:
                reports.close()
    except StartRefused:
        return 1
    finally:
        shutil.rmtree(private, ignore_errors=True)
