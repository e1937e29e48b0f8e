"""Password checks held back for as long as a test needs."""

from __future__ import annotations

import asyncio
import threading

import pytest

import daemon.passwords


class BlockedHashing:
    """Password checks that wait for `release`: logins stay "hashing" as long as a test
    needs, so what they hold meanwhile shows."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.entered = 0
        self._lock = threading.Lock()
        real = daemon.passwords.verify_password

        def verify(password_hash: str | None, password: str) -> bool:
            with self._lock:
                self.entered += 1
            self.release.wait(30)
            return real(password_hash, password)

        monkeypatch.setattr(daemon.passwords, "verify_password", verify)

    async def wait_entered(self, count: int) -> None:
        async with asyncio.timeout(20):
            while self.entered < count:
                await asyncio.sleep(0.01)
