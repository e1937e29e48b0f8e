"""The demo data set's statements (sql/demo.sql): each inserts one row of the fixed data set,
or says which of its names the database holds already."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from daemon.queries.named import queries

_SQL = queries("demo.sql")


async def lock(conn: asyncpg.Connection, key: int) -> None:
    await conn.execute(_SQL["lock"], key)


async def now(conn: asyncpg.Connection) -> Any:
    return await conn.fetchval(_SQL["now"])


async def present(conn: asyncpg.Connection, accounts: list[str], groups: list[str],
                  usernames: list[str]) -> tuple[set[str], set[str], set[str]]:
    """Which of these account names, customer group names and (lower-cased) login names
    exist already."""
    found_accounts = {r["name"] for r in await conn.fetch(_SQL["accounts_named"], accounts)}
    found_groups = {r["name"] for r in await conn.fetch(_SQL["customer_groups_named"], groups)}
    found_users = {r["u"] for r in await conn.fetch(_SQL["logins_named"], usernames)}
    return found_accounts, found_groups, found_users


async def insert(conn: asyncpg.Connection, name: str, *values: Any) -> Any:
    """Run the named insert; the new row's id for those that return one."""
    sql = _SQL[f"insert_{name}"]
    if "RETURNING" in sql:
        return await conn.fetchval(sql, *values)
    await conn.execute(sql, *values)
    return None


async def make_room_for(conn: asyncpg.Connection, employees: int, seats: int) -> None:
    await conn.execute(_SQL["make_room_for"], employees, seats)


async def add_employee_accounts(conn: asyncpg.Connection, pairs: Iterable[tuple[int, int]]) -> None:
    await conn.executemany(_SQL["add_employee_account"], list(pairs))


async def add_ticket_recipients(conn: asyncpg.Connection, pairs: Iterable[tuple[int, int]]) -> None:
    await conn.executemany(_SQL["add_ticket_recipient"], list(pairs))


async def set_mail_settings(conn: asyncpg.Connection, employee_id: int,
                            settings: Mapping[str, bool]) -> None:
    # column names come from the fixed data set only
    columns = sorted(settings)
    await conn.execute(
        "UPDATE employee_mail_settings SET "
        + ", ".join(f"{col} = ${i}" for i, col in enumerate(columns, start=2))
        + " WHERE employee_id = $1",
        employee_id, *(settings[col] for col in columns))
