"""The `portald` command: run · migrate · check-config · demo · admin …

Every command takes `--config PATH` (default ./config.toml). Operator mistakes end in one line
on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from daemon.cli import admin, check_config, demo, migrate, run
from daemon.cli.common import CliError
from daemon.config import DEFAULT_CONFIG_PATH, ConfigError
from daemon.db.migrations import MigrationMismatch
from daemon.db.pool import DatabaseUnavailable
from daemon.logs import setup_logging
from daemon.services.common import AdminError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portald", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None,
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print results as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (run, migrate, check_config, demo, admin):
        command.add_parser(sub)
    return parser


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
    except (CliError, AdminError, MigrationMismatch) as exc:
        print(f"portald: {exc}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"portald: database unavailable: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
