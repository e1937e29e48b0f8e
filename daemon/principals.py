"""Principals read straight from the database (no cache): the privilege cache builds the same
objects in bulk, the mail fan-out and `admin explain` read one at a time."""

from __future__ import annotations

from typing import Literal

import asyncpg

from daemon.scope import CUSTOMER_IDENTIFIERS, EMPLOYEE_RIGHTS, Principal

CUSTOMER_GROUP_COLUMNS = ", ".join(f"g.{c}" for c in CUSTOMER_IDENTIFIERS)
EMPLOYEE_GROUP_COLUMNS = ", ".join(f"g.{c}" for c in EMPLOYEE_RIGHTS)


def level_name(value: object) -> str:
    """Boolean columns hold off/on identifiers; text columns hold the level itself."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def customer_principal(row: asyncpg.Record | dict) -> Principal:
    return Principal(
        kind="customer", id=row["id"], username=row["username"],
        display_name=row["full_name"] or row["username"], group_name=row["group_name"],
        privileges={i: level_name(row[i]) for i in CUSTOMER_IDENTIFIERS},
        account_id=row["account_id"], active=row["active"],
    )


def employee_principal(row: asyncpg.Record | dict, account_ids: list[int] | None) -> Principal:
    return Principal(
        kind="employee", id=row["id"], username=row["username"],
        display_name=row["full_name"], group_name=row["group_name"],
        privileges={r: level_name(row[r]) for r in EMPLOYEE_RIGHTS},
        all_accounts=row["all_accounts"], account_ids=frozenset(account_ids or ()),
        active=row["active"] and row["web_access"],
    )


CUSTOMER_SQL = f"""
    SELECT u.id, u.username, u.full_name, u.account_id, u.active, g.name AS group_name,
           {CUSTOMER_GROUP_COLUMNS}
      FROM customer_web_users u JOIN customer_groups g ON g.id = u.group_id"""

EMPLOYEE_SQL = f"""
    SELECT e.id, e.username, e.full_name, e.active, e.web_access, e.all_accounts,
           g.name AS group_name, {EMPLOYEE_GROUP_COLUMNS},
           COALESCE((SELECT array_agg(a.account_id ORDER BY a.account_id)
                       FROM employee_accounts a WHERE a.employee_id = e.id), '{{}}') AS account_ids
      FROM employees e JOIN employee_groups g ON g.id = e.group_id"""


async def load_principal(conn: asyncpg.Connection | asyncpg.Pool,
                         kind: Literal["customer", "employee"], user_id: int) -> Principal | None:
    if kind == "customer":
        row = await conn.fetchrow(CUSTOMER_SQL + " WHERE u.id = $1", user_id)
        return customer_principal(row) if row else None
    row = await conn.fetchrow(EMPLOYEE_SQL + " WHERE e.id = $1", user_id)
    return employee_principal(row, row["account_ids"]) if row else None


async def find_user(conn: asyncpg.Connection | asyncpg.Pool, username: str) -> Principal | None:
    """The customer web user or employee with this login name (names are one namespace)."""
    row = await conn.fetchrow(CUSTOMER_SQL + " WHERE lower(u.username) = lower($1)", username)
    if row:
        return customer_principal(row)
    row = await conn.fetchrow(EMPLOYEE_SQL + " WHERE lower(e.username) = lower($1)", username)
    return employee_principal(row, row["account_ids"]) if row else None
