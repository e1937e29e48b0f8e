"""CPU seconds of processes, read from /proc: what the benches use to say what a figure cost.
(In a folder of its own, so that `make bench`, which runs every bench/*.py, does not run it.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a process (all its threads); with `children`, also of its
    reaped children (PostgreSQL backends that exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def tree_cpu_s(pid: int) -> float:
    """A process and every live descendant (a supervisor's workers), each with its reaped
    children: `cpu_s(pid, children=True)` alone misses children that are still running."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {pid}, True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(cpu_s(p, children=True) for p in tree)


def postgres_cpu_s(datadir: Path) -> float:
    """The whole PostgreSQL cluster: the postmaster, its live children, and the reaped ones."""
    try:
        master = int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = cpu_s(master, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


class CpuMeter:
    """CPU seconds spent by the sink, the daemon and PostgreSQL between start() and stop()."""

    def __init__(self, *, sink_pid: int, pg_datadir: Path) -> None:
        self.sink_pid, self.pg_datadir = sink_pid, pg_datadir
        self.daemon_pid: int | None = None
        self.start_at: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.mails = 0

    def _now(self) -> dict[str, float]:
        now = {"sink": cpu_s(self.sink_pid), "db": postgres_cpu_s(self.pg_datadir),
               "self": time.process_time(), "wall": time.monotonic()}
        if self.daemon_pid is not None:
            now["daemon"] = cpu_s(self.daemon_pid)
        return now

    def start(self) -> None:
        self.start_at = self._now()

    def stop(self) -> None:
        end = self._now()
        self.used = {k: end[k] - self.start_at.get(k, 0.0) for k in end}

    def describe(self, mails: int | None = None) -> str:
        mails = mails or self.mails
        wall = self.used["wall"]
        parts = [f"{name} {self.used[name] / mails * 1e3:.2f} ms/mail ({self.used[name] / wall * 100:.0f}% of a core)"
                 for name in ("daemon", "self", "sink", "db") if name in self.used]
        return "CPU " + ", ".join(parts).replace("self ", "sender ")
