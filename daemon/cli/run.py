"""`portald run`: serve the portal, deliver mail and run the scheduler, in the foreground."""

from __future__ import annotations

import argparse
import asyncio
from importlib.metadata import entry_points

from pydantic import ValidationError

from daemon.app import SetupWeb
from daemon.cli.common import CliError, add_config_option, load
from daemon.config import HttpConfig
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
    p.add_argument("--workers", type=worker_count, default=None, metavar="N",
                   help='serving processes on one port: a number or "auto", one per CPU '
                        "(default: [http] workers)")
    # how the supervisor of --workers starts each worker (daemon/supervisor.py)
    p.add_argument("--worker-slot", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def worker_count(text: str) -> int:
    """--workers is read as [http] workers is, with the same words for a bad value."""
    try:
        return HttpConfig.model_validate({"workers": text}).workers
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from None


def run(args: argparse.Namespace) -> int:
    # imported here: the other commands need none of the serving machinery
    from daemon.runner import serve, serve_worker

    cfg = load(args)
    catcher = args.mail_catcher or None
    if args.worker_slot is not None:
        from daemon.worker_link import follow_supervisor

        setup_logging(cfg.log.level, tag=f"worker {args.worker_slot}")
        follow_supervisor(args.supervisor_pid)
        return asyncio.run(serve_worker(cfg, setup_web=web_layer(), config_path=cfg.path,
                                        mail_catcher=catcher))
    setup_logging(cfg.log.level)
    count = args.workers or cfg.http.workers
    if count == 1:
        return asyncio.run(serve(cfg, setup_web=web_layer(), config_path=cfg.path,
                                 mail_catcher=catcher))
    from daemon.supervisor import supervise

    web_layer()  # installed, or say so now rather than once per worker
    return asyncio.run(supervise(cfg, count=count, mail_catcher=catcher))
