"""Fault benchmark, standalone: the real daemon (`portald run`, a subprocess), its own
PostgreSQL cluster (so it can be restarted), an SMTP sink in its own process (aiosmtpd, noting
every acceptance with its time and Message-ID, so mails sent twice are countable), and a fixed,
modest load all along: logged-in users reading ticket lists and details (HTML and JSON API),
an employee changing tickets through the API and a writer changing them in SQL.

The faults, one after the other, each striking at a random moment 0..STRIKE_MAX_S after a burst
of notes was committed (so that mail is in flight when it strikes):
  1-5  SIGKILL of the daemon, restarted RESTART_DELAY_S later (the unit's RestartSec);
  6    the SMTP server away for SMTP_OUTAGE_S (the sink's process ends; then a new one);
  7    `pg_ctl restart -m fast` of PostgreSQL;
  8    `pg_terminate_backend` on every connection of the daemon.

Per fault it prints the mails expected / delivered / lost / sent twice, the longest delay from
the change's COMMIT (PostgreSQL's commit timestamp) to the sink's acceptance, the portal
requests answered / 5xx / errors other than 503, and how long until the daemon served normally
again. Expected mails are the outbox rows of the events the changes produced, read from the
database once the queue has drained, and checked against the recipients each event calls for.
The last line printed is the one the benchmark exists for; it exits non-zero only when the run
itself broke, never for a missed goal (the verdict is printed).

BENCH_SEED=n repeats the random moments; BENCH_KEEP=1 keeps the temp dir (logs) and says where;
BENCH_FAULTS=KIND[:COUNT],... runs other faults (kill, smtp, pg, terminate), e.g. "terminate:20"
to reproduce what one fault does more often than one run shows.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.support.faults import dataset, report  # noqa: E402
from bench.support.faults.load import (  # noqa: E402
    BENCH_APP,
    READ_PERIOD_S,
    REQUEST_TIMEOUT_S,
    WRITE_PERIOD_S,
    Db,
    Load,
    Targets,
)
from bench.support.faults.procs import Daemon, Postgres, Sink, free_port  # noqa: E402
from bench.support.faults.report import Phase, Run  # noqa: E402

# BENCH_FAULTS kind → the method that runs it
FAULT_KINDS = {"kill": "kill", "smtp": "smtp_outage", "pg": "pg_restart", "terminate": "terminate"}
FAULTS = "kill:5,smtp,pg,terminate"  # the run issue 11 asks for; BENCH_FAULTS overrides it
SMTP_OUTAGE_S = 60.0
BASELINE_S = 15.0
LEAD_MIN_S, LEAD_MAX_S = 2.0, 6.0  # steady load before a fault's burst
STRIKE_MAX_S = 0.6  # a fault strikes 0..this after its burst committed (its mail then in flight)
BURST_NOTES = 300  # each mails the ticket's 2 recipients: 600 mails, about 0.5 s of sending
RESTART_DELAY_S = 2.0  # systemd/portald.service: Restart=on-failure, RestartSec=2s
SETTLE_S = 6.0  # after a fault, at least this long before the next phase
READY_TIMEOUT_S = 60.0
LEASE_GRACE_S = 20.0  # leased mails should be out this long after their lease ran out
RETRY_DRAIN_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 180.0
# portal readers: username → whether they list all tickets in scope (employees) or the default
READERS = {"full@acme": False, "partial@acme": False, "sub1": False, "admin": True}
WRITER = "tech"

# The daemon's mail settings for this run, written to its config.toml.
BATCH_SIZE = 50  # default
POLL_INTERVAL_S = 5  # default
RETRY_MAX_HOURS = 72  # default
SMTP_TIMEOUT_S = 10  # default 30; the mail worker leases for 2 × this, see CONFIG_TEXT
LEASE_S = max(5, 2 * SMTP_TIMEOUT_S)

CONFIG_TEXT = f"""daemon configuration: [mail] batch_size {BATCH_SIZE}, poll_interval_s {POLL_INTERVAL_S}, \
retry_max_hours {RETRY_MAX_HOURS} (defaults); [smtp] timeout_s {SMTP_TIMEOUT_S} (default 30), \
so the lease is {LEASE_S} s (2 x timeout_s; 60 s by default), shortened so that five crashes \
with their lease expiries fit in the run
  [smtp] connections 4 (default): 4 sender lanes; built into the mail worker (not configurable): \
answers recorded every 10 mails \
or 1 s; retry backoff 30 s doubling per attempt, 50-100 % jitter, capped at 1 h - kept: after a \
{SMTP_OUTAGE_S:.0f} s outage it costs about two minutes at most, not hours"""

LEASED_SQL = """
    SELECT id, extract(epoch FROM locked_until)::float8 AS until FROM outbox
     WHERE status = 'queued' AND locked_until > now()"""

TERMINATE_SQL = """
    SELECT coalesce(nullif(application_name, ''), '(unnamed)') AS app, pg_terminate_backend(pid) AS done
      FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND backend_type = 'client backend' AND application_name NOT LIKE $1 || '%'"""

PENDING_SQL = """
    SELECT (SELECT count(*) FROM outbox WHERE status = 'queued')
         + (SELECT count(*) FROM mail_events WHERE NOT fanned_out)"""


def write_config(path: Path, root: Path, dsn: str, http_port: int, smtp_port: int) -> None:
    path.write_text(f"""
[database]
dsn = "{dsn}"
[http]
host = "127.0.0.1"
port = {http_port}
public_url = "http://127.0.0.1:{http_port}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
timeout_s = {SMTP_TIMEOUT_S}
from = "portald <portald@portal.bench>"
[mail]
catcher = false
batch_size = {BATCH_SIZE}
poll_interval_s = {POLL_INTERVAL_S}
retry_max_hours = {RETRY_MAX_HOURS}
[state]
dir = "{root / 'state'}"
[log]
level = "INFO"
""")


class Bench:
    """The processes, the load, and what happened when (phases, the daemon's down times)."""

    def __init__(self, pg: Postgres, sink: Sink, daemon: Daemon, seed_value: int) -> None:
        self.pg, self.sink, self.daemon = pg, sink, daemon
        self.seed = seed_value
        self.rng = random.Random(seed_value)
        self.db = Db("", "monitor")  # set once the server runs
        self.load = Load(Targets("", [], set(), [], 0, ""))  # set once the data is there
        self.tasks: list[asyncio.Task] = []
        self.supervisor: asyncio.Task | None = None
        self.supervising = asyncio.Event()  # set: stop supervising
        self.phases: list[Phase] = []
        self.down: list[tuple[float, float]] = []
        self.expect_down = False

    @property
    def base(self) -> str:
        return self.load.targets.base

    def start_load(self) -> None:
        load = self.load
        self.tasks = [asyncio.create_task(load.reader(u, everything=e)) for u, e in READERS.items()]
        self.tasks += [asyncio.create_task(load.api_writer(WRITER)),
                       asyncio.create_task(load.db_writer(Db(self.pg.dsn, "writer")))]
        self.supervisor = asyncio.create_task(self.supervise(self.supervising))

    async def stop_load(self, *, quiet: bool = False) -> None:
        """Stop the load; a task of it that failed raises here (unless `quiet`)."""
        self.load.stop.set()
        tasks, self.tasks = self.tasks, []
        await asyncio.gather(*tasks, return_exceptions=quiet)

    async def stop_supervisor(self, *, quiet: bool = False) -> None:
        self.supervising.set()
        task, self.supervisor = self.supervisor, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=quiet)

    # -- helpers --------------------------------------------------------------------------------

    def phase(self, name: str, kind: str) -> Phase:
        now = time.time()
        if self.phases:
            self.phases[-1].end = now
        self.phases.append(Phase(name, kind, now))
        return self.phases[-1]

    async def wait_ready(self) -> float | None:
        """When /readyz answers 200 (None: not within READY_TIMEOUT_S)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(f"{self.base}/readyz") as resp:
                        if resp.status == 200:
                            return time.time()
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        return None

    async def until(self, sql: str, *args: object, timeout_s: float) -> float | None:
        """Poll until `sql` answers 0; when (None: not within timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.db.run(lambda c: c.fetchval(sql, *args)) == 0:
                return time.time()
            await asyncio.sleep(0.25)
        return None

    async def lead_in(self, p: Phase) -> None:
        await asyncio.sleep(self.rng.uniform(LEAD_MIN_S, LEAD_MAX_S))
        await self.load.burst(self.db, BURST_NOTES)
        p.burst_at = time.time()
        await asyncio.sleep(self.rng.uniform(0, STRIKE_MAX_S))

    def struck(self, p: Phase) -> None:
        p.fault_at = time.time()
        p.notes.append(f"struck at {report.clock(p.fault_at)}, {p.fault_at - p.start:.1f} s into the phase, "
                       f"{p.fault_at - p.burst_at:.2f} s after a burst of {BURST_NOTES} notes "
                       f"({2 * BURST_NOTES} mails) committed")

    async def supervise(self, stop: asyncio.Event) -> None:
        """As systemd would: a daemon that exits by itself is restarted after RestartSec."""
        while not stop.is_set():
            code = self.daemon.exited()
            if code is not None and not self.expect_down:
                at = time.time()
                last = self.daemon.log_tail(600).strip().splitlines()[-1:]
                notes = self.phases[-1].notes if self.phases else []
                notes.append(
                    f"MISBEHAVIOUR: the daemon exited by itself (status {code}) at "
                    f"{report.clock(at)}; restarted {RESTART_DELAY_S:.0f} s later; last log line: "
                    f"{last[0][:300] if last else '-'}")
                await asyncio.sleep(RESTART_DELAY_S)
                self.daemon.start()
                self.down.append((at, await self.wait_ready() or time.time()))
            await asyncio.sleep(0.2)

    # -- the faults -----------------------------------------------------------------------------

    async def baseline(self) -> None:
        self.phase("baseline: no fault", "baseline")
        await asyncio.sleep(BASELINE_S)

    async def kill(self, n: int, k: int, of: int) -> None:
        p = self.phase(f"fault {n}: SIGKILL {k}/{of} of the daemon", "kill")
        await self.lead_in(p)
        self.expect_down = True
        self.struck(p)
        self.daemon.kill()
        p.fault_done = time.time()
        leased = await self.db.run(lambda c: c.fetch(LEASED_SQL))
        p.leased = {r["id"]: r["until"] for r in leased}
        p.queued_at_fault, p.pending_at_fault = await self.db.run(lambda c: c.fetchrow(
            "SELECT (SELECT count(*) FROM outbox WHERE status = 'queued'), "
            "(SELECT count(*) FROM mail_events WHERE NOT fanned_out)"))
        await asyncio.sleep(RESTART_DELAY_S - (time.time() - p.fault_at))
        self.daemon.start()
        self.expect_down = False
        p.notes.append(f"restarted {time.time() - p.fault_at:.1f} s after the kill")
        p.ready_at = await self.wait_ready()
        self.down.append((p.fault_at, p.ready_at or time.time()))
        await self.settle_leases(p)

    async def settle_leases(self, p: Phase) -> None:
        """Until the mails leased at the kill are out (their lease must run out first)."""
        started = time.time()
        if p.leased:
            lease_end = max(p.leased.values())
            await asyncio.sleep(max(0.0, lease_end - time.time()))
            await self.until("SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) "
                             "AND status = 'queued'", list(p.leased),
                             timeout_s=POLL_INTERVAL_S + LEASE_GRACE_S)
        await asyncio.sleep(max(0.0, SETTLE_S - (time.time() - started)))

    async def smtp_outage(self, n: int, k: int, of: int) -> None:
        p = self.phase(f"fault {n}: the SMTP server away for {SMTP_OUTAGE_S:.0f} s", "smtp")
        await self.lead_in(p)
        self.struck(p)
        await asyncio.to_thread(self.sink.stop)
        p.fault_done = time.time()
        await asyncio.sleep(SMTP_OUTAGE_S - (time.time() - p.fault_at))
        await asyncio.to_thread(self.sink.start)
        back = time.time()
        p.notes.append(f"the sink was back {back - p.fault_at:.1f} s after it went away")
        done = await self.until("SELECT count(*) FROM outbox WHERE status = 'queued' AND attempts > 0",
                                timeout_s=RETRY_DRAIN_TIMEOUT_S)
        p.notes.append("every mail that had failed was sent "
                       + (f"{done - back:.1f} s after the sink came back" if done
                          else f"- NOT within {RETRY_DRAIN_TIMEOUT_S:.0f} s"))
        await asyncio.sleep(SETTLE_S)

    async def pg_restart(self, n: int, k: int, of: int) -> None:
        p = self.phase(f"fault {n}: PostgreSQL restart (pg_ctl restart -m fast)", "pg")
        await self.lead_in(p)
        self.struck(p)
        await asyncio.to_thread(self.pg.restart)
        p.fault_done = time.time()
        p.notes.append(f"pg_ctl restart took {p.fault_done - p.fault_at:.1f} s")
        p.ready_at = await self.wait_ready()
        await asyncio.sleep(2 * SETTLE_S)

    async def terminate(self, n: int, k: int, of: int) -> None:
        p = self.phase(f"fault {n}: pg_terminate_backend on the daemon's connections", "terminate")
        await self.lead_in(p)
        self.struck(p)
        rows = await self.db.run(lambda c: c.fetch(TERMINATE_SQL, BENCH_APP))
        p.fault_done = time.time()
        apps = Counter(r["app"] for r in rows if r["done"])
        p.notes.append(f"terminated {sum(apps.values())} connections: "
                       + ", ".join(f"{count} {app}" for app, count in sorted(apps.items())))
        p.ready_at = await self.wait_ready()
        await asyncio.sleep(2 * SETTLE_S)

    async def faults(self, plan: list[str]) -> None:
        await self.baseline()
        for n, kind in enumerate(plan, 1):
            k = plan[:n].count(kind)
            await getattr(self, FAULT_KINDS[kind])(n, k, plan.count(kind))


def fault_plan(spec: str) -> list[str]:
    """'kill:5,smtp' → ['kill', 'kill', 'kill', 'kill', 'kill', 'smtp']."""
    plan = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, _, count = part.partition(":")
        if kind not in FAULT_KINDS or not (count or "1").isdigit():
            raise SystemExit(f"BENCH_FAULTS: {part!r} is not KIND[:COUNT] with KIND one of "
                             f"{', '.join(FAULT_KINDS)}")
        plan += [kind] * int(count or 1)
    return plan


def print_header(pg: Postgres, seed: int) -> None:
    print(f"machine: {os.cpu_count()} CPU(s); PostgreSQL {pg.version()} (a private cluster, "
          f"fsync on, track_commit_timestamp on), SMTP sink (aiosmtpd) and `portald run` in "
          f"separate processes; seed {seed}")
    print(CONFIG_TEXT)
    print(f"load (fixed): {len(READERS)} portal readers ({', '.join(READERS)}), each one request "
          f"per {READ_PERIOD_S:g} s (HTML list, HTML ticket, API list, API ticket in turn); "
          f"{WRITER} through the API and a writer in SQL, each one change per {WRITE_PERIOD_S:g} s "
          f"(notes and reassignments on {dataset.BENCH_TICKETS} tickets whose recipients are admin and tech)")
    print(f"faults: each strikes 0-{STRIKE_MAX_S:g} s after a burst of {BURST_NOTES} notes; a killed "
          f"daemon is restarted after {RESTART_DELAY_S:g} s (the unit's RestartSec), and so is one "
          f"that exits by itself")
    print(f"delay: commit (pg_xact_commit_timestamp of the change) → accepted by the sink; "
          f"'normal' is under {report.NORMAL_DELAY_S:g} s")
    print(f"requests: ok = expected status (200 for pages, 2xx for the API); 503 = the daemon's "
          f"'database away' answer (allowed); refused = TCP connection refused and dropped = "
          f"connection broken in flight, both only counted apart while the daemon was down "
          f"(killed or exited → ready again); errors other than 503 = any other 5xx or status "
          f"(a redirect to the login too), a timeout after {REQUEST_TIMEOUT_S:g} s, any other "
          f"transport error, and refused/dropped while the daemon was up", flush=True)


async def set_up(root: Path, bench: Bench, http_port: int) -> dict[int, set[int]]:
    """PostgreSQL (with commit timestamps), the sink, the demo data and the bench's tickets,
    the daemon started and its set-up mail sent; the recipients of the bench's tickets."""
    await dataset.enable_commit_timestamps(bench.pg)
    bench.sink.start()
    write_config(bench.daemon.config_path, root, bench.pg.dsn, http_port, bench.sink.port)
    await asyncio.to_thread(bench.daemon.cli, "demo")
    targets, recipients = await dataset.prepare(bench.db, f"http://127.0.0.1:{http_port}")
    bench.load = Load(targets)
    print_header(bench.pg, bench.seed)
    bench.daemon.start()
    if await bench.wait_ready() is None:
        raise RuntimeError("the daemon did not start:\n" + bench.daemon.log_tail())
    if await bench.until(PENDING_SQL, timeout_s=DRAIN_TIMEOUT_S) is None:
        raise RuntimeError("the set-up's mails did not drain")
    return recipients


async def run_bench(root: Path, seed_value: int, plan: list[str]) -> None:
    started = time.monotonic()
    pg = Postgres(root / "pg")
    bench = Bench(pg, Sink(free_port()), Daemon(root / "config.toml", root / "daemon.log"),
                  seed_value)
    try:
        await asyncio.to_thread(pg.start)
        bench.db = Db(pg.dsn, "monitor")
        recipients = await set_up(root, bench, free_port())
        first_event = await bench.db.run(
            lambda c: c.fetchval("SELECT coalesce(max(id), 0) FROM mail_events"))
        bench.start_load()
        await bench.faults(plan)
        await bench.stop_load()
        bench.phases[-1].end = time.time()
        drained = await bench.until(PENDING_SQL, timeout_s=DRAIN_TIMEOUT_S)
        await bench.stop_supervisor()
        await asyncio.sleep(1.0)  # the sink's last lines
        await finish(bench, first_event, recipients, drained, started)
    finally:
        await bench.stop_load(quiet=True)
        await bench.stop_supervisor(quiet=True)
        await bench.db.close()
        bench.daemon.stop()
        bench.sink.stop()
        await asyncio.to_thread(pg.destroy)


async def finish(bench: Bench, first_event: int, recipients: dict[int, set[int]],
                 drained: float | None, started: float) -> None:
    accepted = bench.sink.snapshot()
    mails = await bench.db.run(lambda c: report.collect_mails(c, first_event, accepted))
    events, short, missing = await bench.db.run(lambda c: report.check_fanout(c, first_event, recipients))
    run = Run(bench.phases, mails, bench.load.requests, bench.down, short, missing, BATCH_SIZE, events)
    report.print_phases(run)
    if drained is None:
        print(f"the queue did NOT drain within {DRAIN_TIMEOUT_S:.0f} s after the load stopped")
    print(f"SQL writer: {bench.load.db_changes['committed']} changes committed, "
          f"{bench.load.db_changes['failed']} failed (database away); daemon started "
          f"{bench.daemon.starts} times; run took {time.monotonic() - started:.0f} s")
    findings = report.log_findings(bench.daemon.log_path, REPO)
    print(f"daemon log: {len(findings)} kinds of ERROR line" + (":" if findings else ""))
    for line in findings:
        print(line)
    report.print_totals(run)


def main() -> int:
    seed = int(os.environ.get("BENCH_SEED") or random.randrange(1_000_000))
    plan = fault_plan(os.environ.get("BENCH_FAULTS") or FAULTS)
    root = Path(tempfile.mkdtemp(prefix="portald-bench-faults-"))
    root.chmod(0o755)  # the embedded server may run as another user
    keep = bool(os.environ.get("BENCH_KEEP"))
    try:
        asyncio.run(run_bench(root, seed, plan))
    finally:
        if keep:
            print(f"kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
