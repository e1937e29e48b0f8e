"""Health and metrics: /healthz (the process answers), /readyz (the database answers),
/metrics (Prometheus text format)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from daemon.appkeys import LISTENER, METRICS, POOL
from daemon.queries import health

READY_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await health.ping(request.app[POOL])
    except Exception as exc:  # any failure means "not ready"; the reason goes to the prober
        return web.json_response({"status": "unavailable", "database": exc.__class__.__name__},
                                 status=503)
    # The listener only speeds things up (requests read from the database while it is down),
    # so it is reported, not required.
    listener = request.app.get(LISTENER)
    return web.json_response({"status": "ok", "database": "ok",
                              "listener": "ok" if listener is None or listener.healthy else "reconnecting"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
