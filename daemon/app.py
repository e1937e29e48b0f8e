"""Builds the aiohttp Application: its resources in `cleanup_ctx`, in dependency order
(database pool → privilege cache and listener → outbox worker → scheduler), and its routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from daemon import db
from daemon.config import Config
from daemon.keys import BACKGROUND, DSN, METRICS, POOL, SETTINGS, Settings
from daemon.metrics import Metrics

log = logging.getLogger("portald.app")

# Multipart envelopes add a little to the file itself.
UPLOAD_OVERHEAD_BYTES = 64 * 1024


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[SETTINGS].current
    app[POOL] = await db.create_pool(app[DSN], min_size=cfg.database.pool_min,
                                     max_size=cfg.database.pool_max)
    yield
    await app[POOL].close()


def build_app(cfg: Config, dsn: str, *, background: bool = True) -> web.Application:
    """The whole daemon as one Application. `background=False` leaves out the mail worker and
    the scheduler (tests of the portal alone)."""
    from web.routes import setup_web

    app = web.Application(client_max_size=cfg.http.upload_max_mb * 1024 * 1024 + UPLOAD_OVERHEAD_BYTES)
    app[SETTINGS] = Settings(cfg)
    app[DSN] = dsn
    app[METRICS] = Metrics()
    app[BACKGROUND] = []
    app.cleanup_ctx.append(database_ctx)
    for ctx in _service_contexts(background=background):
        app.cleanup_ctx.append(ctx)
    setup_web(app)
    return app


def _service_contexts(*, background: bool) -> list:
    """The services after the pool, in start order; each module owns its context."""
    from daemon.listener import listener_ctx
    from daemon.privileges import privileges_ctx

    # The cache loads first; the listener then LISTENs, reloads and vouches for it. Both run
    # with background=False too: the portal is wrong without hot reload.
    contexts: list = [privileges_ctx, listener_ctx]
    if background:
        from daemon.outbox import outbox_ctx
        from daemon.scheduler import scheduler_ctx

        # the scheduler only enqueues; the outbox worker (fan-out and senders) delivers
        contexts += [outbox_ctx, scheduler_ctx]
    return contexts
