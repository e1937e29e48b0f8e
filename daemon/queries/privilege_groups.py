"""The statements both kinds of privilege group share: a table of groups with one column per
privilege, and a table of members pointing at it by `group_id`.

Table and column names are spliced into the SQL, so they come only from the two fixed
`GroupTable`s in daemon/queries/groups.py and daemon/queries/employee_groups.py, never from input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class GroupTable:
    table: str
    members: str  # the table whose rows belong to a group
    count_as: str  # the name of the member count in `list_with_counts`
    columns: tuple[str, ...]  # one per privilege

    async def find_by_name(self, conn: asyncpg.Connection, name: str, *,
                           lock: bool = False) -> asyncpg.Record | None:
        return await conn.fetchrow(
            f"SELECT * FROM {self.table} WHERE name = $1" + (" FOR UPDATE" if lock else ""), name)

    async def list_with_counts(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            f"""SELECT g.*, (SELECT count(*) FROM {self.members} m WHERE m.group_id = g.id)
                       AS {self.count_as}
                 FROM {self.table} g ORDER BY NOT g.is_system, g.id"""
        )

    async def member_count(self, conn: asyncpg.Connection, group_id: int) -> int:
        return await conn.fetchval(f"SELECT count(*) FROM {self.members} WHERE group_id = $1",
                                   group_id)

    async def insert(self, conn: asyncpg.Connection, name: str,
                     values: dict[str, Any]) -> asyncpg.Record:
        columns = [c for c in self.columns if c in values]
        placeholders = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
        return await conn.fetchrow(
            f"INSERT INTO {self.table} (name{''.join(', ' + c for c in columns)})"
            f" VALUES ($1{', ' if columns else ''}{placeholders}) RETURNING *",
            name, *(values[c] for c in columns),
        )

    async def update_columns(self, conn: asyncpg.Connection, group_id: int,
                             values: dict[str, Any]) -> asyncpg.Record:
        columns = [c for c in self.columns if c in values]
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        return await conn.fetchrow(
            f"UPDATE {self.table} SET {assignments} WHERE id = $1 RETURNING *",
            group_id, *(values[c] for c in columns),
        )

    async def rename(self, conn: asyncpg.Connection, group_id: int, new_name: str) -> None:
        await conn.execute(f"UPDATE {self.table} SET name = $2 WHERE id = $1", group_id, new_name)

    async def delete(self, conn: asyncpg.Connection, group_id: int) -> None:
        await conn.execute(f"DELETE FROM {self.table} WHERE id = $1", group_id)
