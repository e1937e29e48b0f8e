"""Portal benchmark, standalone: its own PostgreSQL (temp dir) with 100,000 tickets
(bench/support/portal_data.py), the real daemon (`portald run`, one process, a pool of
POOL_MAX) serving the portal, and beside it the floors: a bare aiohttp + asyncpg server
(bench/support/floor.py) whose handlers run exactly the SQL of each page and write the rows
with orjson. The load generator is wrk (bench/support/wrk.py; `apt-get install wrk`), a C
program, with a Lua script that sends the session cookie: it costs a small part of what the
server it measures costs, so the two cores measure the server, not the client.

Measured, each at CONNECTIONS connections for DURATION_S after a warm-up (in ROUNDS
round-robin slices, so that other load on the machine falls on every target alike), then each
at one connection for SOLO_S:
  list page    GET /tickets as full@acme (1,000 tickets in the account)   floor: /list
  detail       GET /tickets/{id} as full@acme (every section of Full)     floor: /detail/{id}
  api          GET /api/v1/tickets as full@acme                           floor: /api
  sub list     GET /tickets as sub1 (my tickets), sub search GET /tickets?q=… as sub1
and beside each page a bare handler that sends every statement the portal sends for it (BEGIN,
the session resolved and its principal named, the page's statement, COMMIT): what is left
between the two is the portal's Python (middleware, validation, templates). For reference, a
constant handler (ceiling) and the ticket and its notes in two statements (the floor the
detail page was first measured against).

Row-level security: the list and detail pages once more, served by a second daemon on a copy
of the database whose tables have row-level security disabled (a bench-only step); the daemon
still runs each request as portald_web, so the difference is the policies alone (goal < 10 %).

Workers: when `portald run --help` offers `--workers`, the list page is also measured on a
daemon started with `--workers 2`, beside the one with a single worker.

Prints per target req/s and p50/p99 at CONNECTIONS and at one connection, with the CPU the
server and PostgreSQL spent per request; LAST one line with each page's throughput relative to
its floor and to the bare handler with its statements (goal >= GOAL) and the cost of
row-level security.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.support import wrk  # noqa: E402
from bench.support.cpu import postgres_cpu_s, tree_cpu_s  # noqa: E402
from bench.support.portal_data import copy_without_row_security, load_data  # noqa: E402
from bench.support.portal_servers import Server, floor_server, login, portal_server  # noqa: E402
from daemon.db.embedded import EmbeddedPostgres  # noqa: E402

CONNECTIONS = 32
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", 1.5))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", 6))
SOLO_S = float(os.environ.get("BENCH_SOLO_S", 2))  # one connection, per target
ROUNDS = 3
POOL_MAX = 10
GOAL = 0.7
RLS_GOAL = 0.10  # at most this share of throughput for the policies
SUB_SEARCH = "printer 4"


@dataclass
class Target:
    key: str
    label: str
    server: Server
    path: str
    user: str | None = None
    login_at: Server | None = None  # where `user` logs in (the floor has no login of its own)
    loaded: wrk.Figures | None = None
    solo: wrk.Figures | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds while loaded


def workers_supported() -> bool:
    """Whether this `portald run` takes --workers (another branch adds it)."""
    done = subprocess.run([sys.executable, "-m", "daemon", "run", "--help"], cwd=REPO,
                          capture_output=True, text=True)
    return "--workers" in done.stdout


def targets(servers: dict[str, Server], detail_id: int) -> list[Target]:
    portal, no_rls, floor = servers["portal"], servers["no_rls"], servers["floor"]
    found = [
        Target("ceiling", "ceiling (constant)", floor, "/ceiling"),
        Target("list_floor", "floor: list query", floor, "/list"),
        Target("list_same", "bare: list page's statements", floor, "/same/list", "full@acme",
               portal),
        Target("list", "list page (full@acme)", portal, "/tickets", "full@acme"),
        Target("list_no_rls", "list page, policies off", no_rls, "/tickets", "full@acme"),
        Target("detail_floor", "floor: detail query", floor, f"/detail/{detail_id}"),
        Target("detail_same", "bare: detail page's statements", floor,
               f"/same/detail/{detail_id}", "full@acme", portal),
        Target("detail", "detail page (full@acme)", portal, f"/tickets/{detail_id}", "full@acme"),
        Target("detail_no_rls", "detail page, policies off", no_rls, f"/tickets/{detail_id}",
               "full@acme"),
        Target("detail_two", "ref: ticket + notes, 2 queries", floor, f"/detail-two/{detail_id}"),
        Target("api_floor", "floor: api list query", floor, "/api"),
        Target("api_same", "bare: api list's statements", floor, "/same/api", "full@acme", portal),
        Target("api", "api list (full@acme)", portal, "/api/v1/tickets", "full@acme"),
        Target("sub_list", "sub list (sub1, my tickets)", portal, "/tickets", "sub1"),
        Target("sub_search", "sub search (sub1)", portal,
               f"/tickets?q={SUB_SEARCH.replace(' ', '+')}", "sub1"),
    ]
    if "workers2" in servers:
        found.append(Target("list_w2", "list page, --workers 2", servers["workers2"], "/tickets",
                            "full@acme"))
    return found


def measure(wrk_bin: str, root: Path, pg_datadir: Path, all_targets: list[Target]) -> None:
    cookies: dict[tuple[str, str], str] = {}
    scripts: dict[str, Path] = {}
    for t in all_targets:
        cookie = None
        if t.user:
            at = t.login_at or t.server
            key = (at.name, t.user)
            if key not in cookies:
                cookies[key] = login(at.port, t.user)
            cookie = cookies[key]
        scripts[t.key] = wrk.script(root, t.key, cookie)
        warm = wrk.run(wrk_bin, t.server.url(t.path), scripts[t.key], connections=CONNECTIONS,
                       seconds=WARMUP_S)
        if warm.errors or not warm.requests:
            raise SystemExit(f"{t.label}: {warm.errors} errors of {warm.requests} in the warm-up")
    for _ in range(ROUNDS):
        for t in all_targets:
            before = (tree_cpu_s(t.server.pid), postgres_cpu_s(pg_datadir))
            got = wrk.run(wrk_bin, t.server.url(t.path), scripts[t.key], connections=CONNECTIONS,
                          seconds=DURATION_S / ROUNDS)
            t.cpu["server"] = t.cpu.get("server", 0.0) + tree_cpu_s(t.server.pid) - before[0]
            t.cpu["db"] = t.cpu.get("db", 0.0) + postgres_cpu_s(pg_datadir) - before[1]
            if t.loaded is None:
                t.loaded = got
            else:
                t.loaded.add(got)
    for t in all_targets:
        t.solo = wrk.run(wrk_bin, t.server.url(t.path), scripts[t.key], connections=1,
                         seconds=SOLO_S)


def report(data: dict[str, Any], all_targets: list[Target]) -> None:
    print(f"data: {data['tickets']:,} tickets, {data['customer']:,} in the customer's account, "
          f"{data['sub']:,} assigned to sub1; {data['notes']:,} notes, {data['charges']:,} "
          f"charges, {data['emails']:,} emails")
    print(f"load: wrk, {CONNECTIONS} connections, {DURATION_S:g} s per target in {ROUNDS} "
          f"round-robin slices after {WARMUP_S:g} s warm-up; then 1 connection for {SOLO_S:g} s; "
          f"{os.cpu_count()} CPUs; p50/p99: median of the slices'")
    by = {t.key: t for t in all_targets}
    for t in all_targets:
        assert t.loaded is not None and t.solo is not None
        n = max(t.loaded.requests, 1)
        errors = f"   {t.loaded.errors} errors" if t.loaded.errors else ""
        print(f"{t.label:32} {t.loaded.rps:7.0f} req/s  p50 {t.loaded.p50:6.2f} ms  "
              f"p99 {t.loaded.p99:6.2f} ms | 1 conn: {t.solo.rps:5.0f} req/s  "
              f"p50 {t.solo.p50:5.2f} ms  p99 {t.solo.p99:5.2f} ms | CPU/req: server "
              f"{1000 * t.cpu['server'] / n:.2f} ms, PostgreSQL {1000 * t.cpu['db'] / n:.2f} ms"
              f"{errors}")
    cost = {page: 1 - by[page].loaded.rps / by[f"{page}_no_rls"].loaded.rps
            for page in ("list", "detail")}
    print("row-level security: " + "; ".join(
        f"{page} {by[page].loaded.rps:.0f} req/s with the policies, "
        f"{by[f'{page}_no_rls'].loaded.rps:.0f} without ({100 * cost[page]:.1f} %); at one "
        f"connection p50 {by[page].solo.p50:.2f} ms vs {by[f'{page}_no_rls'].solo.p50:.2f} ms"
        for page in ("list", "detail")) + f" (goal < {100 * RLS_GOAL:.0f} %)")
    if "list_w2" in by:
        print(f"workers: list page {by['list'].loaded.rps:.0f} req/s with 1, "
              f"{by['list_w2'].loaded.rps:.0f} with 2 "
              f"({by['list_w2'].loaded.rps / by['list'].loaded.rps:.2f}x)")
    else:
        print("workers: `portald run` has no --workers here; 1 vs 2 workers not measured")
    pages = (("list", "list page"), ("detail", "detail page"), ("api", "json list"))
    to_floor = ", ".join(f"{label} {by[key].loaded.rps / by[f'{key}_floor'].loaded.rps:.2f}x"
                         for key, label in pages)
    to_same = ", ".join(f"{label} {by[key].loaded.rps / by[f'{key}_same'].loaded.rps:.2f}x"
                        for key, label in pages)
    print(f"to their floors (the page's data statement alone): {to_floor}; to a bare handler "
          f"sending the page's every statement: {to_same} (goal >= {GOAL}x); row-level "
          "security costs " + ", ".join(f"{page} {100 * c:.1f} %" for page, c in cost.items())
          + f" (goal < {100 * RLS_GOAL:.0f} %)")


def run(root: Path, pg: EmbeddedPostgres, dsn: str) -> None:
    wrk_bin = wrk.find_wrk()
    data = asyncio.run(load_data(dsn))
    no_rls_dsn = asyncio.run(copy_without_row_security(dsn))
    servers = {"portal": portal_server("portal", root, dsn, POOL_MAX),
               "no_rls": portal_server("no_rls", root, no_rls_dsn, POOL_MAX),
               "floor": floor_server(root, dsn, POOL_MAX, "full@acme")}
    if workers_supported():
        servers["workers2"] = portal_server("workers2", root, dsn, POOL_MAX, workers=2)
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait_ready()
        all_targets = targets(servers, data["detail_id"])
        measure(wrk_bin, root, pg.datadir, all_targets)
    finally:
        for s in servers.values():
            s.stop()
    report(data, all_targets)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="portald-bench-"))
    root.chmod(0o755)  # the embedded server runs as `nobody` under root
    pg = EmbeddedPostgres(root / "pg", fast_unsafe=True)
    try:
        run(root, pg, pg.start())
    finally:
        pg.stop(force=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
