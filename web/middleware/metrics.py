"""Counts every request and its latency, per route, for /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from daemon.appkeys import METRICS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.name or "unmatched"
    response = await handler(request)
    metrics = request.app[METRICS]
    metrics.requests_of(route, response.status).inc()
    metrics.latency_of(route).observe(time.perf_counter() - started)
    return response
