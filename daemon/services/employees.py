"""Employees and subcontractors: create, move to another privilege group, account access,
(de)activate (taking or freeing a license seat), password, hourly rate, list; and their alert
and recipient settings, set on their behalf."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from daemon.access.kinds import EMPLOYEE_GROUPS
from daemon.access.principals import level_name
from daemon.formatting import plain
from daemon.queries import accounts as accounts_q
from daemon.queries import audit as audit_q
from daemon.queries import employees as employees_q
from daemon.queries import licenses as licenses_q
from daemon.queries import webusers as webusers_q
from daemon.services.common import (
    ON_OFF,
    AdminError,
    change,
    checked_email,
    checked_name,
    checked_rate,
    checked_username,
    levels_to_columns,
    password_hash_of,
    set_password,
)
from daemon.services.groups import find_group
from daemon.services.licenses import seats_dict

# A new employee without --group gets the group of an ordinary MSP employee; their account
# list starts empty, so they see nothing until `access` is granted.
DEFAULT_EMPLOYEE_GROUP = "Standard"

MAIL_SETTINGS: tuple[str, ...] = employees_q.MAIL_SETTING_COLUMNS


def _employee_dict(row: asyncpg.Record) -> dict[str, Any]:
    return plain({k: row[k] for k in ("id", "username", "full_name", "email", "group", "active",
                                      "web_access", "all_accounts", "accounts", "hourly_rate",
                                      "has_password", "created_at")})


async def find_employee(conn: asyncpg.Connection, username: str, *, lock: bool = False) -> asyncpg.Record:
    row = await employees_q.find_by_username(conn, username, lock=lock)
    if row is None:
        raise AdminError(f'unknown employee "{username}"')
    return row


async def create_employee(conn: asyncpg.Connection, *, actor: str, username: str, full_name: str,
                          email: str, group: str = DEFAULT_EMPLOYEE_GROUP, password: str | None = None,
                          hourly_rate: str | Decimal | int | float = 0,
                          web_access: bool = True) -> dict[str, Any]:
    username = checked_username(username)
    full_name = checked_name(full_name, "the employee's name", 200)
    email = checked_email(email, required=True)
    rate = checked_rate(hourly_rate)
    password_hash = await password_hash_of(password)
    async with change(conn):
        group_row = await find_group(conn, EMPLOYEE_GROUPS, group)
        if await webusers_q.username_taken(conn, username):
            raise AdminError(f'username "{username}" is already taken')
        # an active employee with web access takes a seat: the database refuses when none is free
        employee_id = await employees_q.insert(conn, username=username, full_name=full_name,
                                               email=email, group_id=group_row["id"],
                                               password_hash=password_hash, hourly_rate=rate,
                                               web_access=web_access)
        result = _employee_dict(await employees_q.get(conn, employee_id))
        await audit_q.record(conn, actor=actor, action="employee.create",
                             target=f"employee:{username}", after=result)
    return result


async def set_employee_group(conn: asyncpg.Connection, *, actor: str, username: str,
                             group: str) -> dict[str, Any]:
    async with change(conn):
        row = await find_employee(conn, username, lock=True)
        group_row = await find_group(conn, EMPLOYEE_GROUPS, group)
        changed = group_row["id"] != row["group_id"]
        if changed:
            await employees_q.set_group(conn, row["id"], group_row["id"])
            await audit_q.record(conn, actor=actor, action="employee.set_group",
                                 target=f"employee:{row['username']}",
                                 before={"group": row["group"]}, after={"group": group_row["name"]})
        return {**_employee_dict(await employees_q.get(conn, row["id"])), "changed": changed}


async def set_employee_access(conn: asyncpg.Connection, *, actor: str, username: str,
                              all_accounts: bool, accounts: Sequence[str] = ()) -> dict[str, Any]:
    """All accounts, or exactly the named ones (an empty list: none)."""
    names = list(dict.fromkeys(a.strip() for a in accounts if a.strip()))
    if all_accounts and names:
        raise AdminError("give either all accounts or a list of accounts, not both")
    async with change(conn):
        row = await find_employee(conn, username, lock=True)
        ids = await accounts_q.ids_by_names(conn, names)
        missing = [n for n in names if n not in ids]
        if missing:
            raise AdminError(f'unknown account "{missing[0]}"')
        await employees_q.set_access(conn, row["id"], all_accounts=all_accounts,
                                     account_ids=sorted(ids.values()))
        updated = await employees_q.get(conn, row["id"])
        before = {"all_accounts": row["all_accounts"], "accounts": list(row["accounts"])}
        after = {"all_accounts": updated["all_accounts"], "accounts": list(updated["accounts"])}
        if before != after:
            await audit_q.record(conn, actor=actor, action="employee.access",
                                 target=f"employee:{row['username']}", before=before, after=after)
        return {**_employee_dict(updated), "changed": before != after}


async def set_employee_active(conn: asyncpg.Connection, *, actor: str, username: str,
                              active: bool) -> dict[str, Any]:
    async with change(conn):
        row = await find_employee(conn, username, lock=True)
        changed = row["active"] != active
        if changed:
            # activation re-takes a license seat; the seat trigger names the count when none is free
            await employees_q.set_active(conn, row["id"], active)
            await audit_q.record(conn, actor=actor,
                                 action="employee.activate" if active else "employee.deactivate",
                                 target=f"employee:{row['username']}",
                                 before={"active": row["active"]}, after={"active": active})
        usage = await licenses_q.usage(conn)
        return {**_employee_dict(await employees_q.get(conn, row["id"])), "changed": changed,
                "seats": seats_dict(usage)}


async def set_employee_web_access(conn: asyncpg.Connection, *, actor: str, username: str,
                                  web_access: bool) -> dict[str, Any]:
    """Portal login on or off. Mail does not depend on it: an active employee without web
    access still gets their alerts (and takes no license seat)."""
    async with change(conn):
        row = await find_employee(conn, username, lock=True)
        changed = row["web_access"] != web_access
        if changed:
            await employees_q.set_web_access(conn, row["id"], web_access)
            await audit_q.record(conn, actor=actor, action="employee.web_access",
                                 target=f"employee:{row['username']}",
                                 before={"web_access": row["web_access"]},
                                 after={"web_access": web_access})
        usage = await licenses_q.usage(conn)
        return {**_employee_dict(await employees_q.get(conn, row["id"])), "changed": changed,
                "seats": seats_dict(usage)}


async def set_employee_password(conn: asyncpg.Connection, *, actor: str, username: str,
                                password: str) -> dict[str, Any]:
    return await set_password(conn, actor=actor, kind="employee", username=username,
                              password=password, find=find_employee,
                              store=employees_q.set_password_hash)


async def set_employee_rate(conn: asyncpg.Connection, *, actor: str, username: str,
                            hourly_rate: str | Decimal | int | float) -> dict[str, Any]:
    rate = checked_rate(hourly_rate)
    async with change(conn):
        row = await find_employee(conn, username, lock=True)
        changed = row["hourly_rate"] != rate
        if changed:
            await employees_q.set_hourly_rate(conn, row["id"], rate)
            await audit_q.record(conn, actor=actor, action="employee.set_rate",
                                 target=f"employee:{row['username']}",
                                 before={"hourly_rate": str(row["hourly_rate"])},
                                 after={"hourly_rate": str(rate)})
        return {**_employee_dict(await employees_q.get(conn, row["id"])), "changed": changed}


async def list_employees(conn: asyncpg.Connection) -> dict[str, Any]:
    rows = await employees_q.list_rows(conn)
    usage = await licenses_q.usage(conn)
    return {"employees": [_employee_dict(r) for r in rows], "seats": seats_dict(usage)}


# -- alert and recipient settings -----------------------------------------------------------


async def get_mail_settings(conn: asyncpg.Connection, *, username: str) -> dict[str, Any]:
    row = await find_employee(conn, username)
    settings = await employees_q.mail_settings(conn, row["id"])
    values = {c: (settings[c] if settings else None) for c in MAIL_SETTINGS}
    return {"username": row["username"], "settings": {k: level_name(v) for k, v in values.items()
                                                      if v is not None}}


async def set_mail_settings(conn: asyncpg.Connection, *, actor: str, username: str,
                            settings: Mapping[str, str | bool]) -> dict[str, Any]:
    """Alert and recipient settings, on an employee's behalf (subcontractors have no client
    to set them in). Values are off/on (or booleans)."""
    words = {k: (("on" if v else "off") if isinstance(v, bool) else v) for k, v in settings.items()}
    values = levels_to_columns(words, dict.fromkeys(MAIL_SETTINGS, ON_OFF), "mail setting")
    async with change(conn):
        row = await find_employee(conn, username, lock=True)
        old = await employees_q.mail_settings(conn, row["id"])
        await employees_q.update_mail_settings(conn, row["id"], values)
        new = await employees_q.mail_settings(conn, row["id"])
        before = {c: level_name(old[c]) for c in MAIL_SETTINGS} if old else None
        after = {c: level_name(new[c]) for c in MAIL_SETTINGS}
        if before != after:
            await audit_q.record(conn, actor=actor, action="employee.mail_settings",
                                 target=f"employee:{row['username']}", before=before, after=after)
    return {"username": row["username"], "settings": after,
            "changed": sorted(k for k in after if not before or before[k] != after[k])}
