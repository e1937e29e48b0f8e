"""The real daemon as a process (`python -m daemon … run`), started and stopped the way an
operator or systemd would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.support import REPO, tracebacks

START_TIMEOUT_S = 30


def spawn_daemon(config_path: Path, log_path: Path) -> subprocess.Popen:
    """The daemon in the background, its output appended to `log_path`; PORTALD_ variables of
    the test run are not passed on (the config file says everything)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
    tracebacks.watch_file(log_path)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config_path), "run"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_daemon(proc: subprocess.Popen, *, kill: bool = False, timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


async def start_daemon(config_path: Path, *, env: dict[str, str] | None = None,
                       args: tuple[str, ...] = ()) -> asyncio.subprocess.Process:
    """The daemon with its output piped back to the test, with `env` added to ours and `args`
    added to `run`. Its log (stderr) passes by the traceback watch (tests/support/tracebacks.py)
    on the way."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "run", "--config", str(config_path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    piped, tee = proc.stderr, asyncio.StreamReader()
    assert piped is not None

    async def pump() -> None:
        pending = ""
        while line := await piped.readline():
            tee.feed_data(line)
            pending += line.decode(errors="replace")
            if "Traceback" in pending or len(pending) > 65536:
                tracebacks.report(pending)
                pending = ""
        tracebacks.report(pending)
        tee.feed_eof()

    asyncio.get_running_loop().create_task(pump(), name="daemon-stderr")
    proc.stderr = tee
    return proc


async def wait_healthy(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"daemon exited with {proc.returncode}: {await proc.stderr.read()!r}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("daemon did not become healthy")
