"""`portald admin explain USER TICKET`: may this user see this ticket, which rule decides, and
which parts of it are shown (daemon/access/explain.py), as text or JSON."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from daemon.access.explain import explain
from daemon.cli.common import add_config_option, add_json_option, emit, load, with_connection


def add_parser(admin_sub: argparse._SubParsersAction) -> None:
    help_text = "why a user does or does not see a ticket, and which parts of it"
    p = admin_sub.add_parser("explain", help=help_text, description=help_text)
    add_config_option(p)
    add_json_option(p, "print JSON")
    p.add_argument("username", metavar="USER")
    p.add_argument("ticket", metavar="TICKET_ID", help="ticket id or number (e.g. T-1000)")
    p.set_defaults(func=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    cfg = load(args)
    result = asyncio.run(with_connection(cfg, lambda conn: explain(conn, args.username, args.ticket)))
    emit(args, result, describe(result))
    return 0


def describe(result: dict[str, Any]) -> str:
    """The verdict as lines of text: who and which ticket, visible or not and why, then one
    row per part."""
    u, t = result["user"], result["ticket"]
    lines = [
        f'{u["username"]} ({u["kind"]}, group "{u["group"]}"{"" if u["active"] else ", inactive"})'
        f' → ticket {t["number"]} (id {t["id"]}, account "{t["account"]}", '
        f'assigned to {t["assigned_to"] or "nobody"})',
        f'visible: {"yes" if result["visible"] else "no"} [{result["rule"]}] {result["reason"]}',
    ]
    if not result["visible"]:
        lines.append(f'the portal answers: {result["answer"]}')
    if result["parts"]:
        rows = [("part", "shown", "rows", "may add/change", "why")]
        for x in result["parts"]:
            rows.append((x["part"], "yes" if x["shown"] else "no",
                         f'{x["rows_visible"]}/{x["rows_total"]}' if "rows_total" in x else "",
                         "" if x.get("can_add") is None else ("yes" if x["can_add"] else "no"),
                         x["reason"]))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines += ["  " + "  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)), r[4]])
                  for r in rows]
    return "\n".join(lines)
