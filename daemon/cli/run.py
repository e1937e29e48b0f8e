"""`portald run`: serve the portal, deliver mail and run the scheduler, in the foreground."""

from __future__ import annotations

import argparse
import asyncio
from importlib.metadata import entry_points

from daemon.app import SetupWeb
from daemon.cli.common import CliError, add_config_option, load
from daemon.logs import setup_logging

# The distribution names its web layer under this entry-point group (pyproject.toml), so the
# daemon package serves the portal without importing the web package.
WEB_LAYER_GROUP = "portald.web"


def web_layer() -> SetupWeb:
    found = list(entry_points(group=WEB_LAYER_GROUP))
    if not found:
        raise CliError(f"the web layer is not installed (no entry point in the group "
                       f"{WEB_LAYER_GROUP}); install portald with pip")
    return found[0].load()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the daemon in the foreground")
    add_config_option(p)
    p.add_argument("--mail-catcher", action="store_true",
                   help="also run the local mail catcher on [smtp] host:port (demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here: the other commands need none of the serving machinery
    from daemon.runner import serve

    cfg = load(args)
    setup_logging(cfg.log.level)
    return asyncio.run(serve(cfg, setup_web=web_layer(), config_path=cfg.path,
                             mail_catcher=args.mail_catcher or None))
