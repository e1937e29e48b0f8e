"""`portald admin …`: the command-line face of daemon/services.

Every leaf command takes `--config PATH` and `--json`. Bad input ends in one line on stderr
and exit status 1 (AdminError, mapped in daemon/cli/__init__.py); usage errors are
argparse's (2). The areas: accounts, licenses and the outbox here; privilege groups in
admin_groups.py; web users and employees in admin_people.py; `explain` in explain.py.
"""

from __future__ import annotations

import argparse
from typing import Any

from daemon.cli import admin_groups, admin_people, explain
from daemon.cli.common import actor, area, leaf, table
from daemon.services import accounts, licenses, outbox, reply_keys


def _add_account(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "account", "customer accounts")
    p = leaf(group, "create", "create a customer account",
             lambda c, a: accounts.create_account(c, actor=actor(), name=a.name,
                                                  contact_name=a.contact, phone=a.phone,
                                                  email=a.email, address=a.address),
             lambda r, a: f'account "{r["name"]}" created (id {r["id"]})')
    p.add_argument("name", metavar="NAME")
    p.add_argument("--contact", default="", help="contact person")
    p.add_argument("--phone", default="")
    p.add_argument("--email", default="")
    p.add_argument("--address", default="")

    leaf(group, "list", "list the accounts",
         lambda c, a: accounts.list_accounts(c),
         lambda r, a: table(("name", "contact", "web users", "tickets", "open"),
                            [(x["name"], x["contact_name"], x["web_users"], x["tickets"],
                              x["open_tickets"]) for x in r]))


def _add_license(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "license", "employee license seats")
    p = leaf(group, "set", "set the number of employee seats",
             lambda c, a: licenses.set_license(c, actor=actor(), seats=a.seats),
             lambda r, a: r["summary"])
    p.add_argument("seats", metavar="N", type=int)
    leaf(group, "show", "show seat usage",
         lambda c, a: licenses.show_license(c), lambda r, a: r["summary"])


def _render_outbox(rows: list[dict[str, Any]], a: argparse.Namespace) -> str:
    if not rows:
        return "no mail" + (f' with status {a.status}' if a.status else "")
    return table(("id", "event", "status", "attempts", "ticket", "employee", "next attempt",
                  "last error"),
                 [(x["id"], x["event"], x["status"], x["attempts"], x["ticket_id"], x["employee_id"],
                   x["next_attempt_at"], (x["last_error"] or "")[:60]) for x in rows])


def _add_outbox(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "outbox", "the mail outbox")
    p = leaf(group, "list", "list outgoing mail, newest first",
             lambda c, a: outbox.list_outbox(c, status=a.status, limit=a.limit), _render_outbox)
    p.add_argument("--status", default=None, metavar="S", help="queued, sent or failed")
    p.add_argument("--limit", type=int, default=outbox.OUTBOX_LIST_LIMIT)

    p = leaf(group, "retry", "re-queue a failed mail",
             lambda c, a: outbox.retry_outbox(c, actor=actor(), outbox_id=a.id),
             lambda r, a: f'outbox mail {r["id"]} queued again (attempts so far: {r["attempts"]})')
    p.add_argument("id", metavar="ID", type=int)


def _render_rotation(r: dict[str, Any], a: argparse.Namespace) -> str:
    text = f'reply key {r["key"]} signs from now on'
    if r["previous"] is None:
        return text
    if not a.grace_hours:
        return text + f'; key {r["previous"]} no longer verifies'
    return text + f'; key {r["previous"]} still verifies until {r["previous_valid_until"]}'


def _add_inbound(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "inbound", "replies by mail: the keys that sign reply addresses")
    p = leaf(group, "rotate-key", "sign reply addresses with a new key from now on",
             lambda c, a: reply_keys.rotate_key(c, actor=actor(), grace_hours=a.grace_hours),
             _render_rotation)
    p.add_argument("--grace-hours", type=float, default=reply_keys.DEFAULT_GRACE_HOURS, metavar="H",
                   help="how long addresses signed by the previous key still verify "
                        f"(default {reply_keys.DEFAULT_GRACE_HOURS:g}; 0: not at all)")
    leaf(group, "keys", "list the reply keys (never their secrets)",
         lambda c, a: reply_keys.list_keys(c),
         lambda r, a: table(("key", "state", "created", "verifies until"),
                            [(x["id"], x["state"], x["created_at"], x["retires_at"] or "-")
                             for x in r]))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("admin", help="what an administrator does (accounts, groups, users, licenses, mail)")
    admin_sub = p.add_subparsers(dest="admin_area", required=True, metavar="AREA")
    _add_account(admin_sub)
    admin_groups.add_group(admin_sub)
    admin_people.add_webuser(admin_sub)
    admin_people.add_employee(admin_sub)
    admin_groups.add_employee_group(admin_sub)
    _add_license(admin_sub)
    _add_outbox(admin_sub)
    _add_inbound(admin_sub)
    explain.add_parser(admin_sub)
