"""Privilege groups of both kinds (daemon.access.kinds): finding, listing with member counts,
creating, changing levels, renaming, deleting; and the customer kind's default group."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.access.kinds import GroupKind


async def find_by_name(conn: asyncpg.Connection, kind: GroupKind, name: str, *,
                       lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT * FROM {kind.table} WHERE name = $1" + (" FOR UPDATE" if lock else ""), name)


async def list_with_counts(conn: asyncpg.Connection, kind: GroupKind) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT g.*, (SELECT count(*) FROM {kind.members} m WHERE m.group_id = g.id)
                   AS {kind.count_key}
             FROM {kind.table} g ORDER BY NOT g.is_system, g.id"""
    )


async def member_count(conn: asyncpg.Connection, kind: GroupKind, group_id: int) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {kind.members} WHERE group_id = $1",
                               group_id)


async def insert(conn: asyncpg.Connection, kind: GroupKind, name: str,
                 values: dict[str, Any]) -> asyncpg.Record:
    columns = [c for c in kind.columns if c in values]
    placeholders = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
    return await conn.fetchrow(
        f"INSERT INTO {kind.table} (name{''.join(', ' + c for c in columns)})"
        f" VALUES ($1{', ' if columns else ''}{placeholders}) RETURNING *",
        name, *(values[c] for c in columns),
    )


async def update_levels(conn: asyncpg.Connection, kind: GroupKind, group_id: int,
                        values: dict[str, Any]) -> asyncpg.Record:
    columns = [c for c in kind.columns if c in values]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    return await conn.fetchrow(
        f"UPDATE {kind.table} SET {assignments} WHERE id = $1 RETURNING *",
        group_id, *(values[c] for c in columns),
    )


async def rename(conn: asyncpg.Connection, kind: GroupKind, group_id: int, new_name: str) -> None:
    await conn.execute(f"UPDATE {kind.table} SET name = $2 WHERE id = $1", group_id, new_name)


async def delete(conn: asyncpg.Connection, kind: GroupKind, group_id: int) -> None:
    await conn.execute(f"DELETE FROM {kind.table} WHERE id = $1", group_id)


async def default_group(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The default customer group (new web users without a group get it)."""
    return await conn.fetchrow("SELECT * FROM customer_groups WHERE is_default")


async def make_default(conn: asyncpg.Connection, group_id: int) -> None:
    # Two statements: the one-default unique index is checked row by row, so the old default
    # must be cleared before the new one is set (the count is checked again at commit).
    await conn.execute("UPDATE customer_groups SET is_default = false WHERE is_default AND id <> $1",
                       group_id)
    await conn.execute("UPDATE customer_groups SET is_default = true WHERE id = $1", group_id)
