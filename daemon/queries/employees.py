"""Employees (subcontractors included), their account limits and their mail settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

MAIL_SETTING_COLUMNS: tuple[str, ...] = (
    "alert_assigned", "alert_created", "alert_reminder", "alert_digest",
    "recv_note", "recv_status", "recv_closed", "recv_email", "recv_charge", "recv_own_changes",
)

_SELECT = """
    SELECT e.id, e.username, e.full_name, e.email, e.active, e.web_access, e.all_accounts,
           e.hourly_rate, e.group_id, e.password_hash IS NOT NULL AS has_password, e.created_at,
           g.name AS "group",
           COALESCE((SELECT array_agg(a.name ORDER BY a.name)
                       FROM employee_accounts ea JOIN accounts a ON a.id = ea.account_id
                      WHERE ea.employee_id = e.id), '{}') AS accounts
      FROM employees e JOIN employee_groups g ON g.id = e.group_id"""


async def find_by_username(conn: asyncpg.Connection, username: str, *,
                           lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        _SELECT + " WHERE lower(e.username) = lower($1)" + (" FOR UPDATE OF e" if lock else ""),
        username)


async def get(conn: asyncpg.Connection, employee_id: int) -> asyncpg.Record:
    return await conn.fetchrow(_SELECT + " WHERE e.id = $1", employee_id)


async def list_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(_SELECT + " ORDER BY lower(e.username)")


async def insert(conn: asyncpg.Connection, *, username: str, full_name: str, email: str,
                 group_id: int, password_hash: str | None, hourly_rate: Decimal,
                 web_access: bool) -> int:
    # the seat check (licenses_check_seats) runs at the end of this statement
    return await conn.fetchval(
        """INSERT INTO employees (username, full_name, email, group_id, password_hash,
                                  hourly_rate, web_access)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
        username, full_name, email, group_id, password_hash, hourly_rate, web_access,
    )


async def set_group(conn: asyncpg.Connection, employee_id: int, group_id: int) -> None:
    await conn.execute("UPDATE employees SET group_id = $2 WHERE id = $1", employee_id, group_id)


async def set_active(conn: asyncpg.Connection, employee_id: int, active: bool) -> None:
    # activating may take a license seat: the seat trigger refuses when none is free
    await conn.execute("UPDATE employees SET active = $2 WHERE id = $1", employee_id, active)


async def set_web_access(conn: asyncpg.Connection, employee_id: int, web_access: bool) -> None:
    # web access takes a seat while active (the seat trigger refuses when none is free);
    # taking it away ends the employee's sessions (trigger employees_end_sessions)
    await conn.execute("UPDATE employees SET web_access = $2 WHERE id = $1", employee_id, web_access)


async def set_password_hash(conn: asyncpg.Connection, employee_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE employees SET password_hash = $2 WHERE id = $1",
                       employee_id, password_hash)


async def set_hourly_rate(conn: asyncpg.Connection, employee_id: int, rate: Decimal) -> None:
    await conn.execute("UPDATE employees SET hourly_rate = $2 WHERE id = $1", employee_id, rate)


async def set_access(conn: asyncpg.Connection, employee_id: int, *, all_accounts: bool,
                     account_ids: list[int]) -> None:
    """Either all accounts (the list is cleared) or exactly the listed ones."""
    await conn.execute("UPDATE employees SET all_accounts = $2 WHERE id = $1", employee_id, all_accounts)
    await conn.execute(
        "DELETE FROM employee_accounts WHERE employee_id = $1 AND NOT (account_id = ANY($2::bigint[]))",
        employee_id, account_ids)
    await conn.execute(
        """INSERT INTO employee_accounts (employee_id, account_id)
           SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING""",
        employee_id, account_ids)


async def mail_settings(conn: asyncpg.Connection, employee_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT " + ", ".join(MAIL_SETTING_COLUMNS) + " FROM employee_mail_settings WHERE employee_id = $1",
        employee_id)


async def update_mail_settings(conn: asyncpg.Connection, employee_id: int,
                               values: dict[str, Any]) -> None:
    columns = [c for c in MAIL_SETTING_COLUMNS if c in values]
    # the row normally exists (created with the employee); insert it if someone removed it
    await conn.execute(
        "INSERT INTO employee_mail_settings (employee_id) VALUES ($1) ON CONFLICT DO NOTHING",
        employee_id)
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    await conn.execute(f"UPDATE employee_mail_settings SET {assignments} WHERE employee_id = $1",
                       employee_id, *(values[c] for c in columns))
