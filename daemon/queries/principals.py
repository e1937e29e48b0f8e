"""The rows principals are made of (daemon.access.principals): a user, the levels of their
privilege group and, for employees, the accounts they may access; and the privilege version
those rows are as of."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES

Conn = asyncpg.Connection | asyncpg.Pool

_CUSTOMER = f"""
    SELECT u.id, u.username, u.full_name, u.email, u.account_id, u.active, g.name AS group_name,
           {", ".join(f"g.{c}" for c in CUSTOMER_PRIVILEGES)}
      FROM customer_web_users u JOIN customer_groups g ON g.id = u.group_id"""

_EMPLOYEE = f"""
    SELECT e.id, e.username, e.full_name, e.email, e.active, e.web_access, e.all_accounts,
           g.name AS group_name, {", ".join(f"g.{c}" for c in EMPLOYEE_PRIVILEGES)},
           COALESCE((SELECT array_agg(a.account_id ORDER BY a.account_id)
                       FROM employee_accounts a WHERE a.employee_id = e.id), '{{}}') AS account_ids
      FROM employees e JOIN employee_groups g ON g.id = e.group_id"""


async def customer(conn: Conn, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_CUSTOMER + " WHERE u.id = $1", user_id)


async def employee(conn: Conn, employee_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_EMPLOYEE + " WHERE e.id = $1", employee_id)


async def customer_named(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_CUSTOMER + " WHERE lower(u.username) = lower($1)", username)


async def employee_named(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_EMPLOYEE + " WHERE lower(e.username) = lower($1)", username)


async def all_customers(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(_CUSTOMER)


async def all_employees(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(_EMPLOYEE)


async def employees(conn: asyncpg.Connection, ids: Sequence[int]) -> list[asyncpg.Record]:
    return await conn.fetch(_EMPLOYEE + " WHERE e.id = ANY($1::bigint[])", list(ids))


async def employees_with_address(conn: asyncpg.Connection,
                                 ids: Sequence[int]) -> list[asyncpg.Record]:
    """Employee rows with their mail address (the rows carry it), in one round trip."""
    return await employees(conn, ids)


async def privilege_version(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT version FROM privilege_state")
