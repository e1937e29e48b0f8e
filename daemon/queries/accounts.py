"""Accounts: the customer companies."""

from __future__ import annotations

import asyncpg


async def find_by_name(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM accounts WHERE name = $1", name)


async def ids_by_names(conn: asyncpg.Connection, names: list[str]) -> dict[str, int]:
    rows = await conn.fetch("SELECT id, name FROM accounts WHERE name = ANY($1::text[])", names)
    return {r["name"]: r["id"] for r in rows}


async def insert(conn: asyncpg.Connection, *, name: str, contact_name: str = "", phone: str = "",
                 email: str = "", address: str = "") -> asyncpg.Record:
    return await conn.fetchrow(
        """INSERT INTO accounts (name, contact_name, phone, email, address)
           VALUES ($1, $2, $3, $4, $5) RETURNING *""",
        name, contact_name, phone, email, address,
    )


async def list_with_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT a.id, a.name, a.contact_name, a.phone, a.email, a.address, a.created_at,
                  (SELECT count(*) FROM customer_web_users u WHERE u.account_id = a.id) AS web_users,
                  (SELECT count(*) FROM tickets t WHERE t.account_id = a.id) AS tickets,
                  (SELECT count(*) FROM tickets t
                    WHERE t.account_id = a.id AND t.status <> 'closed') AS open_tickets
             FROM accounts a ORDER BY a.name"""
    )


async def names_by_ids(conn: asyncpg.Connection, ids: list[int]) -> dict[int, str]:
    rows = await conn.fetch("SELECT id, name FROM accounts WHERE id = ANY($1::bigint[])", ids)
    return {r["id"]: r["name"] for r in rows}
