"""Employee privilege groups: one column per right of daemon.scope.EMPLOYEE_RIGHTS."""

from __future__ import annotations

from daemon.queries.privilege_groups import GroupTable
from daemon.scope import EMPLOYEE_RIGHTS

# Column names below come from this fixed list only, never from input.
RIGHT_COLUMNS: tuple[str, ...] = tuple(EMPLOYEE_RIGHTS)

_GROUPS = GroupTable(table="employee_groups", members="employees", count_as="employees",
                     columns=RIGHT_COLUMNS)
TABLE = _GROUPS  # the whole table, for daemon.admin's shared group operations

find_by_name = _GROUPS.find_by_name
list_with_counts = _GROUPS.list_with_counts
employee_count = _GROUPS.member_count
insert = _GROUPS.insert
update_rights = _GROUPS.update_columns
rename = _GROUPS.rename
delete = _GROUPS.delete
