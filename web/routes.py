"""Every route of the portal in one table, and the web layer's set-up.

Each route says who may use it; the access middleware (web/auth.py) enforces that before the
handler runs, so a new route cannot forget its privilege or scope check.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from daemon.keys import METRICS
from web.errors import error_middleware
from web.views import health

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    public: bool = False  # no login needed (health, login page, static)


ROUTES: list[Route] = [
    Route("GET", "/healthz", health.healthz, "healthz", public=True),
    Route("GET", "/readyz", health.readyz, "readyz", public=True),
    Route("GET", "/metrics", health.metrics, "metrics", public=True),
]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.name or "unmatched"
    response = await handler(request)
    metrics = request.app[METRICS]
    metrics.http_requests.labels(route, str(response.status)).inc()
    metrics.http_latency.labels(route).observe(time.perf_counter() - started)
    return response


def setup_web(app: web.Application) -> None:
    app.middlewares.extend([metrics_middleware, error_middleware])
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler, name=r.name)
    if STATIC_DIR.exists():
        app.router.add_static("/static", STATIC_DIR, name="static")
