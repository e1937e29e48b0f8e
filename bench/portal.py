"""Portal benchmark, standalone: its own PostgreSQL (temp dir) with 100,000 tickets, the real
portal (daemon.app.build_app) served by AppRunner/TCPSite in this process, and a load
generator in a separate process (aiohttp client, CONCURRENCY requests in flight).

Measured, each for DURATION_S after WARMUP_S (in ROUNDS round-robin slices, so that other load
on the machine falls on every target alike):
  list page    GET /tickets as full@acme (1,000 tickets in the account, each with notes,
               charges and emails)
  detail       GET /tickets/{id} as full@acme (every section of the Full group)
  api          GET /api/v1/tickets as full@acme
  sub list     GET /tickets as sub1 ("my tickets": ~300 assigned, Acme only)
  sub search   GET /tickets?q=... as sub1 (description, number and sub1's own notes)
and, in the same process and set-up, two references served by a tiny aiohttp app:
  ceiling      a handler that returns a constant
  floor        a handler that runs only the customer list query with asyncpg, returns JSON
and what the second wall costs: the list and detail pages once more, served by a second portal
on a copy of the bench's database whose tables have row-level security disabled (a bench-only
step: ALTER TABLE … DISABLE ROW LEVEL SECURITY there; the daemon still opens each request's
transaction as portald_web, so the difference is the policies alone).

Prints req/s, p50, p99 per target and the daemon's RSS, the cost of row-level security on the
list and the detail (goal < 10 % of throughput; and, steadier on a busy machine, the time it
adds when one client asks a page and its twin in turn), then LAST one line with each page's
throughput relative to the floor (goal >= 0.5x) and that cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from daemon.access.principals import find_user  # noqa: E402
from daemon.app import build_app  # noqa: E402
from daemon.config import load_config  # noqa: E402
from daemon.db import migrations  # noqa: E402
from daemon.db.embedded import EmbeddedPostgres, free_port  # noqa: E402
from daemon.dev.demo import load_demo  # noqa: E402
from daemon.dev.demo_data import DEMO_PASSWORD  # noqa: E402
from daemon.queries import tickets as tq  # noqa: E402
from web.routes import setup_web  # noqa: E402

CONCURRENCY = 32
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", 1.5))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", 6))
SOLO_S = float(os.environ.get("BENCH_SOLO_S", 2))  # one client alone, per target
PAIRED_S = float(os.environ.get("BENCH_PAIRED_S", 6))  # one client, a page and its twin in turn
ROUNDS = 6  # each target's DURATION_S is measured in this many slices, round-robin
TICKETS = 100_000
CUSTOMER_TICKETS = 1_000
SUB_TICKETS = 300
BULK_ACCOUNTS = 200
SUB_SEARCH = "printer 4"
POOL_MAX = 10
GOAL = 0.5
RLS_GOAL = 0.10  # at most this share of throughput for the policies
NO_RLS_DATABASE = "portald_bench_no_rls"

# -- data ---------------------------------------------------------------------------------------

# A bulk load, as a restore would do it: without per-row triggers (the mail events of 100,000
# new tickets are not what this measures) — then ANALYZE, so the planner knows the sizes.
LOAD_SQL = """
SET session_replication_role = replica;

INSERT INTO accounts (name) SELECT 'Bulk ' || g FROM generate_series(1, {bulk_accounts}) g;

-- {total} tickets over time (ids grow with created_at): every 100th is the measured customer's
-- ({customer} in all), the first {sub} of those assigned to sub1; the rest spread over the
-- other accounts
INSERT INTO tickets (account_id, description, priority, status, assigned_to, created_at,
                     updated_at, closed_at)
SELECT CASE WHEN mine THEN {acme} ELSE a.ids[1 + g % array_length(a.ids, 1)] END,
       CASE WHEN mine THEN 'Bench ' || k || ': printer ' || (k % 97) || ' reports error '
            ELSE 'Other ' || g || ': ' END || left(md5(g::text), 8),
       (ARRAY['low', 'normal', 'high', 'urgent'])[1 + k % 4],
       CASE WHEN k % 5 = 0 THEN 'closed' ELSE (ARRAY['open', 'in_progress', 'waiting'])[1 + k % 3] END,
       CASE WHEN mine AND k < {sub} THEN {sub1} WHEN g % 2 = 0 THEN {tech} END,
       now() - make_interval(mins => {total} - g), now() - make_interval(mins => {total} - g),
       CASE WHEN k % 5 = 0 THEN now() END
  FROM generate_series(1, {total}) g
       -- k numbers the customer's tickets 0, 1, 2, …: their status and text vary with it
       CROSS JOIN LATERAL (SELECT g % 100 = 50 AND g / 100 < {customer} AS mine,
                                  CASE WHEN g % 100 = 50 THEN g / 100 ELSE g END AS k) m,
       (SELECT array_agg(id) AS ids FROM accounts WHERE name <> 'Acme') a;

-- a few notes, charges and emails on each of the customer's bench tickets; the author is the
-- assignee, so sub1's own rows are there for sub1 to see
WITH bench AS (SELECT id, COALESCE(assigned_to, {tech}) AS by FROM tickets
                WHERE account_id = {acme} AND description LIKE 'Bench %')
INSERT INTO history_notes (ticket_id, author_employee_id, body, created_at)
SELECT b.id, b.by, 'Note ' || n || ': checked the printer queue and the driver ' || left(md5(b.id || '-' || n), 10),
       now() - make_interval(mins => 10 * (4 - n))
  FROM bench b, generate_series(1, 3) n;

WITH bench AS (SELECT id, COALESCE(assigned_to, {tech}) AS by FROM tickets
                WHERE account_id = {acme} AND description LIKE 'Bench %')
INSERT INTO charges (ticket_id, kind, description, quantity, unit_price, employee_id)
SELECT b.id, k.kind, k.what, k.quantity, k.price, b.by
  FROM bench b, (VALUES ('labor', 'On-site work', 1.5, 65.00), ('expense', 'Travel', 1, 24.50),
                        ('part', 'Toner', 2, 49.90)) AS k(kind, what, quantity, price);

WITH bench AS (SELECT id FROM tickets WHERE account_id = {acme} AND description LIKE 'Bench %')
INSERT INTO ticket_emails (ticket_id, from_addr, to_addr, subject, body, is_public, filed_by)
SELECT b.id, 'it@acme.example', 'support@msp.example', 'Printer ' || b.id || ' (' || e || ')',
       'Hello, the printer shows an error again. Regards', e = 1, {tech}
  FROM bench b, generate_series(1, 2) e;

SET session_replication_role = origin;
ANALYZE;
"""


async def load_data(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
        await load_demo(conn)
        ids = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM accounts")}
        sub1 = await conn.fetchval("SELECT id FROM employees WHERE username = 'sub1'")
        tech = await conn.fetchval("SELECT id FROM employees WHERE username = 'tech'")
        existing = await conn.fetchval("SELECT count(*) FROM tickets")
        # the ids are our own integers, so formatting them in is safe here
        await conn.execute(LOAD_SQL.format(
            bulk_accounts=BULK_ACCOUNTS, customer=CUSTOMER_TICKETS, sub=SUB_TICKETS,
            total=TICKETS - existing, acme=ids["Acme"], sub1=sub1, tech=tech))
        detail_id = await conn.fetchval(
            "SELECT max(id) FROM tickets WHERE account_id = $1 AND status <> 'closed' "
            "AND description LIKE 'Bench %'", ids["Acme"])
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM tickets) AS tickets,
                      (SELECT count(*) FROM tickets WHERE account_id = $1) AS customer,
                      (SELECT count(*) FROM tickets WHERE assigned_to = $2) AS sub,
                      (SELECT count(*) FROM history_notes) AS notes,
                      (SELECT count(*) FROM charges) AS charges,
                      (SELECT count(*) FROM ticket_emails) AS emails""", ids["Acme"], sub1)
        return {"detail_id": detail_id, **dict(counts)}
    finally:
        await conn.close()


async def copy_without_row_security(dsn: str) -> str:
    """A copy of the bench's database (after loading, nobody connected) in which every table
    that has row-level security has it disabled: the same data and plans without the policies.
    Returns its DSN."""
    source = urlsplit(dsn).path.lstrip("/")
    # from the maintenance database: a template must have no session of its own
    admin = await asyncpg.connect(urlunsplit(urlsplit(dsn)._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{NO_RLS_DATABASE}"')
        await admin.execute(f'CREATE DATABASE "{NO_RLS_DATABASE}" TEMPLATE "{source}"')
    finally:
        await admin.close()
    copy = urlunsplit(urlsplit(dsn)._replace(path=f"/{NO_RLS_DATABASE}"))
    conn = await asyncpg.connect(copy)
    try:
        tables = [r["t"] for r in await conn.fetch(
            "SELECT quote_ident(relname) AS t FROM pg_class WHERE relrowsecurity "
            "AND relnamespace = 'public'::regnamespace ORDER BY 1")]
        assert tables, "the bench's database has no table under row-level security"
        for table in tables:
            await conn.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    finally:
        await conn.close()
    return copy


# -- the references -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | str | bool | type(None)) else str(value)


def reference_app(dsn: str) -> web.Application:
    """The ceiling (a constant) and the floor (only the list page's query, as JSON), on a pool
    of the portal's size."""
    app = web.Application()

    async def pool_ctx(app: web.Application) -> Any:
        app["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=POOL_MAX)
        app["principal"] = await find_user(app["pool"], "full@acme")
        yield
        await app["pool"].close()

    async def ceiling(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def floor(request: web.Request) -> web.Response:
        rows, _ = await tq.list_tickets(request.app["pool"], request.app["principal"],
                                        tq.TicketFilter(status="open", limit=50))
        return web.json_response([{k: _plain(v) for k, v in r.items()} for r in rows])

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/ceiling", ceiling)
    app.router.add_get("/floor", floor)
    return app


# -- the load generator (a separate process) ------------------------------------------------------


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    url: str
    user: str | None  # logs in first


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _login(session: Any, base: str, username: str) -> None:
    async with session.post(f"{base}/api/v1/login",
                            json={"username": username, "password": DEMO_PASSWORD}) as resp:
        if resp.status != 200:
            raise SystemExit(f"login as {username} failed: {resp.status} {await resp.text()}")


async def _hammer(session: Any, url: str, seconds: float,
                  concurrency: int = CONCURRENCY) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while (started := time.perf_counter()) < stop:
            async with session.get(url, allow_redirects=False) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def _alternate(session_a: Any, url_a: str, session_b: Any, url_b: str,
                     seconds: float) -> tuple[list[float], list[float]]:
    """One client asking `url_a` and `url_b` in turn for `seconds`: the latencies of each."""
    got: tuple[list[float], list[float]] = ([], [])
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        for lat, session, url in ((got[0], session_a, url_a), (got[1], session_b, url_b)):
            started = time.perf_counter()
            async with session.get(url, allow_redirects=False) as resp:
                await resp.read()
            lat.append(time.perf_counter() - started)
    return got


async def client_main(spec: dict[str, Any]) -> None:
    """Warm every target up, then measure them round-robin in ROUNDS slices each: a burst of
    background load on the machine then touches every target alike, not just one."""
    import aiohttp

    targets = [Target(**t) for t in spec["targets"]]
    # one session per user and portal (the bench serves two: with and without the policies)
    sessions: dict[tuple[str | None, str], aiohttp.ClientSession] = {}
    latencies: dict[str, list[float]] = {t.key: [] for t in targets}
    elapsed = dict.fromkeys(latencies, 0.0)
    errors = dict.fromkeys(latencies, 0)

    def session_of(t: Target) -> aiohttp.ClientSession:
        return sessions[t.user, _origin(t.url)]

    try:
        for t in targets:
            if (t.user, _origin(t.url)) not in sessions:
                connector = aiohttp.TCPConnector(limit=CONCURRENCY)
                # unsafe: keep cookies of an IP-address host (the portal listens on 127.0.0.1)
                sessions[t.user, _origin(t.url)] = aiohttp.ClientSession(
                    connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))
                if t.user:
                    await _login(session_of(t), _origin(t.url), t.user)
            await _hammer(session_of(t), t.url, WARMUP_S)
        for _ in range(ROUNDS):
            for t in targets:
                print(json.dumps({"event": "start", "key": t.key}), flush=True)
                started = time.perf_counter()
                got, failed = await _hammer(session_of(t), t.url, DURATION_S / ROUNDS)
                elapsed[t.key] += time.perf_counter() - started
                print(json.dumps({"event": "stop", "key": t.key}), flush=True)
                latencies[t.key] += got
                errors[t.key] += failed
        # Latency without queueing: one client at a time. At 32 in flight, latency is mostly
        # the wait for the 31 requests ahead (Little's law), whatever a request itself costs.
        alone: dict[str, list[float]] = {}
        for t in targets:
            alone[t.key], _ = await _hammer(session_of(t), t.url, SOLO_S, concurrency=1)
            alone[t.key].sort()
        # A page and its twin without the policies, one request each in turn: whatever else
        # the machine does falls on both alike, so their medians compare even when throughput
        # figures of other slices wander.
        by_key = {t.key: t for t in targets}
        paired = {}
        for key in ("list", "detail"):
            twin = by_key[f"{key}_no_rls"]
            paired[key], paired[twin.key] = await _alternate(
                session_of(by_key[key]), by_key[key].url, session_of(twin), twin.url, PAIRED_S)
    finally:
        for s in sessions.values():
            await s.close()
    results = {}
    for key, lat in latencies.items():
        lat.sort()
        results[key] = {"rps": len(lat) / elapsed[key], "p50_ms": 1000 * statistics.median(lat),
                        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                        "requests": len(lat), "errors": errors[key],
                        "paired_p50_ms": 1000 * statistics.median(paired[key]) if key in paired else None,
                        "solo_p50_ms": 1000 * statistics.median(alone[key]),
                        "solo_p99_ms": 1000 * alone[key][min(len(alone[key]) - 1, int(len(alone[key]) * 0.99))]}
    print(json.dumps({"event": "done", "results": results}), flush=True)


# -- the server side ------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def serve_and_measure(dsn: str, no_rls_dsn: str, state: Path,
                            data: dict[str, Any]) -> dict[str, Any]:
    config_path = state / "config.toml"
    config_path.write_text(f"""
[database]
dsn = "{dsn}"
pool_min = 2
pool_max = {POOL_MAX}
[http]
host = "127.0.0.1"
port = 8080
public_url = "http://127.0.0.1:8080"
[smtp]
host = "127.0.0.1"
port = 8025
[state]
dir = "{state / 'state'}"
[log]
level = "WARNING"
""")
    cfg = load_config(config_path)
    runners = []
    ports = []
    for app in (build_app(cfg, dsn, setup_web=setup_web, background=False), reference_app(dsn),
                build_app(cfg, no_rls_dsn, setup_web=setup_web, background=False)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        ports.append(port)
    base, ref, no_rls = (f"http://127.0.0.1:{p}" for p in ports)
    targets = [
        Target("ceiling", "ceiling (trivial handler)", f"{ref}/ceiling", None),
        Target("floor", "floor (list query + JSON)", f"{ref}/floor", None),
        # each page beside its twin without the policies: adjacent slices of the round-robin
        # meet the same background load on the machine
        Target("list", "list page (full@acme)", f"{base}/tickets", "full@acme"),
        Target("list_no_rls", "list page, policies off", f"{no_rls}/tickets", "full@acme"),
        Target("detail", "detail page (full@acme)", f"{base}/tickets/{data['detail_id']}", "full@acme"),
        Target("detail_no_rls", "detail page, policies off", f"{no_rls}/tickets/{data['detail_id']}",
               "full@acme"),
        Target("api", "api list (full@acme)", f"{base}/api/v1/tickets", "full@acme"),
        Target("sub_list", "sub list (sub1, my tickets)", f"{base}/tickets", "sub1"),
        Target("sub_search", "sub search (sub1)", f"{base}/tickets?q={SUB_SEARCH.replace(' ', '+')}", "sub1"),
    ]
    spec = {"targets": [t.__dict__ for t in targets]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()

    rss: dict[str, float] = {}
    current: str | None = None
    peak = 0.0

    async def sample() -> None:
        nonlocal peak
        while True:
            value = rss_mb()
            peak = max(peak, value)
            if current is not None:
                rss[current] = max(rss.get(current, 0.0), value)
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample(), name="bench-rss")
    results: dict[str, Any] = {}
    try:
        async for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "start":
                current = event["key"]
            elif event["event"] == "stop":
                current = None
            elif event["event"] == "done":
                results = event["results"]
        if await proc.wait() != 0:
            raise SystemExit("the load generator failed")
    finally:
        sampler.cancel()
        for runner in reversed(runners):
            await runner.cleanup()
    return {"targets": targets, "results": results, "rss": rss, "peak": peak}


def report(data: dict[str, Any], measured: dict[str, Any]) -> None:
    print(f"data: {data['tickets']:,} tickets, {data['customer']:,} in the customer's account, "
          f"{data['sub']:,} assigned to sub1; {data['notes']:,} notes, {data['charges']:,} charges, "
          f"{data['emails']:,} emails")
    print(f"load: {CONCURRENCY} concurrent, {DURATION_S:g} s per target in {ROUNDS} round-robin "
          f"slices after {WARMUP_S:g} s warm-up; client in a separate process; {os.cpu_count()} CPUs")
    results = measured["results"]
    for t in measured["targets"]:
        r = results[t.key]
        errors = f", {r['errors']} errors" if r["errors"] else ""
        print(f"{t.label:30} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.1f} ms   "
              f"p99 {r['p99_ms']:6.1f} ms   one client: p50 {r['solo_p50_ms']:5.1f} ms "
              f"p99 {r['solo_p99_ms']:5.1f} ms   rss {measured['rss'].get(t.key, 0):5.0f} MB{errors}")
    steady = max(measured["rss"].values(), default=0.0)
    print(f"daemon RSS: at most {steady:.0f} MB while measured; peak {measured['peak']:.0f} MB "
          f"(logins: each argon2id check takes 64 MiB for a moment)")
    costs = {page: 1 - results[page]["rps"] / results[f"{page}_no_rls"]["rps"]
             for page in ("list", "detail")}
    print("row-level security: " + "; ".join(
        f"{page} {results[page]['rps']:.0f} req/s with the policies, "
        f"{results[f'{page}_no_rls']['rps']:.0f} without: they cost {100 * cost:.1f} % of its throughput"
        for page, cost in costs.items()) + f" (goal < {100 * RLS_GOAL:.0f} %)")
    # one client, a page and its twin in turn: the time the policies add to each request
    print("row-level security, one client asking a page and its twin in turn: " + "; ".join(
        f"{page} p50 {results[page]['paired_p50_ms']:.2f} ms with the policies, "
        f"{results[f'{page}_no_rls']['paired_p50_ms']:.2f} ms without "
        f"({100 * (1 - results[f'{page}_no_rls']['paired_p50_ms'] / results[page]['paired_p50_ms']):.1f} % "
        "of the time)" for page in ("list", "detail")))
    floor = results["floor"]["rps"]
    names = {"list": "list page", "detail": "detail", "api": "api", "sub_list": "sub list",
             "sub_search": "sub search"}
    ratios = [f"{label} {results[key]['rps'] / floor:.2f}x" + (" floor" if key == "list" else "")
              for key, label in names.items()]
    print(", ".join(ratios) + f" (goal >= {GOAL}x); row-level security costs "
          + ", ".join(f"{page} {100 * cost:.1f} %" for page, cost in costs.items())
          + f" (goal < {100 * RLS_GOAL:.0f} %)")


async def server_main(dsn: str, root: Path) -> None:
    started = time.perf_counter()
    data = await load_data(dsn)
    no_rls = await copy_without_row_security(dsn)
    print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
    measured = await serve_and_measure(dsn, no_rls, root, data)
    report(data, measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", action="store_true", help="(internal) run the load generator")
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(json.load(sys.stdin)))
        return
    root = Path(tempfile.mkdtemp(prefix="portald-bench-"))
    root.chmod(0o755)  # the embedded server runs as `nobody` under root
    pg = EmbeddedPostgres(root, fast_unsafe=True)
    try:
        asyncio.run(server_main(pg.start(), root))
    finally:
        pg.stop(force=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
