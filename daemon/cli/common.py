"""What every subcommand shares: the configuration it names, a migrated database connection,
its actor for the audit log, printing a result as text or as JSON, and the shape of an admin
command (an operation on a connection, and the text of its result)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from daemon.config import DEFAULT_CONFIG_PATH, Config, load_config
from daemon.db import migrations
from daemon.db.pool import connection, locate_database
from daemon.services.common import AdminError

Operation = Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[Any]]
Render = Callable[[Any, argparse.Namespace], str]


class CliError(Exception):
    """A one-line reason for refusing a command; exit status 1."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")


def add_json_option(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=help_text)


def load(args: argparse.Namespace) -> Config:
    """The configuration the command names with --config (which must then exist), else the
    default file if there is one."""
    path = getattr(args, "config", None) or DEFAULT_CONFIG_PATH
    return load_config(path, require_file=getattr(args, "config", None) is not None)


async def with_connection(cfg: Config, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    """Run `fn` on a connection to the configured (or embedded) database, migrated first."""
    location = await asyncio.to_thread(locate_database, cfg)
    try:
        async with connection(location.dsn) as conn:
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


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def actor() -> str:
    """Who is acting, for the audit log: the operating-system user running the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (e.g. an unnamed container uid)
        return "cli:unknown"


def read_password() -> str:
    """One line from standard input (a prompt without echo when it is a terminal)."""
    if sys.stdin is None:
        raise AdminError("no standard input to read the password from")
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise AdminError("no password on standard input")
    return password


def _run(op: Operation, render: Render) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        cfg = load(args)
        args.password = read_password() if getattr(args, "password_stdin", False) else None
        result = asyncio.run(with_connection(cfg, lambda conn: op(conn, args)))
        emit(args, result, render(result, args))
        return 0

    return handler


def leaf(parent: argparse._SubParsersAction, name: str, help_text: str, op: Operation,
         render: Render) -> argparse.ArgumentParser:
    """One command: runs `op` on a migrated connection and prints `render` of its result."""
    p = parent.add_parser(name, help=help_text, description=help_text)
    add_config_option(p)
    add_json_option(p, "print JSON")
    p.set_defaults(func=_run(op, render))
    return p


def area(admin_sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    p = admin_sub.add_parser(name, help=help_text, description=help_text)
    return p.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def changed(result: dict[str, Any], text: str, unchanged: str) -> str:
    return text if result.get("changed", True) else unchanged


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
