"""Typed keys of the aiohttp application: the daemon's shared resources, one place to find them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from daemon.config import Config
from daemon.metrics import Metrics


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
