"""CPU seconds of processes, read from /proc: what the benches use to say what a figure cost.
(In a folder of its own, so that `make bench`, which runs every bench/*.py, does not run it.)"""

from __future__ import annotations

import os
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
