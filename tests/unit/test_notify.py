"""sd_notify helper against a real datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from daemon.notify import SystemdNotifier, watchdog_interval_s


@pytest.fixture
def listener(tmp_path, monkeypatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def assert_empty(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


def test_ready_stopping_watchdog_status(listener: socket.socket) -> None:
    n = SystemdNotifier()
    assert n.enabled
    assert n.ready()
    assert recv(listener) == "READY=1"
    assert n.watchdog()
    assert recv(listener) == "WATCHDOG=1"
    assert n.status("serving\non 8080")
    assert recv(listener) == "STATUS=serving on 8080"
    assert n.stopping()
    assert recv(listener) == "STOPPING=1"
    assert n.notify(status="x", errno=5)
    assert recv(listener) == "STATUS=x\nERRNO=5"
    assert n.send("EXTEND_TIMEOUT_USEC=1000")
    assert recv(listener) == "EXTEND_TIMEOUT_USEC=1000"
    n.close()
    assert_empty(listener)


def test_reloading_carries_monotonic_usec(listener: socket.socket) -> None:
    n = SystemdNotifier()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = recv(listener).split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert len(lines) == 2


def test_newline_in_value_rejected(listener: socket.socket) -> None:
    with pytest.raises(ValueError):
        SystemdNotifier().notify(STATUS="a\nREADY=1")
    assert_empty(listener)


def test_abstract_socket(monkeypatch) -> None:
    name = f"portald-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert SystemdNotifier().ready()
        assert recv(sock) == "READY=1"


def test_noop_without_socket(monkeypatch, caplog) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = SystemdNotifier()
    assert not n.enabled
    with caplog.at_level(logging.DEBUG, logger="portald.notify"):
        for sent in (n.ready(), n.reloading(), n.watchdog(), n.status("x"), n.stopping()):
            assert sent is False
    assert caplog.records == []


def test_send_failure_warns_once_and_never_raises(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing.sock"))
    n = SystemdNotifier()
    with caplog.at_level(logging.WARNING, logger="portald.notify"):
        assert n.ready() is False
        assert n.watchdog() is False
    warnings = [r for r in caplog.records if r.name == "portald.notify"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        ("0", None, None),
        ("junk", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval(monkeypatch, usec, pid, expected) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        elif value == "self":
            monkeypatch.setenv(name, str(os.getpid()))
        elif value == "other":
            monkeypatch.setenv(name, str(os.getpid() + 1))
        else:
            monkeypatch.setenv(name, value)
    assert watchdog_interval_s() == expected
