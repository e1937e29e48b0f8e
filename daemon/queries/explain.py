"""What `admin explain` counts: a ticket by id or number, and for one principal how many rows
of each part of it (and of its account's data) the scope conditions let through, of how many."""

from __future__ import annotations

import asyncpg

from daemon.access import scope
from daemon.access.scope import Params, Principal

_TICKET = """SELECT t.id, t.number, t.account_id, a.name AS account, t.status, t.priority,
                     t.asset_id, t.assigned_to, e.username AS assigned_username,
                     t.created_by_webuser, w.username AS raised_by
                FROM tickets t JOIN accounts a ON a.id = t.account_id
                LEFT JOIN employees e ON e.id = t.assigned_to
                LEFT JOIN customer_web_users w ON w.id = t.created_by_webuser"""


async def ticket_by_id(conn: asyncpg.Connection, ticket_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_TICKET} WHERE t.id = $1", ticket_id)


async def ticket_by_number(conn: asyncpg.Connection, number: str) -> asyncpg.Record | None:
    """A ticket by its number (e.g. T-1000, any case)."""
    return await conn.fetchrow(f"{_TICKET} WHERE upper(t.number) = upper($1)", number)


async def count_children(conn: asyncpg.Connection, p: Principal, table: str,
                         ticket_id: int) -> tuple[int, int]:
    """(rows of `table` under the ticket that `p` sees, all of them)."""
    params = Params(ticket_id)
    cond = scope.children(p, params, table)
    row = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE {cond}) AS seen, count(*) AS total "
        f"FROM {table} c WHERE c.ticket_id = $1", *params.values)
    return row["seen"], row["total"]


# the account-data tables explain counts (names spliced into SQL come from here only)
ACCOUNT_TABLES = ("assets", "contracts", "documents", "quotes")


async def count_account_rows(conn: asyncpg.Connection, p: Principal, table: str,
                             account_id: int) -> tuple[int, int]:
    """(rows of the account's `table` that `p` sees, all of them); documents also by the
    level of `p` (public ones only, or all)."""
    if table not in ACCOUNT_TABLES:
        raise ValueError(f"not an account-data table: {table}")
    params = Params(account_id)
    cond = scope.accounts(p, params, "c.account_id")
    if table == "documents":
        cond = f"({cond}) AND {scope.documents(p)}"
    row = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE {cond}) AS seen, count(*) AS total "
        f"FROM {table} c WHERE c.account_id = $1", *params.values)
    return row["seen"], row["total"]


async def count_kb(conn: asyncpg.Connection, p: Principal) -> tuple[int, int]:
    row = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE {scope.kb(p)}) AS seen, count(*) AS total "
        "FROM kb_articles c")
    return row["seen"], row["total"]
