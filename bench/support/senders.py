"""What bench/mail.py compares the daemon with: the naive sender (smtplib, one connection per
mail) and the same mails over persistent aiosmtplib connections; and how it reads figures."""

from __future__ import annotations

import asyncio
import os
import smtplib
import statistics
import time

import aiosmtplib

from bench.support.cpu import CpuMeter
from bench.support.inbound import InboundResult


def naive(mails: list[tuple[str, bytes]], port: int, sender: str) -> float:
    started = time.perf_counter()
    for recipient, data in mails:
        # local_hostname given: smtplib would otherwise resolve our FQDN for every connection
        with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=30) as smtp:
            smtp.sendmail(sender, [recipient], data)
    return len(mails) / (time.perf_counter() - started)


async def ceiling(mails: list[tuple[str, bytes]], port: int, sender: str, *, connections: int) -> float:
    """The same mails, already rendered, over persistent aiosmtplib connections with no
    database and no rendering: what any aiosmtplib sender in one process could reach here."""

    async def lane(part: list[tuple[str, bytes]]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, local_hostname="localhost")
        await smtp.connect()
        for recipient, data in part:
            await smtp.sendmail(sender, [recipient], data)
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(lane(mails[i::connections]) for i in range(connections)))
    return len(mails) / (time.perf_counter() - started)


def machine_bound(meter: CpuMeter, result: InboundResult) -> str:
    """What the CPU of every process a reply involves (the daemon, PostgreSQL, the sink, the
    sending process) puts as a ceiling on this machine, and
    how much of the machine those processes got meanwhile (the rest went to others)."""
    used = sum(meter.used[k] for k in ("daemon", "sink", "db")) + result.client_cpu_s
    per_reply_ms = used / result.replies * 1e3
    cpus = os.cpu_count() or 1
    return (f"all processes together {per_reply_ms:.2f} ms of CPU a reply: {cpus} CPUs carry at most "
            f"{cpus * 1e3 / per_reply_ms:.0f} replies/s so; they got {used / meter.used['wall'] * 100:.0f}% "
            f"of one CPU meanwhile (load average {os.getloadavg()[0]:.1f})")


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]
