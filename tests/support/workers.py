"""Seeing `portald run --workers N` from outside, as an operator would with ps and ss: its
processes, which of them listens on a port, which of them holds a connection; and its log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path

_SOCKET = re.compile(r"socket:\[(\d+)\]")
_LISTEN = "0A"


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (from /proc/*/stat)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[1]) == pid:  # a zombie is dead already
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z"


def private_dir(worker: int) -> Path:
    """The supervisor's private directory, as a worker's environment names it."""
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{worker}/environ").read_text().split("\0") if "=" in item)
    return Path(environ["NOTIFY_SOCKET"]).parent


def _sockets(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if m := _SOCKET.fullmatch(os.readlink(f"/proc/{pid}/fd/{fd}")):
                    inodes.add(int(m.group(1)))
    return inodes


def _tcp() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every TCP socket."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                rows.append((int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16),
                             f[3], int(f[9])))
    return rows


def listening(pids: set[int], port: int) -> set[int]:
    """Those of `pids` that hold a socket listening on `port`."""
    inodes = {inode for local, _, state, inode in _tcp() if local == port and state == _LISTEN}
    return {pid for pid in pids if _sockets(pid) & inodes}


def holders(pids: set[int], port: int, client_ports: set[int]) -> dict[int, int]:
    """Client port → the one of `pids` holding the server side of that connection to `port`."""
    by_inode = {inode: pid for pid in pids for inode in _sockets(pid)}
    return {remote: by_inode[inode] for local, remote, state, inode in _tcp()
            if local == port and remote in client_ports and inode in by_inode}


class Log:
    """A daemon's stderr, read in the background, line by line."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read(stream), name="daemon-log")

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace"))
            self._changed.set()
        self._changed.set()

    @property
    def ended(self) -> bool:
        return self._task.done()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, count: int = 1, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while self.count(text) < count:
                if self.ended:
                    raise AssertionError(f"log ended before {count} x {text!r}:\n{self.text}")
                self._changed.clear()
                await self._changed.wait()

    async def wait_ended(self, timeout: float = 10) -> None:
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    @property
    def text(self) -> str:
        return "".join(self.lines)


async def eventually(check: Callable[[], bool], timeout: float = 30, interval: float = 0.1) -> bool:
    """`check()` came true within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


class Notifications:
    """The datagram socket a service manager reads; the supervisor's messages, in order."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.path = path
        self.messages: list[str] = []

    async def wait_for(self, line: str, timeout: float = 60) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not any(line in m.splitlines() for m in self.messages):
                self.messages.append((await loop.sock_recv(self.sock, 4096)).decode())

    async def comes_within(self, line: str, seconds: float) -> bool:
        """Whether `line` arrives (anew) within `seconds`."""
        self.drain()
        seen = self.count(line)
        try:
            async with asyncio.timeout(seconds):
                while self.count(line) == seen:
                    self.messages.append((await asyncio.get_running_loop().sock_recv(
                        self.sock, 4096)).decode())
        except TimeoutError:
            return False
        return True

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def count(self, line: str) -> int:
        return sum(line in m.splitlines() for m in self.messages)
