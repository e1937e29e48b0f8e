"""Typed keys of the aiohttp application: the daemon's shared resources, one place to find them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from daemon.config import Config
from daemon.metrics import Metrics

if TYPE_CHECKING:  # these modules import this one for their cleanup contexts
    from daemon.listener import PrivilegeListener
    from daemon.outbox import OutboxWorker
    from daemon.privileges import PrivilegeCache
    from daemon.scheduler import MailScheduler


@dataclass
class Settings:
    """The live configuration: SIGHUP swaps `current`; readers take it at each use."""

    current: Config
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)


SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DSN = web.AppKey("dsn", str)
METRICS = web.AppKey("metrics", Metrics)
# background tasks whose death must stop the daemon (see runner.py)
BACKGROUND = web.AppKey("background", list[asyncio.Task])
# the privilege snapshot cache and the LISTEN connection that vouches for it
PRIVILEGES: web.AppKey[PrivilegeCache] = web.AppKey("privileges")
LISTENER: web.AppKey[PrivilegeListener] = web.AppKey("listener")
# the mail worker (fan-out, outbox senders) and the scheduler of reminders and digests
OUTBOX: web.AppKey[OutboxWorker] = web.AppKey("outbox")
SCHEDULER: web.AppKey[MailScheduler] = web.AppKey("scheduler")
