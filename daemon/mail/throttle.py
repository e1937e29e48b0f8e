"""[mail] rate_per_minute: the pace at which one instance hands mails to the SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import time

from daemon.config import Settings


class RateLimiter:
    """[mail] rate_per_minute for this instance (0: none), shared by its sender lanes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self, stopping: asyncio.Event) -> bool:
        """Wait for the next slot; False if the worker stops meanwhile."""
        rate = self._settings.current.mail.rate_per_minute
        if rate <= 0:
            return not stopping.is_set()
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self._next - now)
                if stopping.is_set():
                    return False
            self._next = max(time.monotonic(), self._next) + 60.0 / rate
        return not stopping.is_set()
