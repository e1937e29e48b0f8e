"""`portald admin webuser …` and `portald admin employee …`: customer web users, employees
and subcontractors (daemon/services/webusers.py, employees.py)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from daemon.access.scope import Kind
from daemon.cli.common import actor, area, changed, leaf, table, yes_no
from daemon.services import employees, totp, webusers
from daemon.services.common import parse_assignments


def _render_webuser(r: dict[str, Any]) -> str:
    state = "active" if r["active"] else "inactive"
    return f'{r["username"]} ({r["account"]}, group {r["group"]}, {state})'


def _now_or_unchanged(render: Any) -> Any:
    return lambda r, a: changed(r, "now " + render(r), "unchanged: " + render(r))


def _add_set_password(group: argparse._SubParsersAction, whose: str,
                      operation: Callable[..., Awaitable[dict[str, Any]]]) -> None:
    p = leaf(group, "set-password", f"set {whose} password (read from stdin)",
             lambda c, a: operation(c, actor=actor(), username=a.username, password=a.password),
             lambda r, a: f'password of {r["username"]} changed')
    p.add_argument("username", metavar="U")
    p.add_argument("--password-stdin", action="store_true", required=True)


def _render_totp(r: dict[str, Any], a: argparse.Namespace) -> str:
    ended = f'; {r["sessions_ended"]} session(s) ended'
    if r["totp"] == "off":
        return f'two-factor login of {r["username"]} is off' + ended
    return "\n".join([f'two-factor login of {r["username"]} is on' + ended,
                      f'secret: {r["secret"]}', f'uri: {r["otpauth_uri"]}',
                      "recovery codes (each works once; shown only now):",
                      *("  " + c for c in r["recovery_codes"])])


def _add_totp(group: argparse._SubParsersAction, kind: Kind, whose: str) -> None:
    p = leaf(group, "totp", f"turn {whose} two-factor login on (a new secret) or off; ends "
             "their sessions",
             lambda c, a: totp.set_totp(c, actor=actor(), kind=kind, username=a.username,
                                        enabled=a.enable),
             _render_totp)
    p.add_argument("username", metavar="U")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--enable", action="store_true",
                       help="print the secret, its otpauth:// URI and ten recovery codes")
    which.add_argument("--disable", action="store_true")


def add_webuser(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "webuser", "customer web users")
    p = leaf(group, "create", "create a customer web user",
             lambda c, a: webusers.create_webuser(c, actor=actor(), account=a.account,
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

    p = leaf(group, "set-group", "move a web user to another group",
             lambda c, a: webusers.set_webuser_group(c, actor=actor(), username=a.username,
                                                     group=a.group),
             _now_or_unchanged(_render_webuser))
    p.add_argument("username", metavar="U")
    p.add_argument("group", metavar="G")

    for verb, active in (("deactivate", False), ("activate", True)):
        p = leaf(group, verb, f"{verb} a web user",
                 lambda c, a, active=active: webusers.set_webuser_active(
                     c, actor=actor(), username=a.username, active=active),
                 _now_or_unchanged(_render_webuser))
        p.add_argument("username", metavar="U")

    _add_set_password(group, "a web user's", webusers.set_webuser_password)
    _add_totp(group, "customer", "a web user's")

    p = leaf(group, "list", "list web users",
             lambda c, a: webusers.list_webusers(c, account=a.account),
             lambda r, a: table(("username", "account", "group", "name", "active", "password"),
                                [(x["username"], x["account"], x["group"], x["full_name"],
                                  yes_no(x["active"]), yes_no(x["has_password"])) for x in r]))
    p.add_argument("--account", default=None, metavar="NAME")


def _access(r: dict[str, Any]) -> str:
    return "all accounts" if r["all_accounts"] else (", ".join(r["accounts"]) or "no accounts")


def _render_employee(r: dict[str, Any]) -> str:
    state = "active" if r["active"] else "inactive"
    web = "" if r["web_access"] else ", no web access"
    return f'{r["username"]} (group {r["group"]}, {_access(r)}, {state}{web})'


def _render_employees(r: dict[str, Any], a: argparse.Namespace) -> str:
    rows = [(x["username"], x["full_name"], x["group"], yes_no(x["active"]), yes_no(x["web_access"]),
             _access(x), x["hourly_rate"]) for x in r["employees"]]
    return (table(("username", "name", "group", "active", "web", "access", "rate"), rows)
            + f'\n{r["seats"]["summary"]}')


def _mail_settings_op(conn: asyncpg.Connection, a: argparse.Namespace) -> Awaitable[Any]:
    if not a.settings:
        return employees.get_mail_settings(conn, username=a.username)
    return employees.set_mail_settings(conn, actor=actor(), username=a.username,
                                       settings=parse_assignments(a.settings))


def add_employee(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "employee", "employees and subcontractors")
    _add_employee_create(group)

    p = leaf(group, "set-group", "move an employee to another group",
             lambda c, a: employees.set_employee_group(c, actor=actor(), username=a.username,
                                                       group=a.group),
             _now_or_unchanged(_render_employee))
    p.add_argument("username", metavar="U")
    p.add_argument("group", metavar="G")

    p = leaf(group, "access", "the accounts an employee may access",
             lambda c, a: employees.set_employee_access(
                 c, actor=actor(), username=a.username, all_accounts=a.all,
                 accounts=[] if a.accounts is None else a.accounts.split(",")),
             _now_or_unchanged(_render_employee))
    p.add_argument("username", metavar="U")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="all accounts")
    which.add_argument("--accounts", metavar="A,B", help="only these accounts (comma-separated)")
    which.add_argument("--none", action="store_true", help="no account at all")

    for verb, active in (("deactivate", False), ("activate", True)):
        p = leaf(group, verb, f"{verb} an employee" + (" (takes a license seat)" if active else ""),
                 lambda c, a, active=active: employees.set_employee_active(
                     c, actor=actor(), username=a.username, active=active),
                 lambda r, a: changed(r, "now ", "unchanged: ") + _render_employee(r)
                              + f'; {r["seats"]["summary"]}')
        p.add_argument("username", metavar="U")

    p = leaf(group, "web-access", "portal login on or off (mail does not depend on it; on takes a "
             "license seat)",
             lambda c, a: employees.set_employee_web_access(
                 c, actor=actor(), username=a.username, web_access=a.state == "on"),
             lambda r, a: changed(r, "now ", "unchanged: ") + _render_employee(r)
                          + f'; {r["seats"]["summary"]}')
    p.add_argument("username", metavar="U")
    p.add_argument("state", choices=("on", "off"), metavar="on|off")

    leaf(group, "list", "list employees and license seat usage",
         lambda c, a: employees.list_employees(c), _render_employees)
    _add_employee_settings(group)


def _add_employee_create(group: argparse._SubParsersAction) -> None:
    p = leaf(group, "create", "create an employee",
             lambda c, a: employees.create_employee(c, actor=actor(), username=a.username,
                                                    full_name=a.name, email=a.email, group=a.group,
                                                    password=a.password, hourly_rate=a.rate,
                                                    web_access=not a.no_web_access),
             lambda r, a: "created " + _render_employee(r)
                          + ("" if r["has_password"] else "; no password yet"))
    p.add_argument("--username", required=True, metavar="U")
    p.add_argument("--name", required=True, metavar="N", help="full name")
    p.add_argument("--email", required=True, metavar="E")
    p.add_argument("--group", default=employees.DEFAULT_EMPLOYEE_GROUP, metavar="G",
                   help=f"employee group (default {employees.DEFAULT_EMPLOYEE_GROUP})")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--rate", default="0", metavar="R", help="default hourly rate for labor")
    p.add_argument("--no-web-access", action="store_true",
                   help="no portal login (takes no license seat)")


def _add_employee_settings(group: argparse._SubParsersAction) -> None:
    """Password, rate and mail settings: what an employee keeps, set on their behalf."""
    _add_set_password(group, "an employee's", employees.set_employee_password)
    _add_totp(group, "employee", "an employee's")

    p = leaf(group, "set-rate", "set an employee's default hourly rate",
             lambda c, a: employees.set_employee_rate(c, actor=actor(), username=a.username,
                                                      hourly_rate=a.rate),
             lambda r, a: f'hourly rate of {r["username"]}: {r["hourly_rate"]}')
    p.add_argument("username", metavar="U")
    p.add_argument("rate", metavar="R")

    p = leaf(group, "mail-settings",
             "show an employee's alert and recipient settings, or set them (KEY=on|off)",
             _mail_settings_op,
             lambda r, a: f'{r["username"]}: '
                          + " ".join(f"{k}={v}" for k, v in r["settings"].items()))
    p.add_argument("username", metavar="U")
    p.add_argument("settings", metavar="KEY=on|off", nargs="*",
                   help="keys: " + ", ".join(employees.MAIL_SETTINGS))
