"""Mail events (written by the triggers of 003_mail.sql) as the fan-out claims and expands
them, with what it needs to know about their recipients (sql/events.sql)."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.queries.named import queries

Conn = asyncpg.Connection | asyncpg.Pool

_SQL = queries("events.sql")


async def claim_events(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` pending events, locked for this transaction (SKIP LOCKED)."""
    return await conn.fetch(_SQL["claim_events"], limit)


async def ticket_recipients(conn: asyncpg.Connection, ticket_ids: list[int]) -> dict[int, list[int]]:
    """Ticket id → the employees on its recipient list."""
    found: dict[int, list[int]] = {}
    for r in await conn.fetch(_SQL["ticket_recipients"], ticket_ids):
        found.setdefault(r["ticket_id"], []).append(r["employee_id"])
    return found


async def created_alert_employees(conn: asyncpg.Connection) -> list[int]:
    return [r["employee_id"] for r in await conn.fetch(_SQL["created_alert_employees"])]


async def mail_settings(conn: asyncpg.Connection, employee_ids: list[int]) -> dict[int, asyncpg.Record]:
    """Employee id → their alert and recipient settings, with their address."""
    rows = await conn.fetch(_SQL["mail_settings_with_address"], employee_ids)
    return {r["employee_id"]: r for r in rows}


async def insert_outbox_rows(conn: asyncpg.Connection, columns: tuple[list[Any], ...]) -> None:
    """One outbox row per position of the eight column lists (event, ticket, employee,
    subject, payload, message id, status, last error)."""
    await conn.execute(_SQL["insert_outbox_rows"], *columns)


async def mark_fanned_out(conn: asyncpg.Connection, event_ids: list[int]) -> None:
    await conn.execute(_SQL["mark_fanned_out"], event_ids)


async def set_aside_first_event(conn: Conn, error: str) -> int | None:
    """Mark the first pending event done with `error` recorded; its id."""
    return await conn.fetchval(_SQL["set_aside_first_event"], error)
