"""The mail outbox as an administrator sees it: listing rows and re-queueing failed mail.
(Claiming and marking rows is the delivery worker's business, not this module's.)"""

from __future__ import annotations

import asyncpg

COLUMNS = ("id", "event", "ticket_id", "employee_id", "subject_id", "payload", "message_id",
           "status", "attempts", "next_attempt_at", "locked_until", "locked_by", "last_code",
           "last_error", "created_at", "sent_at")
_SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM outbox"


async def list_rows(conn: asyncpg.Connection, *, status: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        _SELECT + " WHERE ($1::text IS NULL OR status = $1) ORDER BY id DESC LIMIT $2",
        status, limit,
    )


async def get_for_update(conn: asyncpg.Connection, outbox_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_SELECT + " WHERE id = $1 FOR UPDATE", outbox_id)


async def requeue(conn: asyncpg.Connection, outbox_id: int) -> asyncpg.Record:
    # attempts and last_error stay: they tell the history of this mail
    return await conn.fetchrow(
        """UPDATE outbox SET status = 'queued', next_attempt_at = now(),
                  locked_until = NULL, locked_by = NULL
            WHERE id = $1 RETURNING """ + ", ".join(COLUMNS),
        outbox_id,
    )
