"""Customer privilege groups: one column per identifier of daemon.scope.CUSTOMER_IDENTIFIERS."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.scope import CUSTOMER_IDENTIFIERS

# Column names below come from this fixed list only, never from input.
LEVEL_COLUMNS: tuple[str, ...] = tuple(CUSTOMER_IDENTIFIERS)


async def find_by_name(conn: asyncpg.Connection, name: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM customer_groups WHERE name = $1" + (" FOR UPDATE" if lock else ""), name)


async def list_with_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT g.*, (SELECT count(*) FROM customer_web_users u WHERE u.group_id = g.id) AS users
             FROM customer_groups g ORDER BY NOT g.is_system, g.id"""
    )


async def user_count(conn: asyncpg.Connection, group_id: int) -> int:
    return await conn.fetchval("SELECT count(*) FROM customer_web_users WHERE group_id = $1", group_id)


async def insert(conn: asyncpg.Connection, name: str, values: dict[str, Any]) -> asyncpg.Record:
    columns = [c for c in LEVEL_COLUMNS if c in values]
    placeholders = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
    return await conn.fetchrow(
        f"INSERT INTO customer_groups (name{''.join(', ' + c for c in columns)})"
        f" VALUES ($1{', ' if columns else ''}{placeholders}) RETURNING *",
        name, *(values[c] for c in columns),
    )


async def update_levels(conn: asyncpg.Connection, group_id: int, values: dict[str, Any]) -> asyncpg.Record:
    columns = [c for c in LEVEL_COLUMNS if c in values]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    return await conn.fetchrow(
        f"UPDATE customer_groups SET {assignments} WHERE id = $1 RETURNING *",
        group_id, *(values[c] for c in columns),
    )


async def rename(conn: asyncpg.Connection, group_id: int, new_name: str) -> None:
    await conn.execute("UPDATE customer_groups SET name = $2 WHERE id = $1", group_id, new_name)


async def delete(conn: asyncpg.Connection, group_id: int) -> None:
    await conn.execute("DELETE FROM customer_groups WHERE id = $1", group_id)


async def default_group(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM customer_groups WHERE is_default")


async def make_default(conn: asyncpg.Connection, group_id: int) -> None:
    # Two statements: the one-default unique index is checked row by row, so the old default
    # must be cleared before the new one is set (the count is checked again at commit).
    await conn.execute("UPDATE customer_groups SET is_default = false WHERE is_default AND id <> $1",
                       group_id)
    await conn.execute("UPDATE customer_groups SET is_default = true WHERE id = $1", group_id)
