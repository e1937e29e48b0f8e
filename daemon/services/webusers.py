"""Customer web users: create, move to another privilege group, (de)activate, set a password,
list."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.access.kinds import CUSTOMER_GROUPS
from daemon.formatting import plain
from daemon.queries import audit as audit_q
from daemon.queries import groups as groups_q
from daemon.queries import webusers as webusers_q
from daemon.services.accounts import account_id
from daemon.services.common import (
    AdminError,
    change,
    checked_email,
    checked_username,
    password_hash_of,
    set_password,
)
from daemon.services.groups import find_group


def _webuser_dict(row: asyncpg.Record) -> dict[str, Any]:
    return plain({k: row[k] for k in ("id", "username", "full_name", "email", "account", "group",
                                      "active", "has_password", "created_at")})


async def find_webuser(conn: asyncpg.Connection, username: str, *, lock: bool = False) -> asyncpg.Record:
    row = await webusers_q.find_by_username(conn, username, lock=lock)
    if row is None:
        raise AdminError(f'unknown customer web user "{username}"')
    return row


async def create_webuser(conn: asyncpg.Connection, *, actor: str, account: str, username: str,
                         group: str | None = None, password: str | None = None,
                         full_name: str = "", email: str = "") -> dict[str, Any]:
    username = checked_username(username)
    full_name = full_name.strip()
    if len(full_name) > 200:
        raise AdminError("the full name must have at most 200 characters")
    email = checked_email(email, required=False)
    password_hash = await password_hash_of(password)
    async with change(conn):
        account_row_id = await account_id(conn, account)
        if group is None:
            group_row = await groups_q.default_group(conn)
            if group_row is None:  # the schema keeps exactly one default; belt and braces
                raise AdminError("there is no default customer group; name one with --group")
        else:
            group_row = await find_group(conn, CUSTOMER_GROUPS, group)
        if await webusers_q.username_taken(conn, username):
            raise AdminError(f'username "{username}" is already taken')
        user_id = await webusers_q.insert(conn, account_id=account_row_id, group_id=group_row["id"],
                                          username=username, full_name=full_name, email=email,
                                          password_hash=password_hash)
        result = _webuser_dict(await webusers_q.get(conn, user_id))
        await audit_q.record(conn, actor=actor, action="webuser.create", target=f"webuser:{username}",
                             after=result)
    return result


async def set_webuser_group(conn: asyncpg.Connection, *, actor: str, username: str,
                            group: str) -> dict[str, Any]:
    async with change(conn):
        row = await find_webuser(conn, username, lock=True)
        group_row = await find_group(conn, CUSTOMER_GROUPS, group)
        if group_row["id"] != row["group_id"]:
            await webusers_q.set_group(conn, row["id"], group_row["id"])
            await audit_q.record(conn, actor=actor, action="webuser.set_group",
                                 target=f"webuser:{row['username']}",
                                 before={"group": row["group"]}, after={"group": group_row["name"]})
        return {**_webuser_dict(await webusers_q.get(conn, row["id"])),
                "changed": group_row["id"] != row["group_id"]}


async def set_webuser_active(conn: asyncpg.Connection, *, actor: str, username: str,
                             active: bool) -> dict[str, Any]:
    async with change(conn):
        row = await find_webuser(conn, username, lock=True)
        if row["active"] != active:
            await webusers_q.set_active(conn, row["id"], active)
            await audit_q.record(conn, actor=actor,
                                 action="webuser.activate" if active else "webuser.deactivate",
                                 target=f"webuser:{row['username']}",
                                 before={"active": row["active"]}, after={"active": active})
        return {**_webuser_dict(await webusers_q.get(conn, row["id"])),
                "changed": row["active"] != active}


async def set_webuser_password(conn: asyncpg.Connection, *, actor: str, username: str,
                               password: str) -> dict[str, Any]:
    return await set_password(conn, actor=actor, kind="webuser", username=username,
                              password=password, find=find_webuser,
                              store=webusers_q.set_password_hash)


async def list_webusers(conn: asyncpg.Connection, *, account: str | None = None) -> list[dict[str, Any]]:
    account_row_id = await account_id(conn, account) if account is not None else None
    return [_webuser_dict(r) for r in await webusers_q.list_rows(conn, account_id=account_row_id)]
