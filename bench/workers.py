"""Workers benchmark, standalone: its own PostgreSQL (temp dir) with the demo data, and two
real daemons on it, one `portald run --workers 1` and one `portald run --workers 2`. The load
generator is wrk (`apt-get install wrk`), a C program, with a Lua script that sends the
session cookie of full@acme.

Measured: GET /tickets (the ticket list page) at CONNECTIONS connections, in ROUNDS slices
taken in turn from each daemon after a warm-up, so that other load on the machine falls on
both alike. Prints each daemon's req/s and latency, LAST the ratio of 2 workers to 1 (the
most it can be is the number of cores that wrk and PostgreSQL leave free).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.support import wrk  # noqa: E402
from daemon.db.embedded import EmbeddedPostgres, free_port  # noqa: E402

CONNECTIONS = 32
WARMUP_S = int(os.environ.get("BENCH_WARMUP_S", 2))  # wrk takes whole seconds
DURATION_S = int(os.environ.get("BENCH_DURATION_S", 9))  # per daemon, in ROUNDS slices
ROUNDS = 3
PATH = "/tickets"
USER, PASSWORD = "full@acme", "demo"
START_TIMEOUT_S = 60


def portald(config: Path, *args: str, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config), *args],
                            cwd=REPO, **kwargs)


def write_config(directory: Path, dsn: str, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(f"""[database]
dsn = "{dsn}"
[http]
port = {port}
public_url = "http://127.0.0.1:{port}"
[smtp]
port = {free_port()}
[state]
dir = "{directory / 'state'}"
[log]
level = "ERROR"  # the demo's mail finds no SMTP server here
""")
    return path


def wait_healthy(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the daemon on port {port} did not come up")


def login(port: int) -> str:
    body = json.dumps({"username": USER, "password": PASSWORD}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/login", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as resp:
        return "; ".join(c.split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie"))


def run_wrk(wrk_binary: str, port: int, lua: Path, seconds: float) -> wrk.Figures:
    figures = wrk.run(wrk_binary, f"http://127.0.0.1:{port}{PATH}", lua, connections=CONNECTIONS,
                      seconds=seconds, threads=2)
    if figures.errors:
        raise SystemExit(f"port {port}: {figures.errors} errors or answers not 2xx")
    return figures


def measure(wrk_binary: str, root: Path, ports: dict[int, int]) -> dict[int, wrk.Figures]:
    scripts = {workers: wrk.script(root, f"w{workers}", login(port))
               for workers, port in ports.items()}
    for workers, port in ports.items():
        run_wrk(wrk_binary, port, scripts[workers], WARMUP_S)
    totals: dict[int, wrk.Figures] = {}
    for _ in range(ROUNDS):
        for workers, port in ports.items():
            got = run_wrk(wrk_binary, port, scripts[workers], max(1, DURATION_S // ROUNDS))
            if workers in totals:
                totals[workers].add(got)
            else:
                totals[workers] = got
    return totals


def main() -> None:
    wrk_binary = wrk.find_wrk()
    root = Path(tempfile.mkdtemp(prefix="portald-bench-workers-"))
    server = EmbeddedPostgres(root / "pg", fast_unsafe=True)
    daemons: list[subprocess.Popen] = []
    try:
        dsn = server.start()
        ports = {1: free_port(), 2: free_port()}
        configs = {w: write_config(root / f"d{w}", dsn, port) for w, port in ports.items()}
        subprocess.run([sys.executable, "-m", "daemon", "--config", str(configs[1]), "demo"],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        for workers, config in configs.items():
            daemons.append(portald(config, "run", "--workers", str(workers)))
        for port, proc in zip(ports.values(), daemons, strict=True):
            wait_healthy(port, proc)
        totals = measure(wrk_binary, root, ports)
    finally:
        for proc in daemons:
            proc.send_signal(signal.SIGTERM)
        for proc in daemons:
            proc.wait(60)
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)
    print(f"load: wrk -t2, {CONNECTIONS} connections, GET {PATH} as {USER}, {DURATION_S:g} s per "
          f"daemon in {ROUNDS} alternating slices after {WARMUP_S:g} s warm-up; "
          f"{os.cpu_count()} CPUs")
    rates = {}
    for workers, t in totals.items():
        rates[workers] = t.rps
        print(f"--workers {workers}: {rates[workers]:7.0f} req/s  p50 {t.p50:6.2f} ms  "
              f"p99 {t.p99:6.2f} ms")
    print(f"workers: 2 workers serve {rates[2] / rates[1]:.2f}x the list page of 1 "
          f"({rates[2]:.0f} vs {rates[1]:.0f} req/s, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
