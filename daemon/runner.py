"""Runs the daemon: AppRunner + a guarded TCP site (daemon/connections.py), signals, systemd notify and watchdog, and the
side-task monitor that stops the daemon (non-zero) when a background task dies. `serve` is the
daemon as one process; `serve_worker` one worker of `portald run --workers N`, whose
supervisor (daemon/supervisor.py) did `prepared`, what exists once per daemon, for it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from daemon.app import SetupWeb, build_app
from daemon.appkeys import BACKGROUND, LISTENER, POOL, SETTINGS
from daemon.config import Config, ConfigError, load_config
from daemon.connections import IDLE_S, GuardedSite, Limits
from daemon.db import migrations
from daemon.db.pool import connection, locate_database
from daemon.logs import set_level
from daemon.mail.inbound import InboundError
from daemon.notify import SystemdNotifier, watchdog_interval_s
from daemon.queries import health

if TYPE_CHECKING:
    from daemon.dev.catcher import MailCatcher

log = logging.getLogger("portald.runner")

# Requests still running at SIGTERM get this long to finish.
SHUTDOWN_GRACE_S = 20.0


class BackgroundTaskDied(Exception):
    pass


class StartRefused(Exception):
    """Start-up cannot go on; the reason is logged already."""


def catcher_wanted(cfg: Config, mail_catcher: bool | None) -> bool:
    return mail_catcher if mail_catcher is not None else cfg.mail.catcher


@contextlib.asynccontextmanager
async def prepared(cfg: Config, mail_catcher: bool | None) -> AsyncIterator[tuple[str, Path | None]]:
    """What serving needs once per daemon, however many processes serve: the database
    (started, when embedded) and migrated, and in demo mode the mail catcher. Yields the DSN
    and the catcher's folder."""
    location = await asyncio.to_thread(locate_database, cfg)
    catcher = None
    try:
        async with connection(location.dsn) as conn:
            await migrations.migrate(conn)
        if catcher_wanted(cfg, mail_catcher):
            catcher = _start_catcher(cfg)
        yield location.dsn, catcher.directory if catcher is not None else None
    finally:
        if catcher is not None:
            catcher.stop()
        await asyncio.to_thread(location.close)


def _start_catcher(cfg: Config) -> MailCatcher:
    from daemon.dev.catcher import CatcherError, MailCatcher

    catcher = MailCatcher(cfg.state_dir / "mail", host=cfg.smtp.host, port=cfg.smtp.port)
    try:
        catcher.start()
    except CatcherError as exc:
        log.error("%s (is another portald running? set [smtp] port)", exc)
        raise StartRefused from None
    log.info("mail catcher listening on %s:%d, storing mail in %s",
             cfg.smtp.host, cfg.smtp.port, catcher.directory)
    return catcher


async def serve(cfg: Config, *, setup_web: SetupWeb, config_path: Path | None = None,
                mail_catcher: bool | None = None) -> int:
    """Serve until SIGTERM/SIGINT (exit 0) or until a background task dies (exit 1)."""
    notifier = SystemdNotifier()
    try:
        async with prepared(cfg, mail_catcher) as (dsn, caught):
            app = build_app(cfg, dsn, setup_web=setup_web, caught_mail=caught)
            return await _serve_app(app, cfg, notifier, config_path)
    except StartRefused:
        return 1


async def serve_worker(cfg: Config, *, setup_web: SetupWeb, config_path: Path | None,
                       mail_catcher: bool | None) -> int:
    """One worker of `portald run --workers N`: its supervisor has started and migrated the
    database (its DSN is in the environment) and runs the catcher, and reads what this
    process tells systemd (NOTIFY_SOCKET points at the supervisor)."""
    caught = cfg.state_dir / "mail" if catcher_wanted(cfg, mail_catcher) else None
    app = build_app(cfg, cfg.database.dsn, setup_web=setup_web, caught_mail=caught,
                    reuse_port=True)
    return await _serve_app(app, cfg, SystemdNotifier(), config_path, reuse_port=True)


def _freeze_the_start() -> None:
    # What the start made (modules, templates' code, the app) lives as long as the process:
    # out of the collector's sight, a full collection walks a tenth of the objects (measured:
    # 117 -> 11 ms of collections in 7,000 ticket pages)
    gc.collect()
    gc.freeze()


async def _serve_app(app: web.Application, cfg: Config, notifier: SystemdNotifier,
                     config_path: Path | None, *, reuse_port: bool = False) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=SHUTDOWN_GRACE_S, keepalive_timeout=IDLE_S)
    try:
        await runner.setup()
    except InboundError as exc:
        log.error("%s (is another portald running? set [inbound] port)", exc)
        await runner.cleanup()  # what had started stops again
        return 1
    exit_code = 0
    try:
        site = GuardedSite(runner, cfg.http.host, cfg.http.port,
                           Limits(header_timeout_s=cfg.http.header_timeout_s,
                                  body_timeout_s=cfg.http.body_timeout_s),
                           reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", cfg.http.host, cfg.http.port, exc.strerror)
            return 1
        log.info("portal listening on http://%s:%d (public URL %s)", cfg.http.host, cfg.http.port,
                 cfg.http.public_url)

        def on_sighup() -> None:
            loop.create_task(_reload(app, notifier, config_path), name="portald-reload")

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        _freeze_the_start()
        notifier.ready()
        notifier.status("serving")

        watchdog = None
        interval = watchdog_interval_s()
        if interval:
            watchdog = loop.create_task(_watchdog(app, notifier, interval), name="portald-watchdog")

        stop_task = loop.create_task(stop.wait(), name="portald-stop")
        watched = {stop_task, *app[BACKGROUND]}
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stop_task:
                continue
            exc = None if task.cancelled() else task.exception()
            log.error("background task %s stopped%s; shutting down so that the service manager "
                      "restarts the daemon", task.get_name(), f": {exc!r}" if exc else "")
            exit_code = 1
        stop_task.cancel()
        if watchdog is not None:
            watchdog.cancel()
        log.info("stopping: finishing in-flight requests and the mail being sent")
        notifier.stopping()
    finally:
        await _cleanup(loop, runner)
    return exit_code


async def _cleanup(loop: asyncio.AbstractEventLoop, runner: web.AppRunner) -> None:
    # Until the stop is done, a second SIGTERM (or a Ctrl-C) must not kill the daemon with
    # requests and a mail half done: the default action would, so keep a handler.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, _already_stopping, sig)
    try:
        await runner.cleanup()
        # said while a late SIGTERM is still ignored: once the handlers are gone, one would end
        # the process before the line is written (a worker whose supervisor died gets two)
        log.info("stopped")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _already_stopping(sig: signal.Signals) -> None:
    log.warning("%s received while stopping: ignored, the stop goes on", sig.name)


async def _reload(app: web.Application, notifier: SystemdNotifier, config_path: Path | None) -> None:
    notifier.reloading()
    try:
        new = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("reload refused, configuration keeps its previous values: %s", problem)
        notifier.ready()
        return
    old = app[SETTINGS].current
    for section in ("database", "http", "state", "inbound"):
        if getattr(old, section) != getattr(new, section):
            log.warning("[%s] changed: takes effect at the next restart", section)
    # [database], [http], [state] and [inbound] (a listening socket, and the reply addresses
    # it answers to) need a restart; the rest is read at each use.
    app[SETTINGS].current = new.model_copy(update={"database": old.database, "http": old.http,
                                                   "state": old.state, "inbound": old.inbound})
    set_level(new.log.level)
    app[SETTINGS].reloaded.set()
    app[SETTINGS].reloaded.clear()
    log.info("configuration reloaded")
    notifier.ready()


async def _watchdog(app: web.Application, notifier: SystemdNotifier, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        # A ping proves the loop turns; a database round trip proves we are not wedged on it;
        # the listener's last probe proves privilege changes still reach us.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(interval):
                await health.ping(app[POOL])
            listener = app.get(LISTENER)
            if listener is None or listener.healthy:
                notifier.watchdog()
