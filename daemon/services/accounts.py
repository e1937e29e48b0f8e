"""Customer accounts: create and list."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.formatting import plain
from daemon.queries import accounts as accounts_q
from daemon.queries import audit as audit_q
from daemon.services.common import AdminError, change, checked_email, checked_name


def _account_dict(row: asyncpg.Record) -> dict[str, Any]:
    return plain({k: row[k] for k in ("id", "name", "contact_name", "phone", "email", "address",
                                      "created_at")})


async def create_account(conn: asyncpg.Connection, *, actor: str, name: str, contact_name: str = "",
                         phone: str = "", email: str = "", address: str = "") -> dict[str, Any]:
    name = checked_name(name, "the account name", 200)
    email = checked_email(email, required=False)
    async with change(conn):
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


async def account_id(conn: asyncpg.Connection, name: str) -> int:
    row = await accounts_q.find_by_name(conn, name)
    if row is None:
        raise AdminError(f'unknown account "{name}"')
    return row["id"]
