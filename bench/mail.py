"""Mail benchmark, standalone: its own PostgreSQL (temp dir), an aiosmtpd sink in a separate
process, and the real daemon (`portald run`) as a subprocess.

(a) latency from the COMMIT of a ticket assignment (made from a separate connection) to the
    SMTP server accepting the alert, p50/p99 over LATENCY_EVENTS events (goal p99 < 250 ms);
(b) throughput of the daemon draining DRAIN_MAILS queued mails;
(c) a baseline sending the same mails with the standard library's smtplib, one connection per
    mail, sequentially (goal: (b) >= 10x (c) and >= 500 mails/s);
(d) the sink's own ceiling: the same rendered mails over persistent aiosmtplib connections,
    no database and no rendering;
(e) the inbound rate: INBOUND_REPLIES replies by mail in a row to the daemon's inbound
    listener (each quoting the alert, as a mail client does), sent from a process of its own
    over one SMTP connection and over INBOUND_MTA_CONNECTIONS side by side, each checked to be
    stored exactly once; replies/s accepted and stored (goal >= 200/s): on a ticket nobody
    else gets mail for, and again on one whose other recipient is mailed each note meanwhile;
(f) a relay across a network: a sink (its own process) answering every SMTP command
    RELAY_RTT_MS (5 ms) late; the daemon drains RELAY_MAILS mails against it with [smtp]
    connections set to each of RELAY_CONNECTIONS (4, the default, and 16), and the naive sender
    sends RELAY_NAIVE_MAILS of them (goal: the daemon >= 10x the naive sender). Against a
    loopback sink the sink's CPU is the bound; here round trips are, and the run prints the
    ceilings they put on each (connections / (4 round trips x 5 ms) for a kept session,
    1 / (7 round trips x 5 ms) for a connection per mail).

(b) and (c) run against the same sink, alternating, BENCH_ROUNDS times (default 2; the machine
may be shared, so compare within one run); the last line takes the medians. Each line says
how much CPU per mail the daemon (or the sending benchmark), the sink and PostgreSQL used,
read from /proc: the sink's CPU per mail on persistent connections bounds any sender here,
and (d) prints that bound. BENCH_PARTS (default "drain,relay,inbound") picks the parts after (a)
to run. BENCH_PYSPY=file samples the daemon with py-spy during the drain
(raw collapsed stacks; the sampling slows the daemon down a little).

The last line printed is the one the benchmark exists for.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from email.utils import parseaddr
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from bench.support.cpu import CpuMeter  # noqa: E402
from bench.support.daemon import REPLY_ADDRESS, Daemon, write_config  # noqa: E402
from bench.support.inbound import InboundResult, send_in_a_row  # noqa: E402
from bench.support.relay import (  # noqa: E402
    RELAY_CONNECTIONS,
    RELAY_MAILS,
    RELAY_NAIVE_MAILS,
    RELAY_RTT_MS,
    bound_kept,
    bound_naive,
    requeue,
)
from bench.support.senders import ceiling, machine_bound, naive, pct  # noqa: E402
from bench.support.sink import Sink  # noqa: E402
from daemon.config import load_config  # noqa: E402
from daemon.db import migrations  # noqa: E402
from daemon.db.embedded import EmbeddedPostgres, free_port  # noqa: E402
from daemon.mail import batch, fanout  # noqa: E402
from daemon.mail.identity import MailIdentity  # noqa: E402
from daemon.mail.worker import SENDER_LANES  # noqa: E402

LATENCY_EVENTS = 200
INBOUND_REPLIES = int(os.environ.get("BENCH_INBOUND_REPLIES", 1000))
INBOUND_MTA_CONNECTIONS = 4  # as an MTA delivers a busy domain (Postfix: up to 20)
DRAIN_MAILS = int(os.environ.get("BENCH_DRAIN_MAILS", 10_000))
DRAIN_TICKETS = 100
RENDER_CHUNK = 500
DAEMON_START_TIMEOUT_S = 60
DRAIN_TIMEOUT_S = 600
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 2))  # drain and naive alternate, then medians
PYSPY_OUT = os.environ.get("BENCH_PYSPY")  # a file: py-spy samples the daemon during the drain
PARTS = set(os.environ.get("BENCH_PARTS", "drain,relay,inbound").split(","))

async def seed(conn: asyncpg.Connection) -> dict[str, int]:
    acme = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
    standard = await conn.fetchval("SELECT id FROM employee_groups WHERE name = 'Standard'")
    ids = {"acme": acme}
    for name in ("alice", "bob", "carol", "dave"):
        ids[name] = await conn.fetchval(
            """INSERT INTO employees (username, full_name, email, group_id, all_accounts)
               VALUES ($1, $2, $3, $4, true) RETURNING id""",
            name, name.capitalize(), f"{name}@msp.bench", standard)
    return ids


async def wait_daemon_ready(conn: asyncpg.Connection, sink: Sink, daemon: Daemon) -> None:
    """The daemon is up when a probe ticket's alert arrives."""
    seen = sink.count()
    probe = await seed_probe(conn)
    deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(tag == probe for _, tag in sink.accepted[seen:]):
            return
        if daemon.proc.poll() is not None:
            raise RuntimeError("the daemon exited:\n" + daemon.log_path.read_text()[-2000:])
        await asyncio.sleep(0.05)
    raise RuntimeError("the daemon did not deliver its first mail in time:\n"
                       + daemon.log_path.read_text()[-2000:])


async def seed_probe(conn: asyncpg.Connection) -> str:
    acme = await conn.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
    alice = await conn.fetchval("SELECT id FROM employees WHERE username = 'alice'")
    return await conn.fetchval("INSERT INTO tickets (account_id, description, assigned_to) "
                               "VALUES ($1, 'probe', $2) RETURNING number", acme, alice)


async def measure_latency(conn: asyncpg.Connection, sink: Sink, ids: dict[str, int]) -> list[float]:
    tickets = [r["id"] for r in await conn.fetch(
        """INSERT INTO tickets (account_id, description)
           SELECT $1, 'latency ' || g FROM generate_series(1, $2) g RETURNING id""",
        ids["acme"], LATENCY_EVENTS)]
    numbers = dict(await conn.fetch("SELECT id, number FROM tickets WHERE id = ANY($1)", tickets))
    await asyncio.sleep(1.0)  # the "created" events (nobody wants them) are out of the way
    latencies = []
    for i, ticket in enumerate(tickets):
        who = ids[("bob", "carol", "dave")[i % 3]]
        seen = sink.count()
        await conn.execute("UPDATE tickets SET assigned_to = $1 WHERE id = $2", who, ticket)
        committed = time.monotonic_ns()  # autocommit: the statement's return is its COMMIT
        number = numbers[ticket]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sink.cond:
                hit = next((ns for ns, tag in sink.accepted[seen:] if tag == number), None)
                if hit is None:
                    sink.cond.wait(0.005)
            if hit is not None:
                latencies.append((hit - committed) / 1e6)
                break
            await asyncio.sleep(0)
        else:
            raise RuntimeError(f"no alert for {number}")
        await asyncio.sleep(0.01)  # events one after another, not a burst
    return latencies


async def queue_mails(conn: asyncpg.Connection, ids: dict[str, int], cfg) -> None:
    """DRAIN_MAILS outbox rows, made the real way: notes → events → fan-out."""
    tickets = [r["id"] for r in await conn.fetch(
        """INSERT INTO tickets (account_id, description)
           SELECT $1, 'drain ' || g || E'\nwith a second line' FROM generate_series(1, $2) g RETURNING id""",
        ids["acme"], DRAIN_TICKETS)]
    await conn.execute("INSERT INTO ticket_recipients SELECT t, $2 FROM unnest($1::bigint[]) t",
                       tickets, ids["bob"])
    await conn.execute("UPDATE mail_events SET fanned_out = true WHERE NOT fanned_out")
    await conn.execute(
        """INSERT INTO history_notes (ticket_id, author_employee_id, body)
           SELECT t, $2, 'Checked the cabling, replaced patch cable ' || g || E'.\nWill follow up tomorrow.'
             FROM unnest($1::bigint[]) t, generate_series(1, $3) g""",
        tickets, ids["alice"], DRAIN_MAILS // DRAIN_TICKETS)
    identity = MailIdentity.from_config(cfg)
    while (await fanout.fan_out(conn, identity=identity)).events:
        pass
    queued = await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'queued' AND event = 'note'")
    assert queued == DRAIN_MAILS, queued


def start_profiler(pid: int, out: str | None = PYSPY_OUT) -> subprocess.Popen:
    py_spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen([str(py_spy), "record", "-r", "200", "-f", "raw", "-o", str(out),
                             "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def drain(conn: asyncpg.Connection, sink: Sink, config_path: Path, log_path: Path,
                meter: CpuMeter, *, mails: int = DRAIN_MAILS) -> float:
    before = sink.count()
    daemon = Daemon(config_path, log_path)
    meter.daemon_pid = daemon.proc.pid
    profiler = None
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        metered_from = None
        while sink.count() - before < mails and time.monotonic() < deadline:
            if daemon.proc.poll() is not None:
                raise RuntimeError("the daemon exited; see its log")
            if metered_from is None and sink.count() > before:
                metered_from = sink.count() - before
                meter.start()  # from the first mail: the daemon's start-up is not the drain
                if PYSPY_OUT:
                    profiler = start_profiler(daemon.proc.pid)
            await asyncio.sleep(0.01)
        meter.stop()
        meter.mails = mails - (metered_from or 0)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        daemon.stop()
    times = sorted(ns for ns, _ in sink.accepted[before:])
    if len(times) < mails:
        raise RuntimeError(f"only {len(times)} of {mails} mails arrived")
    # from the first mail accepted to the last: the daemon's start-up is not the drain
    return (len(times) - 1) / ((times[-1] - times[0]) / 1e9)


async def render_same_mails(conn: asyncpg.Connection, cfg) -> list[tuple[str, bytes]]:
    identity = MailIdentity.from_config(cfg)
    rows = await conn.fetch("SELECT * FROM outbox WHERE event = 'note' ORDER BY id")
    out = []
    for start in range(0, len(rows), RENDER_CHUNK):
        for item in await batch.prepare_batch(conn, rows[start:start + RENDER_CHUNK], identity=identity):
            assert isinstance(item, batch.Prepared)
            out.append((item.recipient, item.data))
    return out


async def measure_inbound(conn: asyncpg.Connection, sink: Sink, ids: dict[str, int], config_path: Path,
                          log_path: Path, port: int, meter: CpuMeter) -> list[InboundResult]:
    """(e): replies in a row to a freshly started daemon's inbound listener: on a ticket with
    no other recipient (the inbound path alone), then on one whose other recipient is mailed
    each note (the whole daemon at work)."""
    daemon = Daemon(config_path, log_path)
    meter.daemon_pid = daemon.proc.pid
    results = []
    profiler = None
    try:
        await wait_daemon_ready(conn, sink, daemon)
        if PYSPY_OUT:
            profiler = start_profiler(daemon.proc.pid, f"{PYSPY_OUT}.inbound")
        for mailed, connections in ((False, 1), (False, INBOUND_MTA_CONNECTIONS), (True, 1),
                                    (True, INBOUND_MTA_CONNECTIONS)):
            meter.start()
            result = await send_in_a_row(conn, port=port, reply_to=REPLY_ADDRESS, ids=ids,
                                         count=INBOUND_REPLIES, mailed=mailed, connections=connections)
            meter.stop()
            results.append(result)
            what = "each note mailed to the ticket's other recipient" if mailed else "no other recipient"
            how = ("one SMTP connection" if connections == 1
                   else f"{connections} SMTP connections, a ticket each")
            print(f"(e) inbound, {what}: {result.replies} replies in a row over {how}, "
                  f"{result.accepted} accepted, each stored once: {'yes' if result.stored_once else 'NO'}; "
                  f"{result.rate:.0f} replies/s accepted and stored; "
                  f"{meter.describe(result.replies).replace('/mail', '/reply')}, sending process "
                  f"{result.client_cpu_s / result.replies * 1e3:.2f} ms/reply "
                  f"({result.client_cpu_s / result.seconds * 100:.0f}% of a core)", flush=True)
            print("    " + machine_bound(meter, result), flush=True)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        daemon.stop()
    return results


async def measure_loopback(conn: asyncpg.Connection, sink: Sink, mails: list[tuple[str, bytes]],
                           config_path: Path, log_path: Path, sender: str,
                           meter: CpuMeter) -> tuple[float, float]:
    """(b), (c) and (d) against the loopback sink: the medians of the drain and of the naive
    sender."""
    drains, naives = [], []
    for round_no in range(1, ROUNDS + 1):
        await requeue(conn, DRAIN_MAILS)  # the same mails again, queued as they were
        rate = await drain(conn, sink, config_path, log_path, meter)
        sent = await conn.fetchval("SELECT count(*) FROM outbox WHERE event = 'note' AND status = 'sent'")
        drains.append(rate)
        print(f"(b) drain, round {round_no}: {DRAIN_MAILS} queued mails at {rate:.0f} mails/s "
              f"({sent} marked sent); {meter.describe()}", flush=True)
        meter.daemon_pid = None
        meter.start()
        base = await asyncio.to_thread(naive, mails, sink.port, sender)
        meter.stop()
        naives.append(base)
        print(f"(c) naive smtplib, one connection per mail, sequential, round {round_no}: {len(mails)} "
              f"mails at {base:.0f} mails/s; {meter.describe(len(mails))}", flush=True)
    meter.start()
    top = await ceiling(mails, sink.port, sender, connections=SENDER_LANES)
    meter.stop()
    sink_ms = meter.used["sink"] / len(mails) * 1e3
    print(f"(d) for scale: the same rendered mails over {SENDER_LANES} persistent aiosmtplib "
          f"connections, no database, no rendering: {top:.0f} mails/s; {meter.describe(len(mails))}")
    print(f"    the sink alone costs {sink_ms:.2f} ms of CPU per mail on a persistent connection: "
          f"no sender can exceed ~{1e3 / sink_ms:.0f} mails/s against it on this machine, "
          f"i.e. {1e3 / sink_ms / statistics.median(naives):.1f}x the naive sender")
    return statistics.median(drains), statistics.median(naives)


async def measure_relay(conn: asyncpg.Connection, root: Path, dsn: str, inbound_port: int,
                        mails: list[tuple[str, bytes]], log_path: Path, sender: str,
                        meter: CpuMeter) -> tuple[dict[int, float], float]:
    """(f): drains with each [smtp] connections of RELAY_CONNECTIONS and the naive sender,
    alternating, against a sink RELAY_RTT_MS away; the medians."""
    relay = Sink(free_port(), delay_ms=RELAY_RTT_MS)
    meter.sink_pid = relay.proc.pid
    drains: dict[int, list[float]] = {n: [] for n in RELAY_CONNECTIONS}
    naives = []
    try:
        for round_no in range(1, ROUNDS + 1):
            for n in RELAY_CONNECTIONS:
                path = write_config(root, dsn, relay.port, inbound_port, connections=n,
                                    name=f"relay-{n}.toml")
                await requeue(conn, RELAY_MAILS)
                rate = await drain(conn, relay, path, log_path, meter, mails=RELAY_MAILS)
                drains[n].append(rate)
                print(f"(f) drain to a relay {RELAY_RTT_MS:g} ms away, [smtp] connections = {n}, round "
                      f"{round_no}: {RELAY_MAILS} mails at {rate:.0f} mails/s (round trips bound it at "
                      f"{bound_kept(n):.0f}); {meter.describe()}", flush=True)
            meter.daemon_pid = None
            meter.start()
            base = await asyncio.to_thread(naive, mails[:RELAY_NAIVE_MAILS], relay.port, sender)
            meter.stop()
            naives.append(base)
            print(f"(f) naive smtplib to the same relay, one connection per mail, round {round_no}: "
                  f"{RELAY_NAIVE_MAILS} mails at {base:.1f} mails/s (round trips bound it at "
                  f"{bound_naive():.1f}); {meter.describe(RELAY_NAIVE_MAILS)}", flush=True)
    finally:
        relay.stop()
    return {n: statistics.median(r) for n, r in drains.items()}, statistics.median(naives)


def summary(loopback: tuple[float, float] | None, relay: tuple[dict[int, float], float] | None,
            p99: float, inbound: list[InboundResult] | None) -> str:
    parts = []
    if relay is not None:
        rates, base = relay
        most = max(rates)
        by_n = ", ".join(f"{rates[n]:.0f} mails/s with {n}" for n in sorted(rates))
        parts.append(f"relay {RELAY_RTT_MS:g} ms away: drain {rates[most]:.0f} mails/s over {most} "
                     f"connections vs naive {base:.1f} mails/s: ratio {rates[most] / base:.1f}x "
                     f"(goal >= 10x; {by_n}; round trips allow "
                     f"{bound_kept(most) / bound_naive():.0f}x)")
    if loopback is not None:
        rate, base = loopback
        parts.append(f"loopback drain {rate:.0f} mails/s vs naive {base:.0f} mails/s: "
                     f"{rate / base:.1f}x (>= 500 mails/s)")
    parts.append(f"p99 commit→accepted {p99:.0f} ms (goal < 250 ms)")
    if inbound is not None:
        alone, alone_n, mailed, mailed_n = inbound
        n = INBOUND_MTA_CONNECTIONS
        parts.append(f"inbound {alone_n.rate:.0f} replies/s over {n} connections, {alone.rate:.0f}/s "
                     f"over one ({mailed_n.rate:.0f}/s and {mailed.rate:.0f}/s with each note mailed), "
                     f"each stored once: {'yes' if all(r.stored_once for r in inbound) else 'NO'} "
                     f"(goal >= 200/s)")
    parts.append(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")
    return "; ".join(parts)


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="portald-bench-"))
    os.chmod(root, 0o755)  # the embedded server may run as another user
    pg = EmbeddedPostgres(root / "pg")
    sink = Sink(free_port())
    try:
        dsn = await asyncio.to_thread(pg.start)
        conn = await asyncpg.connect(dsn)
        await migrations.migrate(conn)
        ids = await seed(conn)
        inbound_port = free_port()
        config_path = write_config(root, dsn, sink.port, inbound_port)
        cfg = load_config(config_path)
        log_path = root / "daemon.log"

        print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at the start; "
              "PostgreSQL, SMTP sink and daemon in separate processes")
        daemon = Daemon(config_path, log_path)
        try:
            await wait_daemon_ready(conn, sink, daemon)
            lat = await measure_latency(conn, sink, ids)
        finally:
            daemon.stop()
        p50, p99 = statistics.median(lat), pct(lat, 99)
        print(f"(a) commit → accepted over {len(lat)} assignments: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {max(lat):.1f} ms")

        meter = CpuMeter(sink_pid=sink.proc.pid, pg_datadir=pg.datadir)
        sender = parseaddr(cfg.smtp.from_)[1]
        loopback = relay = inbound = None
        if PARTS & {"drain", "relay"}:
            await queue_mails(conn, ids, cfg)
            mails = await render_same_mails(conn, cfg)
        if "drain" in PARTS:
            loopback = await measure_loopback(conn, sink, mails, config_path, log_path, sender, meter)
        if "relay" in PARTS:
            relay = await measure_relay(conn, root, dsn, inbound_port, mails, log_path, sender, meter)
            meter.sink_pid = sink.proc.pid
        if "inbound" in PARTS:
            inbound = await measure_inbound(conn, sink, ids, config_path, log_path, inbound_port, meter)
        await conn.close()
        print(summary(loopback, relay, p99, inbound))
    finally:
        sink.stop()
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
