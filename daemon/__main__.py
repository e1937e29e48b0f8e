"""The `portald` command: run · migrate · check-config · demo · admin …

Every command takes `--config PATH` (default ./config.toml). Operator mistakes end in one line
on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from daemon import db, migrations
from daemon.admin import AdminError
from daemon.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from daemon.logs import setup_logging

log = logging.getLogger("portald")


class CliError(Exception):
    """A one-line reason for refusing a command; exit status 1."""


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")


def _load(args: argparse.Namespace) -> Config:
    path = getattr(args, "config", None) or DEFAULT_CONFIG_PATH
    return load_config(path, require_file=getattr(args, "config", None) is not None)


async def with_connection(cfg: Config, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    """Run `fn` on a connection to the configured (or embedded) database, migrated first."""
    location = await asyncio.to_thread(db.locate_database, cfg)
    try:
        async with db.connection(location.dsn) as conn:
            await migrations.migrate(conn)
            return await fn(conn)
    finally:
        await asyncio.to_thread(location.close)


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print JSON with --json, else the human text (or JSON when there is no text form)."""
    if getattr(args, "json", False) or text is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


# -- commands -------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.runner import serve

    cfg = _load(args)
    setup_logging(cfg.log.level)
    return asyncio.run(serve(cfg, config_path=cfg.path, mail_catcher=args.mail_catcher or None))


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = _load(args)

    async def main() -> list[str]:
        location = await asyncio.to_thread(db.locate_database, cfg)
        try:
            async with db.connection(location.dsn) as conn:
                return [f"{m.version:03d}_{m.name}" for m in await migrations.migrate(conn)]
        finally:
            await asyncio.to_thread(location.close)

    applied = asyncio.run(main())
    emit(args, {"applied": applied},
         "applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    where = cfg.path or "built-in defaults (no file)"
    emit(args, {"ok": True, "path": str(cfg.path) if cfg.path else None}, f"configuration OK: {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portald", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None,
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print results as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon in the foreground")
    _config_arg(p)
    p.add_argument("--mail-catcher", action="store_true",
                   help="also run the local mail catcher on [smtp] host:port (demo)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("migrate", help="apply database migrations")
    _config_arg(p)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("check-config", help="validate the configuration and name every problem")
    _config_arg(p)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_check_config)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction) -> None:
    from daemon import admin_cli, demo

    demo.add_parser(sub, _config_arg)
    admin_cli.add_parser(sub, _config_arg)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        setup_logging("WARNING" if args.command != "run" else "INFO")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"portald: config: {problem}", file=sys.stderr)
        return 2
    except (CliError, AdminError) as exc:
        print(f"portald: {exc}", file=sys.stderr)
        return 1
    except db.DatabaseUnavailable as exc:
        print(f"portald: database unavailable: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
