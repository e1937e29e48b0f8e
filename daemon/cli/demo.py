"""`portald demo`: load the demo data set (password `demo` for every login)."""

from __future__ import annotations

import argparse
import asyncio

from daemon.cli.common import add_config_option, add_json_option, emit, load, table, with_connection
from daemon.dev.demo import load_demo
from daemon.formatting import plain


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="load the demo data set (password 'demo' for every login)")
    add_config_option(p)
    add_json_option(p, "print JSON")
    p.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    cfg = load(args)
    result = asyncio.run(with_connection(cfg, load_demo))
    result = {**plain(result), "portal_url": cfg.http.public_url}
    head = "demo data loaded" if result["loaded"] else "demo data already present; nothing changed"
    text = "\n".join([
        head,
        f"portal: {cfg.http.public_url}",
        "",
        table(("username", "kind", "group", "accounts", "password"),
              [(x["username"], x["kind"], x["group"], x["accounts"], x["password"])
               for x in result["logins"]]),
    ])
    emit(args, result, text)
    return 0
