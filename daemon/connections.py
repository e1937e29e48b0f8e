"""Slow clients: a connection that does not deliver a request's headers within [http]
header_timeout_s, or the body within body_timeout_s after them, is closed.

aiohttp's server has no such timeout: its keep-alive timer only closes connections that sit
idle (and only recent releases arm it before the first request), so a client that trickles a
header line or a body byte now and then holds its connection, and the task behind it, forever.
Each connection's protocol is therefore wrapped in a `ConnectionGuard` that forwards everything
to aiohttp's own and keeps a deadline; `guard_middleware` tells it where a request stands.

- From the connection's start, and from the first byte after a response, the headers have
  `header_timeout_s`; an idle keep-alive connection has IDLE_S before its next request must
  be complete (aiohttp closes idle ones sooner by itself).
- Once the headers are in, a body still coming has `body_timeout_s` to arrive whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger("portald.http")

IDLE_S = 75.0  # aiohttp's keep-alive timeout we run with (see runner.py)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float
    body_timeout_s: float


# the guard of each open connection, found by the middleware through the request's transport
_GUARDS: dict[asyncio.BaseTransport, ConnectionGuard] = {}


class ConnectionGuard(asyncio.Protocol):
    """Between the event loop and aiohttp's protocol of one connection."""

    def __init__(self, inner: asyncio.Protocol, limits: Limits) -> None:
        self._inner, self._limits = inner, limits
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._why = ""
        self._idle = False  # between a response and the next request's first byte
        self._body: Any = None  # the body being waited for

    # -- the deadline --------------------------------------------------------------------------

    def _arm(self, seconds: float, why: str, *, only_sooner: bool = False) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        if only_sooner and self._timer is not None and self._deadline <= deadline:
            return
        self._disarm()
        self._deadline, self._why = deadline, why
        self._timer = loop.call_at(deadline, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._body is not None and self._body.is_eof():
            return  # the body is in; the handler may take its time
        if self._transport is not None and not self._transport.is_closing():
            peer = self._transport.get_extra_info("peername")
            log.info("closing the connection of %s: %s", peer[0] if peer else "?", self._why)
            self._transport.close()

    # -- what the middleware reports -------------------------------------------------------------

    def request_started(self, request: web.Request) -> None:
        self._idle = False
        if request.body_exists and not request.content.is_eof():
            self._body = request.content
            self._arm(self._limits.body_timeout_s, "the request body came too slowly")
        else:
            self._disarm()

    def request_finished(self) -> None:
        self._idle, self._body = True, None
        self._arm(IDLE_S + self._limits.header_timeout_s, "no complete request after the last one")

    # -- asyncio.Protocol, forwarded ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        _GUARDS[transport] = self
        self._arm(self._limits.header_timeout_s, "the request headers came too slowly")
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._idle and data:
            self._idle = False  # a new request begins: its headers get header_timeout_s
            self._arm(self._limits.header_timeout_s, "the request headers came too slowly",
                      only_sooner=True)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            _GUARDS.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = _GUARDS.get(request.transport) if request.transport is not None else None
    if guard is None:  # a server not started by GuardedSite (the tests' in-process one)
        return await handler(request)
    guard.request_started(request)
    try:
        return await handler(request)
    finally:
        guard.request_finished()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are guarded (aiohttp's TCPSite, plus the guard)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: Limits, *,
                 reuse_port: bool = False, **kwargs: Any) -> None:
        super().__init__(runner, **kwargs)
        self._host, self._port, self._limits = host, port, limits
        self._reuse_port = reuse_port  # workers of one daemon share the port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        limits = self._limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: ConnectionGuard(server(), limits), self._host, self._port,
            reuse_address=True, reuse_port=self._reuse_port, backlog=self._backlog)
