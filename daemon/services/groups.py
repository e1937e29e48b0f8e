"""Privilege groups of both kinds: list, create (optionally copying another), set levels,
rename, delete; and the default customer group. Every operation is written once and takes the
kind it works on (daemon.access.kinds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from daemon.access.kinds import CUSTOMER_GROUPS, GroupKind
from daemon.queries import audit as audit_q
from daemon.queries import groups as groups_q
from daemon.services.common import (
    AdminError,
    change,
    checked_name,
    levels_of,
    levels_to_columns,
)


def _group_dict(kind: GroupKind, row: asyncpg.Record, members: int | None = None) -> dict[str, Any]:
    result = {"id": row["id"], "name": row["name"], "is_system": row["is_system"]}
    if kind.has_default:
        result["is_default"] = row["is_default"]
    result[kind.levels_key] = levels_of(row, kind.levels)
    if members is not None:
        result[kind.count_key] = members
    return result


async def find_group(conn: asyncpg.Connection, kind: GroupKind, name: str, *,
                     lock: bool = False) -> asyncpg.Record:
    row = await groups_q.find_by_name(conn, kind, name, lock=lock)
    if row is None:
        raise AdminError(f'unknown {kind.group_word} "{name}"')
    return row


def _refuse_system(kind: GroupKind, row: asyncpg.Record, verb: str) -> None:
    # the database refuses too; saying it first also covers changes that would change nothing
    if row["is_system"]:
        raise AdminError(f'{kind.name} privilege group "{row["name"]}" is a system group and '
                         f'cannot be {verb}')


async def list_groups(conn: asyncpg.Connection, kind: GroupKind) -> list[dict[str, Any]]:
    return [_group_dict(kind, r, r[kind.count_key])
            for r in await groups_q.list_with_counts(conn, kind)]


async def create_group(conn: asyncpg.Connection, kind: GroupKind, *, actor: str, name: str,
                       copy_from: str | None = None) -> dict[str, Any]:
    name = checked_name(name, "the group name", 100)
    async with change(conn):
        if await groups_q.find_by_name(conn, kind, name):
            raise AdminError(f'{kind.group_word} "{name}" already exists')
        values: dict[str, Any] = {}
        if copy_from is not None:
            source = await find_group(conn, kind, copy_from)
            values = {c: source[c] for c in kind.columns}
        row = await groups_q.insert(conn, kind, name, values)
        result = _group_dict(kind, row, 0)
        await audit_q.record(conn, actor=actor, action=f"{kind.audit_action}.create",
                             target=f"{kind.audit_target}:{name}",
                             after={**result, "copied_from": copy_from})
    return result


async def rename_group(conn: asyncpg.Connection, kind: GroupKind, *, actor: str, name: str,
                       new_name: str) -> dict[str, Any]:
    new_name = checked_name(new_name, "the new group name", 100)
    async with change(conn):
        row = await find_group(conn, kind, name, lock=True)
        _refuse_system(kind, row, "modified")
        if new_name != name and await groups_q.find_by_name(conn, kind, new_name):
            raise AdminError(f'{kind.group_word} "{new_name}" already exists')
        await groups_q.rename(conn, kind, row["id"], new_name)
        await audit_q.record(conn, actor=actor, action=f"{kind.audit_action}.rename",
                             target=f"{kind.audit_target}:{name}", before={"name": name},
                             after={"name": new_name})
    return {"id": row["id"], "name": new_name, "old_name": name}


async def delete_group(conn: asyncpg.Connection, kind: GroupKind, *, actor: str,
                       name: str) -> dict[str, Any]:
    async with change(conn):
        row = await find_group(conn, kind, name, lock=True)
        _refuse_system(kind, row, "deleted")
        count = await groups_q.member_count(conn, kind, row["id"])
        if count:
            raise AdminError(f'{kind.group_word} "{name}" is assigned to {count} {kind.member_word}'
                             f'{"s" if count != 1 else ""}; move them to another group first')
        if kind.has_default and row["is_default"]:
            raise AdminError(f'{kind.group_word} "{name}" is the default group; make another group '
                             'the default first')
        before = _group_dict(kind, row)
        await groups_q.delete(conn, kind, row["id"])
        await audit_q.record(conn, actor=actor, action=f"{kind.audit_action}.delete",
                             target=f"{kind.audit_target}:{name}", before=before)
    return {"deleted": name}


async def set_group_levels(conn: asyncpg.Connection, kind: GroupKind, *, actor: str, name: str,
                           levels: Mapping[str, str]) -> dict[str, Any]:
    values = levels_to_columns(levels, kind.levels, kind.level_word)
    async with change(conn):
        row = await find_group(conn, kind, name, lock=True)
        # a system group's rights are fixed; whether it requires two-factor login is not
        if not set(values) <= set(kind.system_editable):
            _refuse_system(kind, row, "modified")
        updated = await groups_q.update_levels(conn, kind, row["id"], values)
        before, after = levels_of(row, kind.levels), levels_of(updated, kind.levels)
        if before != after:
            await audit_q.record(conn, actor=actor, action=f"{kind.audit_action}.set",
                                 target=f"{kind.audit_target}:{name}", before=before, after=after)
    return {**_group_dict(kind, updated), "changed": sorted(k for k in after if before[k] != after[k])}


async def set_default_group(conn: asyncpg.Connection, *, actor: str, name: str) -> dict[str, Any]:
    """Make a customer group the default for new web users (one action, never two defaults)."""
    async with change(conn):
        row = await find_group(conn, CUSTOMER_GROUPS, name, lock=True)
        old = await groups_q.default_group(conn)
        old_name = old["name"] if old else None
        if old_name != name:
            # clearing the old default and setting the new one in the same transaction: there
            # is never a moment with two defaults (or none) for anyone to see
            await groups_q.make_default(conn, row["id"])
            await audit_q.record(conn, actor=actor, action="group.default",
                                 target=f"customer_group:{name}",
                                 before={"default": old_name}, after={"default": name})
    return {"default": name, "previous": old_name, "changed": old_name != name}
