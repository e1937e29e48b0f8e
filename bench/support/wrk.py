"""wrk as the load generator of the benches: a C program that spends far less CPU per request
than the Python server it measures (an aiohttp client in Python spent as much as the server,
on the same cores). A Lua script sends the session cookie and writes the figures as JSON.

Install: `apt-get install wrk` (Debian, Ubuntu), `brew install wrk`, or build it from
https://github.com/wg/wrk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = """
{cookie}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{{"requests": %d, "duration_us": %d, "errors": %d, "bad_status": %d, '
    .. '"p50_ms": %.3f, "p99_ms": %.3f}}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("this benchmark needs wrk as its load generator: apt-get install wrk "
                         "(or brew install wrk, or build https://github.com/wg/wrk)")
    return found


@dataclass
class Figures:
    """One wrk run, or several added up (requests and time summed; latencies: the median of
    the runs' percentiles, wrk hands out no histogram to merge)."""

    requests: int
    seconds: float
    errors: int
    p50_ms: list[float]
    p99_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return sorted(self.p50_ms)[len(self.p50_ms) // 2]

    @property
    def p99(self) -> float:
        return sorted(self.p99_ms)[len(self.p99_ms) // 2]

    def add(self, other: Figures) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.errors += other.errors
        self.p50_ms += other.p50_ms
        self.p99_ms += other.p99_ms


def script(directory: Path, name: str, cookie: str | None) -> Path:
    path = directory / f"wrk-{name}.lua"
    header = f'wrk.headers["Cookie"] = "{cookie}"' if cookie else ""
    path.write_text(LUA.format(cookie=header))
    return path


def run(wrk: str, url: str, lua: Path, *, connections: int, seconds: float,
        threads: int = 1) -> Figures:
    """wrk with `threads` threads (by default one: one core's worth of load generator at most)
    for `seconds` (whole seconds: wrk takes no fraction)."""
    seconds = max(1, round(seconds))
    done = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(lua), url],
        capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed on {url}: {done.stderr.strip()}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return Figures(requests=got["requests"], seconds=got["duration_us"] / 1e6,
                   errors=got["errors"] + got["bad_status"], p50_ms=[got["p50_ms"]],
                   p99_ms=[got["p99_ms"]])
