"""What an administrator does: accounts, privilege groups, web users, employees, licenses,
the mail outbox and employees' mail settings.

The CLI (`portald admin …`) and the portal's admin pages both call these functions, so the two
can never disagree. Each change runs in one transaction, writes one `audit_log` row (actor,
action, target, before, after) and returns a plain JSON-serialisable dict. Input a person can
get wrong raises `AdminError` with a one-line reason, and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from daemon import db
from daemon.passwords import hash_password, password_problem
from daemon.principals import level_name
from daemon.queries import accounts as accounts_q
from daemon.queries import audit as audit_q
from daemon.queries import employee_groups as employee_groups_q
from daemon.queries import employees as employees_q
from daemon.queries import groups as groups_q
from daemon.queries import licenses as licenses_q
from daemon.queries import outbox_admin as outbox_q
from daemon.queries import webusers as webusers_q
from daemon.queries.privilege_groups import GroupTable
from daemon.scope import CUSTOMER_IDENTIFIERS, EMPLOYEE_RIGHTS

# A new employee without --group gets the group of an ordinary MSP employee; their account
# list starts empty, so they see nothing until `access` is granted.
DEFAULT_EMPLOYEE_GROUP = "Standard"

MAIL_SETTINGS: tuple[str, ...] = employees_q.MAIL_SETTING_COLUMNS
OUTBOX_STATUSES: tuple[str, ...] = ("queued", "sent", "failed")
OUTBOX_LIST_LIMIT = 100

# the same rules as the CHECK constraints of the schema, checked first for a clearer message
_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAX_RATE = Decimal("99999999.99")  # numeric(10, 2)
_ON_OFF = ("off", "on")


class AdminError(Exception):
    """Bad input from an administrator: a one-line reason; nothing was changed."""


# -- helpers --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _change(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """One transaction; a refusal raised by the database (trigger, constraint) becomes an
    AdminError carrying the database's own words. Errors that are bugs stay errors."""
    try:
        async with conn.transaction():
            yield
    except asyncpg.PostgresError as exc:
        message = db.user_error(exc)
        if message is None:
            raise
        raise AdminError(message) from None


def plain(value: Any) -> Any:
    """Records, decimals and timestamps as JSON-friendly values."""
    if isinstance(value, asyncpg.Record | Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _name(value: str, what: str, max_len: int) -> str:
    name = (value or "").strip()
    if not name:
        raise AdminError(f"{what} must not be empty")
    if len(name) > max_len:
        raise AdminError(f"{what} must have at most {max_len} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise AdminError(f"{what} must not contain control characters")
    return name


def _username(value: str) -> str:
    if not _USERNAME.match(value or ""):
        raise AdminError(f'invalid username "{value}": use 1 to 100 letters, digits and . _ @ + -')
    return value


def _email(value: str, *, required: bool) -> str:
    email = (value or "").strip()
    if not email and not required:
        return ""
    if not _EMAIL.match(email) or len(email) > 254:
        raise AdminError(f'invalid email address "{value}"')
    return email


def _rate(value: str | Decimal | int | float) -> Decimal:
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise AdminError(f'invalid hourly rate "{value}": give a number such as 85 or 72.50') from None
    if not rate.is_finite() or rate < 0 or rate > _MAX_RATE:
        raise AdminError(f'invalid hourly rate "{value}": it must be between 0 and {_MAX_RATE}')
    return rate.quantize(Decimal("0.01"))


async def _password_hash(password: str | None) -> str | None:
    if password is None:
        return None
    problem = password_problem(password)
    if problem:
        raise AdminError(problem)
    # argon2 costs tens of milliseconds of CPU: keep it off the loop and outside the transaction
    return await asyncio.to_thread(hash_password, password)


async def _set_password(conn: asyncpg.Connection, *, actor: str, kind: str, username: str,
                        password: str, find: Callable[..., Awaitable[asyncpg.Record]],
                        store: Callable[[asyncpg.Connection, int, str], Awaitable[None]]) -> dict[str, Any]:
    """Set a web user's or an employee's password (`kind` names the audit action and target)."""
    password_hash = await _password_hash(password)
    assert password_hash is not None
    async with _change(conn):
        row = await find(conn, username, lock=True)
        await store(conn, row["id"], password_hash)
        # never the hash itself: only whether one was set
        await audit_q.record(conn, actor=actor, action=f"{kind}.set_password",
                             target=f"{kind}:{row['username']}",
                             before={"has_password": row["has_password"]}, after={"has_password": True})
    return {"username": row["username"], "password": "changed"}


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """`identifier=level` words (as typed on the command line) into a mapping."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise AdminError(f'"{pair}" is not of the form IDENTIFIER=LEVEL')
        if key in result:
            raise AdminError(f'"{key}" is given twice')
        result[key] = value
    if not result:
        raise AdminError("give at least one IDENTIFIER=LEVEL")
    return result


def _levels_to_columns(levels: Mapping[str, str], known: Mapping[str, tuple[str, ...]],
                       what: str) -> dict[str, Any]:
    """Validate identifier → level names against `known`; off/on become booleans."""
    if not levels:
        raise AdminError(f"give at least one {what}=LEVEL")
    values: dict[str, Any] = {}
    for identifier, level in levels.items():
        allowed = known.get(identifier)
        if allowed is None:
            raise AdminError(f'unknown {what} "{identifier}" (known: {", ".join(known)})')
        if level not in allowed:
            raise AdminError(f'unknown level "{level}" for {identifier} (levels: {", ".join(allowed)})')
        values[identifier] = (level == "on") if allowed == _ON_OFF else level
    return values


def _levels_of(row: asyncpg.Record, known: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {identifier: level_name(row[identifier]) for identifier in known}


# -- accounts -------------------------------------------------------------------------------


def _account_dict(row: asyncpg.Record) -> dict[str, Any]:
    return plain({k: row[k] for k in ("id", "name", "contact_name", "phone", "email", "address",
                                      "created_at")})


async def create_account(conn: asyncpg.Connection, *, actor: str, name: str, contact_name: str = "",
                         phone: str = "", email: str = "", address: str = "") -> dict[str, Any]:
    name = _name(name, "the account name", 200)
    email = _email(email, required=False)
    async with _change(conn):
        if await accounts_q.find_by_name(conn, name):
            raise AdminError(f'account "{name}" already exists')
        row = await accounts_q.insert(conn, name=name, contact_name=contact_name.strip(),
                                      phone=phone.strip(), email=email, address=address.strip())
        result = _account_dict(row)
        await audit_q.record(conn, actor=actor, action="account.create", target=f"account:{name}",
                             after=result)
    return result


async def list_accounts(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [plain(dict(r)) for r in await accounts_q.list_with_counts(conn)]


async def _account_id(conn: asyncpg.Connection, name: str) -> int:
    row = await accounts_q.find_by_name(conn, name)
    if row is None:
        raise AdminError(f'unknown account "{name}"')
    return row["id"]


# -- privilege groups, both kinds -----------------------------------------------------------


@dataclass(frozen=True)
class _GroupKind:
    """What sets customer privilege groups apart from employee privilege groups; every group
    operation is written once and takes one of the two kinds below."""

    table: GroupTable
    label: str  # "customer" / "employee", as messages name the kind
    levels: Mapping[str, tuple[str, ...]]  # one column per key, with the levels it allows
    level_word: str  # what a key is called in messages
    levels_key: str  # the key of a group's levels in its dict
    count_key: str  # the key of its member count in its dict
    member_word: str  # what a member is called in messages
    action: str  # audit action prefix
    target: str  # audit target prefix
    has_default: bool = False  # one group of the kind is the default (customer groups)


_CUSTOMER_GROUPS = _GroupKind(
    table=groups_q.TABLE, label="customer", levels=CUSTOMER_IDENTIFIERS, level_word="identifier",
    levels_key="privileges", count_key="users", member_word="user", action="group",
    target="customer_group", has_default=True)
_EMPLOYEE_GROUPS = _GroupKind(
    table=employee_groups_q.TABLE, label="employee", levels=EMPLOYEE_RIGHTS, level_word="right",
    levels_key="rights", count_key="employees", member_word="employee", action="employee_group",
    target="employee_group")


def _group_dict(kind: _GroupKind, row: asyncpg.Record, members: int | None = None) -> dict[str, Any]:
    result = {"id": row["id"], "name": row["name"], "is_system": row["is_system"]}
    if kind.has_default:
        result["is_default"] = row["is_default"]
    result[kind.levels_key] = _levels_of(row, kind.levels)
    if members is not None:
        result[kind.count_key] = members
    return result


async def _group(conn: asyncpg.Connection, kind: _GroupKind, name: str, *,
                 lock: bool = False) -> asyncpg.Record:
    row = await kind.table.find_by_name(conn, name, lock=lock)
    if row is None:
        raise AdminError(f'unknown {kind.label} group "{name}"')
    return row


async def _customer_group(conn: asyncpg.Connection, name: str, *, lock: bool = False) -> asyncpg.Record:
    return await _group(conn, _CUSTOMER_GROUPS, name, lock=lock)


async def _employee_group(conn: asyncpg.Connection, name: str, *, lock: bool = False) -> asyncpg.Record:
    return await _group(conn, _EMPLOYEE_GROUPS, name, lock=lock)


def _refuse_system(kind: _GroupKind, row: asyncpg.Record, verb: str) -> None:
    # the database refuses too; saying it first also covers changes that would change nothing
    if row["is_system"]:
        raise AdminError(f'{kind.label} privilege group "{row["name"]}" is a system group and '
                         f'cannot be {verb}')


async def _list_groups(conn: asyncpg.Connection, kind: _GroupKind) -> list[dict[str, Any]]:
    return [_group_dict(kind, r, r[kind.table.count_as])
            for r in await kind.table.list_with_counts(conn)]


async def _create_group(conn: asyncpg.Connection, kind: _GroupKind, *, actor: str, name: str,
                        copy_from: str | None) -> dict[str, Any]:
    name = _name(name, "the group name", 100)
    async with _change(conn):
        if await kind.table.find_by_name(conn, name):
            raise AdminError(f'{kind.label} group "{name}" already exists')
        values: dict[str, Any] = {}
        if copy_from is not None:
            source = await _group(conn, kind, copy_from)
            values = {c: source[c] for c in kind.table.columns}
        row = await kind.table.insert(conn, name, values)
        result = _group_dict(kind, row, 0)
        await audit_q.record(conn, actor=actor, action=f"{kind.action}.create",
                             target=f"{kind.target}:{name}", after={**result, "copied_from": copy_from})
    return result


async def _rename_group(conn: asyncpg.Connection, kind: _GroupKind, *, actor: str, name: str,
                        new_name: str) -> dict[str, Any]:
    new_name = _name(new_name, "the new group name", 100)
    async with _change(conn):
        row = await _group(conn, kind, name, lock=True)
        _refuse_system(kind, row, "modified")
        if new_name != name and await kind.table.find_by_name(conn, new_name):
            raise AdminError(f'{kind.label} group "{new_name}" already exists')
        await kind.table.rename(conn, row["id"], new_name)
        await audit_q.record(conn, actor=actor, action=f"{kind.action}.rename",
                             target=f"{kind.target}:{name}", before={"name": name},
                             after={"name": new_name})
    return {"id": row["id"], "name": new_name, "old_name": name}


async def _delete_group(conn: asyncpg.Connection, kind: _GroupKind, *, actor: str,
                        name: str) -> dict[str, Any]:
    async with _change(conn):
        row = await _group(conn, kind, name, lock=True)
        _refuse_system(kind, row, "deleted")
        count = await kind.table.member_count(conn, row["id"])
        if count:
            raise AdminError(f'{kind.label} group "{name}" is assigned to {count} {kind.member_word}'
                             f'{"s" if count != 1 else ""}; move them to another group first')
        if kind.has_default and row["is_default"]:
            raise AdminError(f'{kind.label} group "{name}" is the default group; make another group '
                             'the default first')
        before = _group_dict(kind, row)
        await kind.table.delete(conn, row["id"])
        await audit_q.record(conn, actor=actor, action=f"{kind.action}.delete",
                             target=f"{kind.target}:{name}", before=before)
    return {"deleted": name}


async def _set_group_levels(conn: asyncpg.Connection, kind: _GroupKind, *, actor: str, name: str,
                            levels: Mapping[str, str]) -> dict[str, Any]:
    values = _levels_to_columns(levels, kind.levels, kind.level_word)
    async with _change(conn):
        row = await _group(conn, kind, name, lock=True)
        _refuse_system(kind, row, "modified")
        updated = await kind.table.update_columns(conn, row["id"], values)
        before, after = _levels_of(row, kind.levels), _levels_of(updated, kind.levels)
        if before != after:
            await audit_q.record(conn, actor=actor, action=f"{kind.action}.set",
                                 target=f"{kind.target}:{name}", before=before, after=after)
    return {**_group_dict(kind, updated), "changed": sorted(k for k in after if before[k] != after[k])}


# -- customer privilege groups --------------------------------------------------------------


async def list_customer_groups(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return await _list_groups(conn, _CUSTOMER_GROUPS)


async def create_customer_group(conn: asyncpg.Connection, *, actor: str, name: str,
                                copy_from: str | None = None) -> dict[str, Any]:
    return await _create_group(conn, _CUSTOMER_GROUPS, actor=actor, name=name, copy_from=copy_from)


async def rename_customer_group(conn: asyncpg.Connection, *, actor: str, name: str,
                                new_name: str) -> dict[str, Any]:
    return await _rename_group(conn, _CUSTOMER_GROUPS, actor=actor, name=name, new_name=new_name)


async def delete_customer_group(conn: asyncpg.Connection, *, actor: str, name: str) -> dict[str, Any]:
    return await _delete_group(conn, _CUSTOMER_GROUPS, actor=actor, name=name)


async def set_default_customer_group(conn: asyncpg.Connection, *, actor: str, name: str) -> dict[str, Any]:
    async with _change(conn):
        row = await _customer_group(conn, name, lock=True)
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


async def set_customer_group_levels(conn: asyncpg.Connection, *, actor: str, name: str,
                                    levels: Mapping[str, str]) -> dict[str, Any]:
    return await _set_group_levels(conn, _CUSTOMER_GROUPS, actor=actor, name=name, levels=levels)


# -- customer web users ---------------------------------------------------------------------


def _webuser_dict(row: asyncpg.Record) -> dict[str, Any]:
    return plain({k: row[k] for k in ("id", "username", "full_name", "email", "account", "group",
                                      "active", "has_password", "created_at")})


async def _webuser(conn: asyncpg.Connection, username: str, *, lock: bool = False) -> asyncpg.Record:
    row = await webusers_q.find_by_username(conn, username, lock=lock)
    if row is None:
        raise AdminError(f'unknown customer web user "{username}"')
    return row


async def create_webuser(conn: asyncpg.Connection, *, actor: str, account: str, username: str,
                         group: str | None = None, password: str | None = None,
                         full_name: str = "", email: str = "") -> dict[str, Any]:
    username = _username(username)
    full_name = full_name.strip()
    if len(full_name) > 200:
        raise AdminError("the full name must have at most 200 characters")
    email = _email(email, required=False)
    password_hash = await _password_hash(password)
    async with _change(conn):
        account_id = await _account_id(conn, account)
        if group is None:
            group_row = await groups_q.default_group(conn)
            if group_row is None:  # the schema keeps exactly one default; belt and braces
                raise AdminError("there is no default customer group; name one with --group")
        else:
            group_row = await _customer_group(conn, group)
        if await webusers_q.username_taken(conn, username):
            raise AdminError(f'username "{username}" is already taken')
        user_id = await webusers_q.insert(conn, account_id=account_id, group_id=group_row["id"],
                                          username=username, full_name=full_name, email=email,
                                          password_hash=password_hash)
        result = _webuser_dict(await webusers_q.get(conn, user_id))
        await audit_q.record(conn, actor=actor, action="webuser.create", target=f"webuser:{username}",
                             after=result)
    return result


async def set_webuser_group(conn: asyncpg.Connection, *, actor: str, username: str,
                            group: str) -> dict[str, Any]:
    async with _change(conn):
        row = await _webuser(conn, username, lock=True)
        group_row = await _customer_group(conn, group)
        if group_row["id"] != row["group_id"]:
            await webusers_q.set_group(conn, row["id"], group_row["id"])
            await audit_q.record(conn, actor=actor, action="webuser.set_group",
                                 target=f"webuser:{row['username']}",
                                 before={"group": row["group"]}, after={"group": group_row["name"]})
        return {**_webuser_dict(await webusers_q.get(conn, row["id"])),
                "changed": group_row["id"] != row["group_id"]}


async def set_webuser_active(conn: asyncpg.Connection, *, actor: str, username: str,
                             active: bool) -> dict[str, Any]:
    async with _change(conn):
        row = await _webuser(conn, username, lock=True)
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
    return await _set_password(conn, actor=actor, kind="webuser", username=username,
                               password=password, find=_webuser, store=webusers_q.set_password_hash)


async def list_webusers(conn: asyncpg.Connection, *, account: str | None = None) -> list[dict[str, Any]]:
    account_id = await _account_id(conn, account) if account is not None else None
    return [_webuser_dict(r) for r in await webusers_q.list_rows(conn, account_id=account_id)]


# -- employees ------------------------------------------------------------------------------


def _employee_dict(row: asyncpg.Record) -> dict[str, Any]:
    return plain({k: row[k] for k in ("id", "username", "full_name", "email", "group", "active",
                                      "web_access", "all_accounts", "accounts", "hourly_rate",
                                      "has_password", "created_at")})


async def _employee(conn: asyncpg.Connection, username: str, *, lock: bool = False) -> asyncpg.Record:
    row = await employees_q.find_by_username(conn, username, lock=lock)
    if row is None:
        raise AdminError(f'unknown employee "{username}"')
    return row


async def create_employee(conn: asyncpg.Connection, *, actor: str, username: str, full_name: str,
                          email: str, group: str = DEFAULT_EMPLOYEE_GROUP, password: str | None = None,
                          hourly_rate: str | Decimal | int | float = 0,
                          web_access: bool = True) -> dict[str, Any]:
    username = _username(username)
    full_name = _name(full_name, "the employee's name", 200)
    email = _email(email, required=True)
    rate = _rate(hourly_rate)
    password_hash = await _password_hash(password)
    async with _change(conn):
        group_row = await _employee_group(conn, group)
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
    async with _change(conn):
        row = await _employee(conn, username, lock=True)
        group_row = await _employee_group(conn, group)
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
    async with _change(conn):
        row = await _employee(conn, username, lock=True)
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
    async with _change(conn):
        row = await _employee(conn, username, lock=True)
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
                "seats": _seats_dict(usage)}


async def set_employee_password(conn: asyncpg.Connection, *, actor: str, username: str,
                                password: str) -> dict[str, Any]:
    return await _set_password(conn, actor=actor, kind="employee", username=username,
                               password=password, find=_employee, store=employees_q.set_password_hash)


async def set_employee_rate(conn: asyncpg.Connection, *, actor: str, username: str,
                            hourly_rate: str | Decimal | int | float) -> dict[str, Any]:
    rate = _rate(hourly_rate)
    async with _change(conn):
        row = await _employee(conn, username, lock=True)
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
    return {"employees": [_employee_dict(r) for r in rows], "seats": _seats_dict(usage)}


# -- employee privilege groups --------------------------------------------------------------


async def list_employee_groups(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return await _list_groups(conn, _EMPLOYEE_GROUPS)


async def create_employee_group(conn: asyncpg.Connection, *, actor: str, name: str,
                                copy_from: str | None = None) -> dict[str, Any]:
    return await _create_group(conn, _EMPLOYEE_GROUPS, actor=actor, name=name, copy_from=copy_from)


async def set_employee_group_rights(conn: asyncpg.Connection, *, actor: str, name: str,
                                    rights: Mapping[str, str]) -> dict[str, Any]:
    return await _set_group_levels(conn, _EMPLOYEE_GROUPS, actor=actor, name=name, levels=rights)


async def rename_employee_group(conn: asyncpg.Connection, *, actor: str, name: str,
                                new_name: str) -> dict[str, Any]:
    return await _rename_group(conn, _EMPLOYEE_GROUPS, actor=actor, name=name, new_name=new_name)


async def delete_employee_group(conn: asyncpg.Connection, *, actor: str, name: str) -> dict[str, Any]:
    return await _delete_group(conn, _EMPLOYEE_GROUPS, actor=actor, name=name)


# -- licenses -------------------------------------------------------------------------------


def _seats_dict(usage: asyncpg.Record) -> dict[str, Any]:
    return {"seats": usage["seats"], "in_use": usage["in_use"],
            "free": max(usage["seats"] - usage["in_use"], 0),
            "summary": f"{usage['in_use']} of {usage['seats']} seats in use"}


async def show_license(conn: asyncpg.Connection) -> dict[str, Any]:
    return _seats_dict(await licenses_q.usage(conn))


async def set_license(conn: asyncpg.Connection, *, actor: str, seats: int) -> dict[str, Any]:
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 0 or seats > 2**31 - 1:
        raise AdminError(f'invalid number of seats "{seats}": give a whole number, 0 or more')
    async with _change(conn):
        before = await licenses_q.usage(conn)
        if before["seats"] != seats:
            # fewer seats than are in use: the database refuses, naming both numbers
            await licenses_q.set_seats(conn, seats)
            await audit_q.record(conn, actor=actor, action="license.set", target="license",
                                 before={"seats": before["seats"]}, after={"seats": seats})
        return {**_seats_dict(await licenses_q.usage(conn)), "changed": before["seats"] != seats}


# -- mail outbox ----------------------------------------------------------------------------


def _outbox_dict(row: asyncpg.Record) -> dict[str, Any]:
    result = plain(dict(row))
    # asyncpg hands jsonb over as text; show it as the object it is
    if isinstance(result.get("payload"), str):
        with contextlib.suppress(ValueError):
            result["payload"] = json.loads(result["payload"])
    return result


async def list_outbox(conn: asyncpg.Connection, *, status: str | None = None,
                      limit: int = OUTBOX_LIST_LIMIT) -> list[dict[str, Any]]:
    if status is not None and status not in OUTBOX_STATUSES:
        raise AdminError(f'unknown outbox status "{status}" (statuses: {", ".join(OUTBOX_STATUSES)})')
    if limit < 1:
        raise AdminError("the limit must be at least 1")
    return [_outbox_dict(r) for r in await outbox_q.list_rows(conn, status=status, limit=limit)]


async def retry_outbox(conn: asyncpg.Connection, *, actor: str, outbox_id: int) -> dict[str, Any]:
    async with _change(conn):
        row = await outbox_q.get_for_update(conn, outbox_id)
        if row is None:
            raise AdminError(f"unknown outbox mail {outbox_id}")
        if row["status"] != "failed":
            raise AdminError(f"outbox mail {outbox_id} is {row['status']}, not failed; only failed "
                             "mail can be retried")
        updated = await outbox_q.requeue(conn, outbox_id)
        await audit_q.record(conn, actor=actor, action="outbox.retry", target=f"outbox:{outbox_id}",
                             before={"status": row["status"],
                                     "next_attempt_at": plain(row["next_attempt_at"])},
                             after={"status": updated["status"],
                                    "next_attempt_at": plain(updated["next_attempt_at"])})
    return _outbox_dict(updated)


# -- employees' mail settings ---------------------------------------------------------------


async def get_mail_settings(conn: asyncpg.Connection, *, username: str) -> dict[str, Any]:
    row = await _employee(conn, username)
    settings = await employees_q.mail_settings(conn, row["id"])
    values = {c: (settings[c] if settings else None) for c in MAIL_SETTINGS}
    return {"username": row["username"], "settings": {k: level_name(v) for k, v in values.items()
                                                      if v is not None}}


async def set_mail_settings(conn: asyncpg.Connection, *, actor: str, username: str,
                            settings: Mapping[str, str | bool]) -> dict[str, Any]:
    """Alert and recipient settings, on an employee's behalf (subcontractors have no client
    to set them in). Values are off/on (or booleans)."""
    words = {k: (("on" if v else "off") if isinstance(v, bool) else v) for k, v in settings.items()}
    values = _levels_to_columns(words, dict.fromkeys(MAIL_SETTINGS, _ON_OFF), "mail setting")
    async with _change(conn):
        row = await _employee(conn, username, lock=True)
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
