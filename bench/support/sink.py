"""The SMTP sinks of bench/mail.py: aiosmtpd in a process of its own, reporting when (and for
which ticket) it accepted each mail; optionally answering every command only after a delay,
as a relay across a network does (its round trip), without costing the sink any CPU."""

from __future__ import annotations

import subprocess
import sys
import threading

# The sink: accepts everything, notes when (CLOCK_MONOTONIC is system-wide on Linux, so its
# times compare with ours) and which ticket; writes in bulk so that the note costs nothing.
SINK_CODE = r"""
import asyncio, sys, threading, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

DELAY_S = float(sys.argv[2]) / 1e3

class Remote(SMTP):
    async def push(self, status):
        # the last line of an answer is what the client waits for: it comes a round trip late
        line = status if isinstance(status, str) else status.decode()
        if DELAY_S and line[3:4] != "-":
            await asyncio.sleep(DELAY_S)
        await super().push(status)

class RemoteController(Controller):
    def factory(self):
        return Remote(self.handler, **self.SMTP_kwargs)

lines, lock = [], threading.Lock()

class Handler:
    async def handle_DATA(self, server, session, envelope):
        now = time.monotonic_ns()
        raw = envelope.original_content or envelope.content
        start = raw.find(b"Subject: [")
        tag = raw[start + 10:raw.find(b"]", start)].decode() if start >= 0 else "-"
        with lock:
            lines.append(f"{now} {tag}\n")
        return "250 OK"

port = int(sys.argv[1])
controller = RemoteController(Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost")
controller.start()
print("ready", flush=True)
while True:
    time.sleep(0.02)
    with lock:
        out, lines[:] = "".join(lines), []
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()
"""


class Sink:
    """The sink process and what it reports: (monotonic ns, ticket number) per accepted mail."""

    def __init__(self, port: int, *, delay_ms: float = 0.0) -> None:
        self.port = port
        self.delay_ms = delay_ms
        self.accepted: list[tuple[int, str]] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([sys.executable, "-c", SINK_CODE, str(port), str(delay_ms)],
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            ns, tag = line.split(" ", 1)
            with self.cond:
                self.accepted.append((int(ns), tag.strip()))
                self.cond.notify_all()

    def count(self) -> int:
        with self.cond:
            return len(self.accepted)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
