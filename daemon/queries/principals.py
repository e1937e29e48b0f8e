"""The rows principals are made of (daemon.access.principals): a user, the levels of their
privilege group and, for employees, the accounts they may access; and the privilege version
those rows are as of."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES

Conn = asyncpg.Connection | asyncpg.Pool

# whether the user has a confirmed second factor (daemon/db/sql/010_two_factor.sql)
_TOTP = "EXISTS (SELECT 1 FROM totp_credentials t WHERE t.{0} = {1}.id AND t.confirmed_at IS NOT NULL)"

_CUSTOMER = f"""
    SELECT u.id, u.username, u.full_name, u.email, u.account_id, u.active, g.name AS group_name,
           {_TOTP.format("webuser_id", "u")} AS totp_enabled,
           {", ".join(f"g.{c}" for c in CUSTOMER_PRIVILEGES)}
      FROM customer_web_users u JOIN customer_groups g ON g.id = u.group_id"""

_EMPLOYEE = f"""
    SELECT e.id, e.username, e.full_name, e.email, e.active, e.web_access, e.all_accounts,
           g.name AS group_name, {", ".join(f"g.{c}" for c in EMPLOYEE_PRIVILEGES)},
           {_TOTP.format("employee_id", "e")} AS totp_enabled,
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


async def act_as(conn: asyncpg.Connection, role: str, principal: str) -> None:
    """For the rest of the caller's transaction: run as `role`, with `principal` named for the
    row-level security policies (daemon/db/sql/008_row_level_security.sql), which
    portald_act_as also reads the attributes of."""
    await conn.execute("SELECT set_config('role', $1, true), portald_act_as($2)", role, principal)


async def whoami(conn: asyncpg.Connection) -> asyncpg.Record:
    """Who the caller's transaction runs as: the role and the principal the policies read."""
    return await conn.fetchrow(
        "SELECT current_user AS role, current_setting('portald.principal', true) AS principal")


async def database_role(conn: asyncpg.Connection | asyncpg.Pool) -> asyncpg.Record:
    """The role a connection works as, whether it is a superuser, and whether it is (a member
    of) the owner of the tickets table: the owner is what row-level security lets through when
    no principal is named (None before the first migration)."""
    return await conn.fetchrow(
        """SELECT current_user AS role,
                  (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
                  (SELECT pg_has_role(current_user, c.relowner, 'USAGE')
                     FROM pg_class c WHERE c.oid = to_regclass('tickets')) AS owner""")
