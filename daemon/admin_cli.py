"""`portald admin …`: the command-line face of daemon/admin.py.

Every leaf command takes `--config PATH` and `--json`. Bad input ends in one line on stderr
and exit status 1 (AdminError, mapped in daemon/__main__.py); usage errors are argparse's (2).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from daemon import admin
from daemon.admin import AdminError

ConfigArg = Callable[[argparse.ArgumentParser], None]
Operation = Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[Any]]
Render = Callable[[Any, argparse.Namespace], str]


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
        # imported here: daemon.__main__ imports this module while building its parser
        from daemon.__main__ import _load, emit, with_connection

        cfg = _load(args)
        args.password = read_password() if getattr(args, "password_stdin", False) else None
        result = asyncio.run(with_connection(cfg, lambda conn: op(conn, args)))
        emit(args, result, render(result, args))
        return 0

    return handler


def _leaf(parent: argparse._SubParsersAction, name: str, help_text: str, config_arg: ConfigArg,
          op: Operation, render: Render) -> argparse.ArgumentParser:
    p = parent.add_parser(name, help=help_text, description=help_text)
    config_arg(p)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(func=_run(op, render))
    return p


def _area(admin_sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    p = admin_sub.add_parser(name, help=help_text, description=help_text)
    return p.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _onoff(flag: bool) -> str:
    return "yes" if flag else "no"


def _changed(result: dict[str, Any], text: str, unchanged: str) -> str:
    return text if result.get("changed", True) else unchanged


# -- accounts -------------------------------------------------------------------------------


def _add_account(admin_sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    area = _area(admin_sub, "account", "customer accounts")
    p = _leaf(area, "create", "create a customer account", config_arg,
              lambda c, a: admin.create_account(c, actor=actor(), name=a.name,
                                                contact_name=a.contact, phone=a.phone,
                                                email=a.email, address=a.address),
              lambda r, a: f'account "{r["name"]}" created (id {r["id"]})')
    p.add_argument("name", metavar="NAME")
    p.add_argument("--contact", default="", help="contact person")
    p.add_argument("--phone", default="")
    p.add_argument("--email", default="")
    p.add_argument("--address", default="")

    _leaf(area, "list", "list the accounts", config_arg,
          lambda c, a: admin.list_accounts(c),
          lambda r, a: table(("name", "contact", "web users", "tickets", "open"),
                             [(x["name"], x["contact_name"], x["web_users"], x["tickets"],
                               x["open_tickets"]) for x in r]))


# -- customer privilege groups --------------------------------------------------------------


def _render_groups(groups: list[dict[str, Any]], key: str, count_key: str,
                   count_label: str) -> str:
    """Identifiers down, groups across: the shape of the privilege checkbox window."""
    headers = ["", *(g["name"] for g in groups)]
    flags = [", ".join(f for f, on in (("system", g["is_system"]), ("default", g.get("is_default")))
                       if on) or "custom" for g in groups]
    rows: list[list[Any]] = [["(kind)", *flags], [count_label, *(g[count_key] for g in groups)]]
    for identifier in groups[0][key] if groups else ():
        rows.append([identifier, *(g[key][identifier] for g in groups)])
    return table(headers, rows)


def _render_levels(r: dict[str, Any], key: str, what: str) -> str:
    if not r["changed"]:
        return f'{what} "{r["name"]}": no change'
    return f'{what} "{r["name"]}": ' + ", ".join(f"{k}={r[key][k]}" for k in r["changed"])


def _add_group_list_create(area: argparse._SubParsersAction, config_arg: ConfigArg, what: str,
                           key: str, count: str, list_groups: Callable[..., Awaitable[Any]],
                           create: Callable[..., Awaitable[Any]], *,
                           copy_help: str | None = None) -> None:
    """`list` and `create` of either kind of privilege group: `key` names the privileges of a
    group in the listing, `count` its members."""
    _leaf(area, "list", f"list {what}s with their {key}", config_arg,
          lambda c, a: list_groups(c),
          lambda r, a: _render_groups(r, key, count, count))

    p = _leaf(area, "create", f"create a custom {what}", config_arg,
              lambda c, a: create(c, actor=actor(), name=a.name, copy_from=a.copy_from),
              lambda r, a: f'{what} "{r["name"]}" created'
                           + (f' (copied from "{a.copy_from}")' if a.copy_from else ""))
    p.add_argument("name", metavar="NAME")
    p.add_argument("--copy-from", metavar="GROUP", default=None, help=copy_help)


def _add_group(admin_sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    area = _area(admin_sub, "group", "customer privilege groups")
    _add_group_list_create(area, config_arg, "customer group", "privileges", "users",
                           admin.list_customer_groups, admin.create_customer_group,
                           copy_help="start from this group's privileges")

    p = _leaf(area, "delete", "delete a custom customer group no user holds", config_arg,
              lambda c, a: admin.delete_customer_group(c, actor=actor(), name=a.name),
              lambda r, a: f'customer group "{r["deleted"]}" deleted')
    p.add_argument("name", metavar="NAME")

    p = _leaf(area, "default", "make a group the default for new web users", config_arg,
              lambda c, a: admin.set_default_customer_group(c, actor=actor(), name=a.name),
              lambda r, a: _changed(r, f'customer group "{r["default"]}" is now the default',
                                    f'customer group "{r["default"]}" is already the default'))
    p.add_argument("name", metavar="NAME")

    p = _leaf(area, "rename", "rename a custom customer group", config_arg,
              lambda c, a: admin.rename_customer_group(c, actor=actor(), name=a.old, new_name=a.new),
              lambda r, a: f'customer group "{r["old_name"]}" renamed to "{r["name"]}"')
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")

    p = _leaf(area, "set", "set privileges of a custom group, e.g. charges=off quotes=accept",
              config_arg,
              lambda c, a: admin.set_customer_group_levels(
                  c, actor=actor(), name=a.name, levels=admin.parse_assignments(a.levels)),
              lambda r, a: _render_levels(r, "privileges", "customer group"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("levels", metavar="IDENTIFIER=LEVEL", nargs="+")


# -- customer web users ---------------------------------------------------------------------


def _render_webuser(r: dict[str, Any]) -> str:
    state = "active" if r["active"] else "inactive"
    return f'{r["username"]} ({r["account"]}, group {r["group"]}, {state})'


def _add_webuser(admin_sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    area = _area(admin_sub, "webuser", "customer web users")
    p = _leaf(area, "create", "create a customer web user", config_arg,
              lambda c, a: admin.create_webuser(c, actor=actor(), account=a.account,
                                                username=a.username, group=a.group,
                                                password=a.password, full_name=a.name,
                                                email=a.email),
              lambda r, a: "created " + _render_webuser(r)
                           + ("" if r["has_password"] else "; no password yet"))
    p.add_argument("--account", required=True, metavar="NAME")
    p.add_argument("--username", required=True, metavar="U")
    p.add_argument("--group", default=None, metavar="G", help="default: the default customer group")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--name", default="", metavar="N", help="full name")
    p.add_argument("--email", default="", metavar="E")

    p = _leaf(area, "set-group", "move a web user to another group", config_arg,
              lambda c, a: admin.set_webuser_group(c, actor=actor(), username=a.username, group=a.group),
              lambda r, a: _changed(r, "now " + _render_webuser(r), "unchanged: " + _render_webuser(r)))
    p.add_argument("username", metavar="U")
    p.add_argument("group", metavar="G")

    for verb, active in (("deactivate", False), ("activate", True)):
        p = _leaf(area, verb, f"{verb} a web user", config_arg,
                  lambda c, a, active=active: admin.set_webuser_active(
                      c, actor=actor(), username=a.username, active=active),
                  lambda r, a: _changed(r, "now " + _render_webuser(r),
                                        "unchanged: " + _render_webuser(r)))
        p.add_argument("username", metavar="U")

    p = _leaf(area, "set-password", "set a web user's password (read from stdin)", config_arg,
              lambda c, a: admin.set_webuser_password(c, actor=actor(), username=a.username,
                                                      password=a.password),
              lambda r, a: f'password of {r["username"]} changed')
    p.add_argument("username", metavar="U")
    p.add_argument("--password-stdin", action="store_true", required=True)

    p = _leaf(area, "list", "list web users", config_arg,
              lambda c, a: admin.list_webusers(c, account=a.account),
              lambda r, a: table(("username", "account", "group", "name", "active", "password"),
                                 [(x["username"], x["account"], x["group"], x["full_name"],
                                   _onoff(x["active"]), _onoff(x["has_password"])) for x in r]))
    p.add_argument("--account", default=None, metavar="NAME")


# -- employees ------------------------------------------------------------------------------


def _access(r: dict[str, Any]) -> str:
    return "all accounts" if r["all_accounts"] else (", ".join(r["accounts"]) or "no accounts")


def _render_employee(r: dict[str, Any]) -> str:
    state = "active" if r["active"] else "inactive"
    web = "" if r["web_access"] else ", no web access"
    return f'{r["username"]} (group {r["group"]}, {_access(r)}, {state}{web})'


def _render_employees(r: dict[str, Any], a: argparse.Namespace) -> str:
    rows = [(x["username"], x["full_name"], x["group"], _onoff(x["active"]), _onoff(x["web_access"]),
             _access(x), x["hourly_rate"]) for x in r["employees"]]
    return (table(("username", "name", "group", "active", "web", "access", "rate"), rows)
            + f'\n{r["seats"]["summary"]}')


def _mail_settings_op(conn: asyncpg.Connection, a: argparse.Namespace) -> Awaitable[Any]:
    if not a.settings:
        return admin.get_mail_settings(conn, username=a.username)
    return admin.set_mail_settings(conn, actor=actor(), username=a.username,
                                   settings=admin.parse_assignments(a.settings))


def _add_employee(admin_sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    area = _area(admin_sub, "employee", "employees and subcontractors")
    p = _leaf(area, "create", "create an employee", config_arg,
              lambda c, a: admin.create_employee(c, actor=actor(), username=a.username,
                                                 full_name=a.name, email=a.email, group=a.group,
                                                 password=a.password, hourly_rate=a.rate,
                                                 web_access=not a.no_web_access),
              lambda r, a: "created " + _render_employee(r)
                           + ("" if r["has_password"] else "; no password yet"))
    p.add_argument("--username", required=True, metavar="U")
    p.add_argument("--name", required=True, metavar="N", help="full name")
    p.add_argument("--email", required=True, metavar="E")
    p.add_argument("--group", default=admin.DEFAULT_EMPLOYEE_GROUP, metavar="G",
                   help=f"employee group (default {admin.DEFAULT_EMPLOYEE_GROUP})")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--rate", default="0", metavar="R", help="default hourly rate for labor")
    p.add_argument("--no-web-access", action="store_true",
                   help="no portal login (takes no license seat)")

    p = _leaf(area, "set-group", "move an employee to another group", config_arg,
              lambda c, a: admin.set_employee_group(c, actor=actor(), username=a.username, group=a.group),
              lambda r, a: _changed(r, "now " + _render_employee(r), "unchanged: " + _render_employee(r)))
    p.add_argument("username", metavar="U")
    p.add_argument("group", metavar="G")

    p = _leaf(area, "access", "the accounts an employee may access", config_arg,
              lambda c, a: admin.set_employee_access(
                  c, actor=actor(), username=a.username, all_accounts=a.all,
                  accounts=[] if a.accounts is None else a.accounts.split(",")),
              lambda r, a: _changed(r, "now " + _render_employee(r), "unchanged: " + _render_employee(r)))
    p.add_argument("username", metavar="U")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="all accounts")
    which.add_argument("--accounts", metavar="A,B", help="only these accounts (comma-separated)")
    which.add_argument("--none", action="store_true", help="no account at all")

    for verb, active in (("deactivate", False), ("activate", True)):
        p = _leaf(area, verb, f"{verb} an employee" + (" (takes a license seat)" if active else ""),
                  config_arg,
                  lambda c, a, active=active: admin.set_employee_active(
                      c, actor=actor(), username=a.username, active=active),
                  lambda r, a: _changed(r, "now ", "unchanged: ") + _render_employee(r)
                               + f'; {r["seats"]["summary"]}')
        p.add_argument("username", metavar="U")

    _leaf(area, "list", "list employees and license seat usage", config_arg,
          lambda c, a: admin.list_employees(c), _render_employees)

    p = _leaf(area, "set-password", "set an employee's password (read from stdin)", config_arg,
              lambda c, a: admin.set_employee_password(c, actor=actor(), username=a.username,
                                                       password=a.password),
              lambda r, a: f'password of {r["username"]} changed')
    p.add_argument("username", metavar="U")
    p.add_argument("--password-stdin", action="store_true", required=True)

    p = _leaf(area, "set-rate", "set an employee's default hourly rate", config_arg,
              lambda c, a: admin.set_employee_rate(c, actor=actor(), username=a.username,
                                                   hourly_rate=a.rate),
              lambda r, a: f'hourly rate of {r["username"]}: {r["hourly_rate"]}')
    p.add_argument("username", metavar="U")
    p.add_argument("rate", metavar="R")

    p = _leaf(area, "mail-settings",
              "show an employee's alert and recipient settings, or set them (KEY=on|off)",
              config_arg, _mail_settings_op,
              lambda r, a: f'{r["username"]}: '
                           + " ".join(f"{k}={v}" for k, v in r["settings"].items()))
    p.add_argument("username", metavar="U")
    p.add_argument("settings", metavar="KEY=on|off", nargs="*",
                   help="keys: " + ", ".join(admin.MAIL_SETTINGS))


def _add_employee_group(admin_sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    area = _area(admin_sub, "employee-group", "employee privilege groups")
    _add_group_list_create(area, config_arg, "employee group", "rights", "employees",
                           admin.list_employee_groups, admin.create_employee_group)

    p = _leaf(area, "set", "set rights of a custom employee group, e.g. ticket_scope=all",
              config_arg,
              lambda c, a: admin.set_employee_group_rights(
                  c, actor=actor(), name=a.name, rights=admin.parse_assignments(a.rights)),
              lambda r, a: _render_levels(r, "rights", "employee group"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("rights", metavar="RIGHT=LEVEL", nargs="+")

    p = _leaf(area, "rename", "rename a custom employee group", config_arg,
              lambda c, a: admin.rename_employee_group(c, actor=actor(), name=a.old, new_name=a.new),
              lambda r, a: f'employee group "{r["old_name"]}" renamed to "{r["name"]}"')
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")

    p = _leaf(area, "delete", "delete a custom employee group no employee holds", config_arg,
              lambda c, a: admin.delete_employee_group(c, actor=actor(), name=a.name),
              lambda r, a: f'employee group "{r["deleted"]}" deleted')
    p.add_argument("name", metavar="NAME")


# -- licenses and outbox --------------------------------------------------------------------


def _add_license(admin_sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    area = _area(admin_sub, "license", "employee license seats")
    p = _leaf(area, "set", "set the number of employee seats", config_arg,
              lambda c, a: admin.set_license(c, actor=actor(), seats=a.seats),
              lambda r, a: r["summary"])
    p.add_argument("seats", metavar="N", type=int)
    _leaf(area, "show", "show seat usage", config_arg,
          lambda c, a: admin.show_license(c), lambda r, a: r["summary"])


def _render_outbox(rows: list[dict[str, Any]], a: argparse.Namespace) -> str:
    if not rows:
        return "no mail" + (f' with status {a.status}' if a.status else "")
    return table(("id", "event", "status", "attempts", "ticket", "employee", "next attempt",
                  "last error"),
                 [(x["id"], x["event"], x["status"], x["attempts"], x["ticket_id"], x["employee_id"],
                   x["next_attempt_at"], (x["last_error"] or "")[:60]) for x in rows])


def _add_outbox(admin_sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    area = _area(admin_sub, "outbox", "the mail outbox")
    p = _leaf(area, "list", "list outgoing mail, newest first", config_arg,
              lambda c, a: admin.list_outbox(c, status=a.status, limit=a.limit), _render_outbox)
    p.add_argument("--status", default=None, metavar="S", help="queued, sent or failed")
    p.add_argument("--limit", type=int, default=admin.OUTBOX_LIST_LIMIT)

    p = _leaf(area, "retry", "re-queue a failed mail", config_arg,
              lambda c, a: admin.retry_outbox(c, actor=actor(), outbox_id=a.id),
              lambda r, a: f'outbox mail {r["id"]} queued again (attempts so far: {r["attempts"]})')
    p.add_argument("id", metavar="ID", type=int)


def add_parser(sub: argparse._SubParsersAction, config_arg: ConfigArg) -> None:
    p = sub.add_parser("admin", help="what an administrator does (accounts, groups, users, licenses, mail)")
    admin_sub = p.add_subparsers(dest="admin_area", required=True, metavar="AREA")
    _add_account(admin_sub, config_arg)
    _add_group(admin_sub, config_arg)
    _add_webuser(admin_sub, config_arg)
    _add_employee(admin_sub, config_arg)
    _add_employee_group(admin_sub, config_arg)
    _add_license(admin_sub, config_arg)
    _add_outbox(admin_sub, config_arg)

    # ---- commands registered by other modules -------------------------------------------
    # `portald admin explain USER TICKET_ID` goes here, one line:
    #     daemon.explain.add_parser(admin_sub, config_arg)
    from daemon import explain
    explain.add_parser(admin_sub, config_arg)
    # ----------------------------------------------------------------------------------------

