"""Customer privilege groups: one column per identifier of daemon.scope.CUSTOMER_IDENTIFIERS."""

from __future__ import annotations

import asyncpg

from daemon.queries.privilege_groups import GroupTable
from daemon.scope import CUSTOMER_IDENTIFIERS

# Column names below come from this fixed list only, never from input.
LEVEL_COLUMNS: tuple[str, ...] = tuple(CUSTOMER_IDENTIFIERS)

_GROUPS = GroupTable(table="customer_groups", members="customer_web_users", count_as="users",
                     columns=LEVEL_COLUMNS)
TABLE = _GROUPS  # the whole table, for daemon.admin's shared group operations

find_by_name = _GROUPS.find_by_name
list_with_counts = _GROUPS.list_with_counts
user_count = _GROUPS.member_count
insert = _GROUPS.insert
update_levels = _GROUPS.update_columns
rename = _GROUPS.rename
delete = _GROUPS.delete


async def default_group(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM customer_groups WHERE is_default")


async def make_default(conn: asyncpg.Connection, group_id: int) -> None:
    # Two statements: the one-default unique index is checked row by row, so the old default
    # must be cleared before the new one is set (the count is checked again at commit).
    await conn.execute("UPDATE customer_groups SET is_default = false WHERE is_default AND id <> $1",
                       group_id)
    await conn.execute("UPDATE customer_groups SET is_default = true WHERE id = $1", group_id)
