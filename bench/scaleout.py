"""Scale-out benchmark, standalone: its own PostgreSQL (temp dir), up to three real daemons
(`portald run` processes, each a full daemon: portal, outbox worker, scheduler) on it, HAProxy
(Debian's package) in front of them, `wrk` (Debian's package) as the load generator, and an
aiosmtpd sink in a process of its own.

(a) Portal throughput through HAProxy with 1, 2 and 3 daemons behind it: the customer ticket
    list page (GET /tickets) and the JSON list (GET /api/v1/tickets) as full@acme (5,000
    tickets, 200 of them in the customer's account), wrk with CONNECTIONS connections for
    DURATION_S after WARMUP_S, a Lua script sending the session cookie. All three daemons run
    throughout; those not behind the balancer for a measurement idle (their CPU is counted).
(b) Mail drain with 1 and 3 daemons: DRAIN_MAILS queued mails (made the real way: notes →
    events → fan-out) to the sink, from the first mail accepted to the last.

The daemons, PostgreSQL, HAProxy, wrk and the sink all run on this machine: on a machine with
fewer cores than processes, the machine is the bound, not the number of daemons. So each line
also says how much CPU (user + system seconds, from /proc; wrk's from its rusage) each part
used during the measurement, how busy the whole machine was (other load shows there), and how
much CPU one request (one mail) cost in all: with the cores saturated, more daemons cannot add
throughput, and the CPU per request shows what spreading the work over more processes costs.
The last line is the one this benchmark exists for: `throughput_3_over_1=…
cpu_per_request_3_over_1=…` (the list page; then the JSON list and the mail drain).

Environment: BENCH_DURATION_S (default 5), BENCH_WARMUP_S (1), BENCH_CONNECTIONS (32),
BENCH_DRAIN_MAILS (5000).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.support.cpu import CLK_TCK, cpu_s, postgres_cpu_s  # noqa: E402
from bench.support.wrk import script as wrk_script  # noqa: E402
from daemon.config import load_config  # noqa: E402
from daemon.db import migrations  # noqa: E402
from daemon.db.embedded import EmbeddedPostgres, free_port  # noqa: E402
from daemon.dev.demo import load_demo  # noqa: E402
from daemon.dev.demo_data import DEMO_PASSWORD  # noqa: E402
from daemon.mail import fanout  # noqa: E402
from daemon.mail.identity import MailIdentity  # noqa: E402

DURATION_S = float(os.environ.get("BENCH_DURATION_S", 5))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", 1))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 32))
DRAIN_MAILS = int(os.environ.get("BENCH_DRAIN_MAILS", 5000))
DRAIN_TICKETS = 100
TICKETS = 5_000
CUSTOMER_TICKETS = 200
DAEMONS = ("d1", "d2", "d3")
START_TIMEOUT_S = 60
DRAIN_TIMEOUT_S = 600

# -- data ---------------------------------------------------------------------------------------

# A bulk load as a restore would do it, without per-row triggers (their mail events are not
# what this measures); every 25th ticket is Acme's, the rest spread over other accounts.
LOAD_SQL = """
SET session_replication_role = replica;
INSERT INTO accounts (name) SELECT 'Bulk ' || g FROM generate_series(1, 50) g;
INSERT INTO tickets (account_id, description, priority, status, created_at, updated_at, closed_at)
SELECT CASE WHEN g % 25 = 0 AND g / 25 <= {customer} THEN {acme}
            ELSE a.ids[1 + g % array_length(a.ids, 1)] END,
       'Bench ' || g || ': printer ' || (g % 97) || ' reports error ' || left(md5(g::text), 8),
       (ARRAY['low', 'normal', 'high', 'urgent'])[1 + g % 4],
       (ARRAY['open', 'in_progress', 'waiting', 'closed'])[1 + g % 4],
       now() - make_interval(mins => {total} - g), now() - make_interval(mins => {total} - g),
       CASE WHEN g % 4 = 3 THEN now() END
  FROM generate_series(1, {total}) g,
       (SELECT array_agg(id) AS ids FROM accounts WHERE name LIKE 'Bulk %') a;
SET session_replication_role = origin;
ANALYZE;
"""


async def load_data(conn: asyncpg.Connection) -> dict[str, int]:
    await migrations.migrate(conn)
    await load_demo(conn)
    acme = await conn.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
    existing = await conn.fetchval("SELECT count(*) FROM tickets")
    await conn.execute(LOAD_SQL.format(customer=CUSTOMER_TICKETS, acme=acme, total=TICKETS - existing))
    return dict(await conn.fetchrow(
        """SELECT (SELECT count(*) FROM tickets) AS tickets,
                  (SELECT count(*) FROM tickets WHERE account_id = $1) AS customer""", acme))


async def queue_mails(conn: asyncpg.Connection, cfg) -> list[int]:
    """DRAIN_MAILS outbox rows, made the real way (notes → events → fan-out), parked (status
    'failed') until `requeue` puts them all back at once."""
    acme = await conn.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
    tech = await conn.fetchval("SELECT id FROM employees WHERE username = 'tech'")
    sub1 = await conn.fetchval("SELECT id FROM employees WHERE username = 'sub1'")
    identity = MailIdentity.from_config(cfg)
    while (await fanout.fan_out(conn, identity=identity)).events:  # what came before
        pass
    await conn.execute("UPDATE outbox SET status = 'sent' WHERE status = 'queued'")
    tickets = [r["id"] for r in await conn.fetch(
        """INSERT INTO tickets (account_id, description)
           SELECT $1, 'drain ' || g || E'\nwith a second line' FROM generate_series(1, $2) g
           RETURNING id""", acme, DRAIN_TICKETS)]
    await conn.execute("INSERT INTO ticket_recipients SELECT t, $2 FROM unnest($1::bigint[]) t",
                       tickets, tech)
    await conn.execute("UPDATE mail_events SET fanned_out = true WHERE NOT fanned_out")
    await conn.execute(
        """INSERT INTO history_notes (ticket_id, author_employee_id, body)
           SELECT t, $2, 'Checked the cabling, replaced patch cable ' || g || E'.\nWill follow up tomorrow.'
             FROM unnest($1::bigint[]) t, generate_series(1, $3) g""",
        tickets, sub1, DRAIN_MAILS // DRAIN_TICKETS)
    while (await fanout.fan_out(conn, identity=identity)).events:
        pass
    ids = [r["id"] for r in await conn.fetch(
        "UPDATE outbox SET status = 'failed' WHERE status = 'queued' AND event = 'note' RETURNING id")]
    assert len(ids) == DRAIN_MAILS, len(ids)
    return ids


async def requeue(conn: asyncpg.Connection, ids: list[int]) -> None:
    """All at once, as `portald admin outbox retry` does one: the requeue trigger wakes every
    daemon's senders by NOTIFY."""
    await conn.execute("""UPDATE outbox SET status = 'queued', sent_at = NULL, attempts = 0,
                                 last_code = NULL, last_error = NULL, next_attempt_at = now(),
                                 locked_until = NULL, locked_by = NULL
                           WHERE id = ANY($1::bigint[])""", ids)


async def park(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute("UPDATE outbox SET status = 'failed' WHERE id = ANY($1::bigint[])", ids)
    await conn.execute("VACUUM ANALYZE outbox")


# -- processes ------------------------------------------------------------------------------------

SINK_CODE = r"""
import sys, threading, time
from aiosmtpd.controller import Controller

count, lock = [0, 0, 0], threading.Lock()

class Handler:
    async def handle_DATA(self, server, session, envelope):
        now = time.monotonic_ns()
        with lock:
            if not count[0]:
                count[1] = now
            count[0] += 1
            count[2] = now
        return "250 OK"

controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]),
                        server_hostname="localhost")
controller.start()
print("ready", flush=True)
for line in sys.stdin:  # each line asks: how many so far, first and last at (ns); "reset"
    with lock:
        if line.strip() == "reset":
            count[:] = [0, 0, 0]
        print(*count, flush=True)
"""


class Sink:
    """aiosmtpd in its own process; it counts what it accepts and when (CLOCK_MONOTONIC)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", SINK_CODE, str(self.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        self._lock = threading.Lock()

    def ask(self, what: str = "count") -> tuple[int, float, float]:
        with self._lock:
            self.proc.stdin.write(what + "\n")
            self.proc.stdin.flush()
            n, first, last = map(int, self.proc.stdout.readline().split())
        return n, first / 1e9, last / 1e9

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Daemon:
    def __init__(self, name: str, root: Path, dsn: str, smtp_port: int, public_url: str) -> None:
        self.name, self.port = name, free_port()
        state = root / name
        state.mkdir()
        self.config = state / "config.toml"
        self.config.write_text(f"""
[database]
dsn = "{dsn}"
[http]
host = "127.0.0.1"
port = {self.port}
public_url = "{public_url}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "portald <portald@portal.bench>"
[mail]
poll_interval_s = 1
[state]
dir = "{state / 'state'}"
[log]
level = "WARNING"
""")
        self.log = state / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(self.config), "run"],
                                         cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon {self.name} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if http_get(self.port, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"daemon {self.name} did not become ready")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# The balancer as tests/integration/test_scaleout.py runs it (the reasons are given there, in
# tests/support/scaleout.py), without the request log.
HAPROXY_CFG = """global
    stats socket {sock} mode 600 level admin
defaults
    mode http
    no log
    timeout connect 1s
    timeout client 30s
    timeout server 10s
    timeout http-request 10s
    timeout http-keep-alive 30s
    timeout queue 5s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option forwardfor
frontend portal
    bind 127.0.0.1:{port}
    default_backend daemons
backend daemons
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-request disable-l7-retry unless METH_GET
    default-server check inter 500ms fastinter 200ms downinter 500ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
{servers}
"""


class Haproxy:
    def __init__(self, binary: str, root: Path, port: int, daemons: list[Daemon]) -> None:
        self.sock = root / f"haproxy-{len(daemons)}.sock"
        self.config = root / f"haproxy-{len(daemons)}.cfg"
        self.config.write_text(HAPROXY_CFG.format(
            sock=self.sock, port=port,
            servers="\n".join(f"    server {d.name} 127.0.0.1:{d.port}" for d in daemons)))
        self.names = [d.name for d in daemons]
        self.proc = subprocess.Popen([binary, "-db", "-f", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.proc.stderr.read().decode()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.sock))
                    s.sendall(b"show stat\n")
                    text = b"".join(iter(lambda: s.recv(65536), b"")).decode()
                rows = [r.split(",") for r in text.splitlines()[1:] if r]
                up = {r[1] for r in rows if r[0] == "daemons" and r[17] == "UP"}
                if up >= set(self.names):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("haproxy: not every daemon UP")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all processes, ours or not), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class Meter:
    """CPU seconds of each part between start() and stop()."""

    def __init__(self, pg_datadir: Path) -> None:
        self.pg_datadir = pg_datadir
        self.pids: dict[str, list[int]] = {}

    def _now(self) -> dict[str, float]:
        now = {name: sum(cpu_s(p) for p in pids) for name, pids in self.pids.items()}
        now["postgres"] = postgres_cpu_s(self.pg_datadir)
        now["machine"] = machine_busy_s()
        now["wall"] = time.monotonic()
        return now

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        end = self._now()
        return {k: end[k] - self._start[k] for k in end}


def ours(used: dict[str, float]) -> float:
    return sum(v for k, v in used.items() if k not in ("wall", "machine"))


def describe_cpu(used: dict[str, float], per: int, unit: str) -> str:
    total, wall = ours(used), used["wall"]
    return (", ".join(f"{k} {v:.2f} s" for k, v in used.items() if k not in ("wall", "machine"))
            + f" = {total:.2f} s in {wall:.2f} s ({total / wall:.2f} of {os.cpu_count()} cores; "
            f"the machine busy {used['machine'] / wall:.2f}), {total / per * 1e3:.3f} ms CPU/{unit}")


# -- (a) the portal -------------------------------------------------------------------------------


def http_get(port: int, path: str, cookie: str = "") -> tuple[int, bytes]:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def login(port: int, username: str) -> str:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/api/v1/login", body=json.dumps({"username": username, "password": DEMO_PASSWORD}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"login as {username}: {r.status}")
        return r.getheader("Set-Cookie").split(";", 1)[0]
    finally:
        c.close()


def spawn_wrk(wrk: str, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([wrk, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def measure_portal(wrk: str, script: Path, port: int, path: str, meter: Meter) -> tuple[dict, dict]:
    """Warm up, then measure: req/s, latency, and the CPU of each part."""
    args = ["-t1", f"-c{CONNECTIONS}", "-s", str(script), f"http://127.0.0.1:{port}{path}"]
    warm = spawn_wrk(wrk, [f"-d{WARMUP_S:g}s", *args])
    warm.communicate()
    meter.start()
    proc = spawn_wrk(wrk, [f"-d{DURATION_S:g}s", *args])
    out = b""
    assert proc.stdout is not None
    while chunk := proc.stdout.read(65536):
        out += chunk
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    used = meter.stop()
    used["wrk"] = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr.read().decode()}")
    return json.loads(out.decode().strip().splitlines()[-1]), used


def portal_part(wrk: str, haproxy: str, root: Path, daemons: list[Daemon], meter: Meter) -> dict:
    lb_port = free_port()
    results: dict[tuple[str, int], tuple[dict, dict]] = {}
    for n in (1, 2, 3):
        lb = Haproxy(haproxy, root, lb_port, daemons[:n])
        try:
            lb.wait_up()
            meter.pids = {"daemons": [d.proc.pid for d in daemons], "haproxy": [lb.proc.pid]}
            cookie = login(lb_port, "full@acme")
            for key, path in (("list", "/tickets"), ("json", "/api/v1/tickets")):
                status, _ = http_get(lb_port, path, cookie)
                if status != 200:
                    raise RuntimeError(f"{path} as full@acme answers {status}, not 200")
                script = wrk_script(root, "cookie", cookie)
                results[(key, n)] = measure_portal(wrk, script, lb_port, path, meter)
                if results[(key, n)][0]["errors"] or results[(key, n)][0]["bad_status"]:
                    raise RuntimeError(f"errors under load: {results[(key, n)][0]}")
            if http_get(lb_port, "/api/v1/me", cookie)[0] != 200:
                raise RuntimeError("the session stopped working under load")
        finally:
            lb.stop()
    return results


# -- (b) the mail drain ---------------------------------------------------------------------------


def drain(daemons: list[Daemon], sink: Sink, conn_loop, conn, ids: list[int], meter: Meter) -> tuple[float, dict]:
    sink.ask("reset")
    for d in daemons:
        d.start()
    for d in daemons:
        d.wait_ready()
    meter.pids = {"daemons": [d.proc.pid for d in daemons], "sink": [sink.proc.pid]}
    conn_loop.run_until_complete(requeue(conn, ids))
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    meter_started = False
    while time.monotonic() < deadline:
        n, first, last = sink.ask()
        if n and not meter_started:
            meter.start()
            meter_started = True
            metered_from = n
        if n >= len(ids):
            break
        time.sleep(0.01)
    else:
        raise RuntimeError(f"only {n} of {len(ids)} mails arrived")
    used = meter.stop()
    for d in daemons:
        d.stop()
    used["mails"] = n - metered_from
    return (n - 1) / (last - first), used


# -- the report -----------------------------------------------------------------------------------


def main() -> None:
    wrk = shutil.which("wrk")
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    missing = [name for name, path in (("wrk", wrk), ("haproxy", haproxy)) if path is None]
    if missing:
        raise SystemExit(f"bench/scaleout.py needs {' and '.join(missing)}: "
                         f"apt-get install {' '.join(missing)} (.ci/run installs them)")
    version = subprocess.run([haproxy, "-v"], capture_output=True, text=True).stdout.split()[2]
    root = Path(tempfile.mkdtemp(prefix="portald-bench-"))
    root.chmod(0o755)  # the embedded server runs as `nobody` under root
    pg = EmbeddedPostgres(root / "pg")
    sink = Sink()
    daemons: list[Daemon] = []
    loop = asyncio.new_event_loop()
    try:
        dsn = pg.start()
        conn = loop.run_until_complete(asyncpg.connect(dsn))
        data = loop.run_until_complete(load_data(conn))
        daemons = [Daemon(name, root, dsn, sink.port, "http://portal.bench") for name in DAEMONS]
        meter = Meter(pg.datadir)
        print(f"machine: {os.cpu_count()} CPU(s); PostgreSQL, HAProxy {version}, each daemon, wrk and "
              f"the SMTP sink are processes of their own on it")
        print(f"data: {data['tickets']:,} tickets, {data['customer']:,} in the customer's account; "
              f"wrk: 1 thread, {CONNECTIONS} connections, {DURATION_S:g} s per measurement after "
              f"{WARMUP_S:g} s of warm-up")
        for d in daemons:
            d.start()
        for d in daemons:
            d.wait_ready()
        portal = portal_part(wrk, haproxy, root, daemons, meter)
        for d in daemons:
            d.stop()
        labels = {"list": "list page (GET /tickets, full@acme)", "json": "JSON list (GET /api/v1/tickets, full@acme)"}
        for key, label in labels.items():
            print(f"(a) {label}, through HAProxy:")
            for n in (1, 2, 3):
                r, used = portal[(key, n)]
                rps = r["requests"] / (r["duration_us"] / 1e6)
                print(f"    {n} daemon{'s' if n > 1 else ' '}: {rps:6.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                      f"p99 {r['p99_ms']:6.1f} ms;  CPU {describe_cpu(used, r['requests'], 'request')}",
                      flush=True)

        cfg = load_config(daemons[0].config)
        ids = loop.run_until_complete(queue_mails(conn, cfg))
        drains = {}
        for n in (1, 3):
            rate, used = drain(daemons[:n], sink, loop, conn, ids, meter)
            mails = int(used.pop("mails"))
            drains[n] = (rate, used, mails)
            print(f"(b) mail drain, {DRAIN_MAILS:,} queued mails to the sink, {n} daemon{'s' if n > 1 else ' '}: "
                  f"{rate:5.0f} mails/s;  CPU {describe_cpu(used, mails, 'mail')}", flush=True)
            loop.run_until_complete(park(conn, ids))
        loop.run_until_complete(conn.close())

        def per_request(key: str, n: int) -> float:
            r, used = portal[(key, n)]
            return ours(used) / r["requests"]

        def rate(key: str, n: int) -> float:
            r, _ = portal[(key, n)]
            return r["requests"] / r["duration_us"]

        def drain_cpu(n: int) -> float:
            _, used, mails = drains[n]
            return ours(used) / mails

        print(f"throughput_3_over_1={rate('list', 3) / rate('list', 1):.2f} "
              f"cpu_per_request_3_over_1={per_request('list', 3) / per_request('list', 1):.2f} "
              f"json_throughput_3_over_1={rate('json', 3) / rate('json', 1):.2f} "
              f"json_cpu_per_request_3_over_1={per_request('json', 3) / per_request('json', 1):.2f} "
              f"drain_3_over_1={drains[3][0] / drains[1][0]:.2f} "
              f"drain_cpu_per_mail_3_over_1={drain_cpu(3) / drain_cpu(1):.2f}")
    finally:
        for d in daemons:
            d.stop()
        sink.stop()
        loop.close()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
