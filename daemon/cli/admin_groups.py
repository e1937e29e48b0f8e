"""`portald admin group …` and `portald admin employee-group …`: privilege groups of both
kinds, through the one set of operations of daemon/services/groups.py."""

from __future__ import annotations

import argparse
from typing import Any

from daemon.access.kinds import CUSTOMER_GROUPS, EMPLOYEE_GROUPS, GroupKind
from daemon.cli.common import actor, area, changed, leaf, table
from daemon.services import groups
from daemon.services.common import parse_assignments


def _render_groups(found: list[dict[str, Any]], kind: GroupKind) -> str:
    """Identifiers down, groups across: the shape of the privilege checkbox window."""
    key, count = kind.levels_key, kind.count_key
    headers = ["", *(g["name"] for g in found)]
    flags = [", ".join(f for f, on in (("system", g["is_system"]), ("default", g.get("is_default")))
                       if on) or "custom" for g in found]
    rows: list[list[Any]] = [["(kind)", *flags], [count, *(g[count] for g in found)]]
    for identifier in found[0][key] if found else ():
        rows.append([identifier, *(g[key][identifier] for g in found)])
    return table(headers, rows)


def _render_levels(r: dict[str, Any], kind: GroupKind) -> str:
    if not r["changed"]:
        return f'{kind.group_word} "{r["name"]}": no change'
    return f'{kind.group_word} "{r["name"]}": ' + ", ".join(
        f"{k}={r[kind.levels_key][k]}" for k in r["changed"])


def _add_list_create(group: argparse._SubParsersAction, kind: GroupKind, *,
                     copy_help: str | None) -> None:
    what = kind.group_word
    leaf(group, "list", f"list {what}s with their {kind.levels_key}",
         lambda c, a: groups.list_groups(c, kind), lambda r, a: _render_groups(r, kind))

    p = leaf(group, "create", f"create a custom {what}",
             lambda c, a: groups.create_group(c, kind, actor=actor(), name=a.name,
                                              copy_from=a.copy_from),
             lambda r, a: f'{what} "{r["name"]}" created'
                          + (f' (copied from "{a.copy_from}")' if a.copy_from else ""))
    p.add_argument("name", metavar="NAME")
    p.add_argument("--copy-from", metavar="GROUP", default=None, help=copy_help)


def _add_set(group: argparse._SubParsersAction, kind: GroupKind, help_text: str,
             metavar: str) -> None:
    p = leaf(group, "set", help_text,
             lambda c, a: groups.set_group_levels(c, kind, actor=actor(), name=a.name,
                                                  levels=parse_assignments(a.levels)),
             lambda r, a: _render_levels(r, kind))
    p.add_argument("name", metavar="NAME")
    p.add_argument("levels", metavar=metavar, nargs="+")


def _add_rename(group: argparse._SubParsersAction, kind: GroupKind) -> None:
    p = leaf(group, "rename", f"rename a custom {kind.group_word}",
             lambda c, a: groups.rename_group(c, kind, actor=actor(), name=a.old, new_name=a.new),
             lambda r, a: f'{kind.group_word} "{r["old_name"]}" renamed to "{r["name"]}"')
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")


def _add_delete(group: argparse._SubParsersAction, kind: GroupKind) -> None:
    p = leaf(group, "delete", f"delete a custom {kind.group_word} no {kind.member_word} holds",
             lambda c, a: groups.delete_group(c, kind, actor=actor(), name=a.name),
             lambda r, a: f'{kind.group_word} "{r["deleted"]}" deleted')
    p.add_argument("name", metavar="NAME")


def add_group(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "group", "customer privilege groups")
    _add_list_create(group, CUSTOMER_GROUPS, copy_help="start from this group's privileges")
    _add_delete(group, CUSTOMER_GROUPS)
    p = leaf(group, "default", "make a group the default for new web users",
             lambda c, a: groups.set_default_group(c, actor=actor(), name=a.name),
             lambda r, a: changed(r, f'customer group "{r["default"]}" is now the default',
                                  f'customer group "{r["default"]}" is already the default'))
    p.add_argument("name", metavar="NAME")
    _add_rename(group, CUSTOMER_GROUPS)
    _add_set(group, CUSTOMER_GROUPS, "set privileges of a custom group, e.g. charges=off quotes=accept",
             "IDENTIFIER=LEVEL")


def add_employee_group(admin_sub: argparse._SubParsersAction) -> None:
    group = area(admin_sub, "employee-group", "employee privilege groups")
    _add_list_create(group, EMPLOYEE_GROUPS, copy_help=None)
    _add_set(group, EMPLOYEE_GROUPS, "set rights of a custom employee group, e.g. ticket_scope=all",
             "RIGHT=LEVEL")
    _add_rename(group, EMPLOYEE_GROUPS)
    _add_delete(group, EMPLOYEE_GROUPS)
