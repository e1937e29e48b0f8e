"""Between a worker of `portald run --workers N` and its supervisor (daemon/supervisor.py):
what the workers report, read by the supervisor, and a worker's tie to the supervisor's life.

A worker reports as a daemon reports to systemd, with the same code (daemon/notify.py), to the
socket its NOTIFY_SOCKET names; the kernel tells who sent each datagram (SO_PASSCRED), so no
worker can speak for another and none needs to say who it is."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_PR_SET_PDEATHSIG = 1


def follow_supervisor(supervisor_pid: int) -> None:
    """In a worker: be told (SIGTERM, a graceful stop) when the supervisor dies, however it
    dies, so that no worker outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor_pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


class Reports:
    """The datagram socket the workers' NOTIFY_SOCKET names; each datagram goes to `on_report`
    with its sender's pid, as KEY=value pairs."""

    def __init__(self, path: Path, on_report: Callable[[int, dict[str, str]], None]) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(path))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.setblocking(False)
        self._on_report = on_report
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(_CREDENTIALS.size))
            except (BlockingIOError, InterruptedError):
                return
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _CREDENTIALS.unpack(payload[:_CREDENTIALS.size])[0]
            report = dict(line.partition("=")[::2] for line in data.decode(errors="replace").splitlines())
            if pid is not None:
                self._on_report(pid, report)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
