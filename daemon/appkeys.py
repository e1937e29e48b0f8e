"""Typed keys of the aiohttp application: the daemon's shared resources, one place to find them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from aiohttp import web

from daemon.access.cache import PrivilegeCache
from daemon.access.listener import PrivilegeListener
from daemon.config import Settings
from daemon.mail.inbound import InboundServer
from daemon.mail.scheduler import MailScheduler
from daemon.mail.worker import OutboxWorker
from daemon.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DSN = web.AppKey("dsn", str)
METRICS = web.AppKey("metrics", Metrics)
# background tasks whose death must stop the daemon (see runner.py)
BACKGROUND = web.AppKey("background", list[asyncio.Task])
# the privilege snapshot cache and the LISTEN connection that vouches for it
PRIVILEGES = web.AppKey("privileges", PrivilegeCache)
LISTENER = web.AppKey("listener", PrivilegeListener)
# the mail worker (fan-out, outbox senders) and the scheduler of reminders and digests
OUTBOX = web.AppKey("outbox", OutboxWorker)
SCHEDULER = web.AppKey("scheduler", MailScheduler)
# replies by mail ([inbound] enabled), and in demo mode the folder the mail catcher fills
INBOUND = web.AppKey("inbound", InboundServer)
CAUGHT_MAIL = web.AppKey("caught_mail", Path)
# a worker of `portald run --workers N`: its listening sockets share their ports (SO_REUSEPORT)
REUSE_PORT = web.AppKey("reuse_port", bool)
