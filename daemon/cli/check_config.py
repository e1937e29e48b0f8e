"""`portald check-config`: validate the configuration, naming every bad key."""

from __future__ import annotations

import argparse

from daemon.cli.common import add_config_option, add_json_option, emit, load


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate the configuration and name every problem")
    add_config_option(p)
    add_json_option(p)
    p.set_defaults(func=check_config)


def check_config(args: argparse.Namespace) -> int:
    cfg = load(args)
    where = cfg.path or "built-in defaults (no file)"
    emit(args, {"ok": True, "path": str(cfg.path) if cfg.path else None}, f"configuration OK: {where}")
    return 0
