"""Minimal sd_notify(3) client for Type=notify services, with no dependency on libsystemd."""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("portald.notify")


class SystemdNotifier:
    """Sends state datagrams to systemd; every method is a no-op when not run by systemd."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        # A leading '@' denotes a Linux abstract socket, whose real name starts with NUL.
        self._address: str | None = (
            ("\0" + address[1:]) if address.startswith("@") else address or None
        )
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, message: str) -> bool:
        """Send one raw datagram; returns False (never raises) if it could not be delivered."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Called from the event loop: a stalled systemd must not freeze the daemon,
                # and a lost watchdog ping is retried on the next tick anyway.
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), self._address)
            return True
        except OSError as exc:
            # Warn once: a broken socket would otherwise flood the journal on every ping.
            if not self._warned:
                self._warned = True
                log.warning("sd_notify to %r failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
            return False

    def notify(self, **fields: object) -> bool:
        """Send KEY=value lines, e.g. notify(READY=1, STATUS="ok"); keys are upper-cased."""
        for value in fields.values():
            if "\n" in str(value):
                # A newline would smuggle an extra assignment into the protocol.
                raise ValueError("sd_notify values must not contain newlines")
        return self.send("\n".join(f"{k.upper()}={v}" for k, v in fields.items()))

    def ready(self) -> bool:
        return self.notify(READY=1)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """Announce a reload; call ready() when it is done so systemd leaves 'reloading'."""
        # systemd pairs the reload with this timestamp to discard stale RELOADING messages.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=" ".join(text.splitlines()))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None if no watchdog applies."""
    pid = os.environ.get("WATCHDOG_PID")
    # WATCHDOG_PID guards against children that inherited the environment pinging for us.
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    # Half the interval leaves room for one late tick before systemd kills us.
    return usec / 2_000_000
