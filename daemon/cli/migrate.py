"""`portald migrate`: apply the database migrations that are missing."""

from __future__ import annotations

import argparse
import asyncio

from daemon.cli.common import add_config_option, add_json_option, emit, load
from daemon.db import migrations
from daemon.db.pool import connection, locate_database


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="apply database migrations")
    add_config_option(p)
    add_json_option(p)
    p.set_defaults(func=migrate)


def migrate(args: argparse.Namespace) -> int:
    cfg = load(args)

    async def main() -> list[str]:
        location = await asyncio.to_thread(locate_database, cfg)
        try:
            async with connection(location.dsn) as conn:
                return [m.label for m in await migrations.migrate(conn)]
        finally:
            await asyncio.to_thread(location.close)

    applied = asyncio.run(main())
    emit(args, {"applied": applied},
         "applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0
