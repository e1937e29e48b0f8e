"""Health and metrics: /healthz (the process answers), /readyz (the database answers),
/metrics (Prometheus text format, for the addresses of [http] metrics_allow or a bearer
token)."""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from daemon.appkeys import LISTENER, METRICS, POOL
from daemon.queries import health
from web.context import client_ip, in_networks, settings
from web.errors import ApiError

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


def metrics_allowed(request: web.Request) -> bool:
    """[http] metrics_allow (loopback by default) names who may read /metrics; with
    metrics_token set, anyone sending it as a bearer token may too."""
    http = settings(request).http
    if in_networks(client_ip(request), http.metrics_allow):
        return True
    sent = request.headers.get("Authorization", "")
    token = sent[7:] if sent[:7].lower() == "bearer " else ""
    # a header's bytes that are not UTF-8 arrive as lone surrogates: compare the bytes sent
    return bool(http.metrics_token) and hmac.compare_digest(
        token.encode("utf-8", "surrogateescape"), http.metrics_token.encode())


async def metrics(request: web.Request) -> web.Response:
    if not metrics_allowed(request):
        raise ApiError(403, "the metrics are not for this address", headers={
            "WWW-Authenticate": "Bearer"})
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
