"""Builds the aiohttp Application: its resources in `cleanup_ctx`, in dependency order
(database pool → privilege cache → listener → outbox worker → scheduler → inbound SMTP), and
the web layer it is handed (web.routes.setup_web: the daemon itself never imports the web
package)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
from aiohttp import web

from daemon.access.acting import WEB_ROLE
from daemon.access.cache import PrivilegeCache
from daemon.access.listener import START_WAIT_S, PrivilegeListener
from daemon.appkeys import (
    BACKGROUND,
    CAUGHT_MAIL,
    DSN,
    INBOUND,
    LISTENER,
    METRICS,
    OUTBOX,
    POOL,
    PRIVILEGES,
    REUSE_PORT,
    SCHEDULER,
    SETTINGS,
)
from daemon.config import Config, Settings
from daemon.connections import guard_middleware
from daemon.db.pool import DatabaseUnavailable, create_pool, describe_connect_error
from daemon.logs import quiet_client_mistakes
from daemon.mail.inbound import InboundServer
from daemon.mail.pools import create_inbound_pool
from daemon.mail.scheduler import MailScheduler
from daemon.mail.worker import OutboxWorker, create_mail_pool
from daemon.metrics import Metrics
from daemon.queries import principals as principals_q

log = logging.getLogger("portald.app")

SetupWeb = Callable[[web.Application], None]

# The most a body read whole (a form, by aiohttp's request.post()) may have, chunked or not:
# 413 past it. Uploads stream through the multipart reader instead, with their own limit
# ([http] upload_max_mb, web/files.py), and JSON bodies are read with their own (web/input.py).
FORM_MAX_BYTES = 1024 * 1024


def build_app(cfg: Config, dsn: str, *, setup_web: SetupWeb, background: bool = True,
              caught_mail: Path | None = None, reuse_port: bool = False) -> web.Application:
    """The whole daemon as one Application. `setup_web` adds the routes, middlewares and
    templates of the portal. `background=False` leaves out the mail worker and the scheduler
    (tests of the portal alone). `caught_mail`: demo mode, the folder of the mail catcher
    (the portal then shows its mails to administrators). `reuse_port`: one of several worker
    processes sharing the HTTP and inbound SMTP ports (daemon/supervisor.py)."""
    quiet_client_mistakes()
    # the guard is outermost: it must know of a request before anything reads its body
    app = web.Application(client_max_size=FORM_MAX_BYTES, middlewares=[guard_middleware])
    app[SETTINGS] = Settings(cfg)
    app[DSN] = dsn
    app[METRICS] = Metrics()
    app[BACKGROUND] = []
    app[REUSE_PORT] = reuse_port
    # The cache loads first; the listener then LISTENs, reloads and vouches for it. Both run
    # with background=False too: the portal is wrong without hot reload.
    app.cleanup_ctx.extend([database_ctx, privileges_ctx, listener_ctx])
    if background:
        # the scheduler only enqueues; the outbox worker (fan-out and senders) delivers
        app.cleanup_ctx.extend([outbox_ctx, scheduler_ctx])
    if cfg.inbound.enabled:
        # replies are the portal's input as much as its forms are: on with or without the worker
        app.cleanup_ctx.append(inbound_ctx)
    if caught_mail is not None:
        app[CAUGHT_MAIL] = caught_mail
    setup_web(app)
    return app


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[SETTINGS].current
    app[POOL] = await create_pool(app[DSN], min_size=cfg.database.pool_min,
                                  max_size=cfg.database.pool_max)
    await log_database_role(app[POOL])
    yield
    await app[POOL].close()


async def log_database_role(pool: asyncpg.Pool) -> None:
    """Say as what the daemon works: the mail worker and the scheduler serve no principal and
    work as the role of the DSN, which must own the tables for row-level security to let them
    through; each web request runs as portald_web on behalf of its user."""
    found = await principals_q.database_role(pool)
    if found["superuser"] or found["owner"]:
        log.info("database role %s (%s): the mail worker and the scheduler work as it, serving "
                 "no principal; web requests run as %s, held to row-level security",
                 found["role"], "superuser" if found["superuser"] else "owner of the tables", WEB_ROLE)
    elif found["owner"] is False:
        log.error("database role %s does not own the portal's tables: row-level security shows it "
                  "no ticket, so no mail would go out; connect as the role that ran "
                  "`portald migrate`", found["role"])


async def privileges_ctx(app: web.Application) -> AsyncIterator[None]:
    """Loads the first snapshot before the portal serves; the listener then vouches for it."""
    cache = PrivilegeCache(app[POOL], app[METRICS])
    await cache.reload()
    log.info("privileges loaded: version %d, %d customer users, %d employees",
             cache.snapshot.version, len(cache.snapshot.customers), len(cache.snapshot.employees))
    app[PRIVILEGES] = cache
    yield
    cache.invalidate(quiet=True)


async def listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs the listener as a named background task (its death stops the daemon); waits a
    little for the first LISTEN so that a healthy start serves from the cache at once."""
    listener = PrivilegeListener(app[DSN], app[POOL], app[PRIVILEGES], app[METRICS])
    app[LISTENER] = listener
    task = asyncio.get_running_loop().create_task(listener.run(), name="portald-privilege-listener")
    app[BACKGROUND].append(task)
    try:
        async with asyncio.timeout(START_WAIT_S):
            await listener.ready.wait()
    except TimeoutError:
        logging.getLogger("portald.listener").warning(
            "privilege listener not up after %.0f s; serving from the database meanwhile", START_WAIT_S)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if task in app[BACKGROUND]:
        app[BACKGROUND].remove(task)


async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mail worker in the application's life: started after the pool, stopped before it."""
    try:
        pool = await create_mail_pool(app[DSN], lanes=app[SETTINGS].current.smtp.connections)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(describe_connect_error(exc)) from None
    worker = OutboxWorker(pool=pool, dsn=app[DSN], settings=app[SETTINGS], metrics=app[METRICS])
    app[OUTBOX] = worker
    app[BACKGROUND].extend(worker.start())
    try:
        yield
    finally:
        await worker.stop()
        await pool.close()


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    sched = MailScheduler(pool=app[POOL], settings=app[SETTINGS])
    app[SCHEDULER] = sched
    app[BACKGROUND].append(sched.start())
    try:
        yield
    finally:
        await sched.stop()


async def inbound_ctx(app: web.Application) -> AsyncIterator[None]:
    """The SMTP listener for replies by mail; stopped first, so a reply being stored finishes
    while the pool is still there."""
    try:
        pool = await create_inbound_pool(app[DSN])
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(describe_connect_error(exc)) from None
    server = InboundServer(pool=pool, settings=app[SETTINGS], metrics=app[METRICS],
                           reuse_port=app[REUSE_PORT])
    app[INBOUND] = server
    try:
        app[BACKGROUND].append(await server.start())
        yield
    finally:
        await server.stop()
        await pool.close()
