"""Employee privilege groups: one column per right of daemon.scope.EMPLOYEE_RIGHTS."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.scope import EMPLOYEE_RIGHTS

# Column names below come from this fixed list only, never from input.
RIGHT_COLUMNS: tuple[str, ...] = tuple(EMPLOYEE_RIGHTS)


async def find_by_name(conn: asyncpg.Connection, name: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM employee_groups WHERE name = $1" + (" FOR UPDATE" if lock else ""), name)


async def list_with_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT g.*, (SELECT count(*) FROM employees e WHERE e.group_id = g.id) AS employees
             FROM employee_groups g ORDER BY NOT g.is_system, g.id"""
    )


async def employee_count(conn: asyncpg.Connection, group_id: int) -> int:
    return await conn.fetchval("SELECT count(*) FROM employees WHERE group_id = $1", group_id)


async def insert(conn: asyncpg.Connection, name: str, values: dict[str, Any]) -> asyncpg.Record:
    columns = [c for c in RIGHT_COLUMNS if c in values]
    placeholders = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
    return await conn.fetchrow(
        f"INSERT INTO employee_groups (name{''.join(', ' + c for c in columns)})"
        f" VALUES ($1{', ' if columns else ''}{placeholders}) RETURNING *",
        name, *(values[c] for c in columns),
    )


async def update_rights(conn: asyncpg.Connection, group_id: int, values: dict[str, Any]) -> asyncpg.Record:
    columns = [c for c in RIGHT_COLUMNS if c in values]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    return await conn.fetchrow(
        f"UPDATE employee_groups SET {assignments} WHERE id = $1 RETURNING *",
        group_id, *(values[c] for c in columns),
    )


async def rename(conn: asyncpg.Connection, group_id: int, new_name: str) -> None:
    await conn.execute("UPDATE employee_groups SET name = $2 WHERE id = $1", group_id, new_name)


async def delete(conn: asyncpg.Connection, group_id: int) -> None:
    await conn.execute("DELETE FROM employee_groups WHERE id = $1", group_id)
