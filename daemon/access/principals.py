"""Principals read straight from the database (no cache): the privilege cache builds the same
objects in bulk, the mail fan-out and `admin explain` read one or a few at a time."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES, Kind, Principal
from daemon.queries import principals as q


def level_name(value: object) -> str:
    """Boolean columns hold off/on identifiers; text columns hold the level itself."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def customer_principal(row: asyncpg.Record | dict) -> Principal:
    return Principal(
        kind="customer", id=row["id"], username=row["username"],
        display_name=row["full_name"] or row["username"], email=row["email"],
        group_name=row["group_name"],
        privileges={i: level_name(row[i]) for i in CUSTOMER_PRIVILEGES},
        account_id=row["account_id"], active=row["active"], totp_enabled=row["totp_enabled"],
    )


def employee_principal(row: asyncpg.Record | dict) -> Principal:
    return Principal(
        kind="employee", id=row["id"], username=row["username"],
        display_name=row["full_name"], email=row["email"], group_name=row["group_name"],
        privileges={r: level_name(row[r]) for r in EMPLOYEE_PRIVILEGES},
        all_accounts=row["all_accounts"], account_ids=frozenset(row["account_ids"] or ()),
        active=row["active"], web_access=row["web_access"], totp_enabled=row["totp_enabled"],
    )


async def load_principal(conn: asyncpg.Connection | asyncpg.Pool, kind: Kind,
                         user_id: int) -> Principal | None:
    if kind == "customer":
        row = await q.customer(conn, user_id)
        return customer_principal(row) if row else None
    row = await q.employee(conn, user_id)
    return employee_principal(row) if row else None


async def find_user(conn: asyncpg.Connection | asyncpg.Pool, username: str) -> Principal | None:
    """The customer web user or employee with this login name (names are one namespace)."""
    row = await q.customer_named(conn, username)
    if row:
        return customer_principal(row)
    row = await q.employee_named(conn, username)
    return employee_principal(row) if row else None


async def load_employees(conn: asyncpg.Connection, ids: Iterable[int]) -> dict[int, Principal]:
    """Employee principals as of now, straight from the database, many at once."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {r["id"]: employee_principal(r) for r in await q.employees(conn, wanted)}


async def load_recipients(conn: asyncpg.Connection,
                          ids: Iterable[int]) -> tuple[dict[int, Principal], dict[int, str]]:
    """Employee principals and their mail addresses, in one round trip."""
    principals: dict[int, Principal] = {}
    addresses: dict[int, str] = {}
    for row in await q.employees_with_address(conn, sorted(set(ids))):
        principals[row["id"]] = employee_principal(row)
        addresses[row["id"]] = row["email"]
    return principals, addresses
