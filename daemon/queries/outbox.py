"""The mail outbox: as an administrator sees it (listing rows, re-queueing failed mail), and as
the delivery worker claims, leases and marks it."""

from __future__ import annotations

import asyncpg

from daemon.queries.named import queries

Conn = asyncpg.Connection | asyncpg.Pool

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


# -- the delivery worker's statements (sql/outbox.sql) ---------------------------------------

_SQL = queries("outbox.sql")


async def claim_batch(conn: Conn, *, size: int, lease_s: float, instance: str) -> list[asyncpg.Record]:
    """Up to `size` due mails, leased to `instance` for `lease_s` (SKIP LOCKED: several
    instances claim side by side, never the same row)."""
    return await conn.fetch(_SQL["claim_batch"], size, lease_s, instance)


async def renew_lease(conn: Conn, ids: list[int], *, instance: str, lease_s: float) -> set[int]:
    """The ids whose lease `instance` still held and now holds for `lease_s` more."""
    return {r["id"] for r in await conn.fetch(_SQL["renew_lease"], ids, instance, lease_s)}


async def mark_sent(conn: Conn, sent: list[tuple[int, int]]) -> None:
    """(id, server code) of each mail the server accepted."""
    ids, codes = zip(*sent, strict=True)
    await conn.execute(_SQL["mark_sent"], list(ids), list(codes))


async def mark_unsent(conn: Conn, unsent: list[tuple[int, int | None, str, float, bool, bool]], *,
                      retry_max_hours: int) -> list[asyncpg.Record]:
    """(id, code, error, retry delay s, final, offered to the server) of each mail not sent;
    answers (id, status) of the rows changed."""
    ids, codes, errors, delays, finals, tried = (list(c) for c in zip(*unsent, strict=True))
    return await conn.fetch(_SQL["mark_unsent"], ids, codes, errors, delays, finals,
                            retry_max_hours, tried)


async def release_leases(conn: Conn, ids: list[int], *, instance: str) -> None:
    await conn.execute(_SQL["release_leases"], ids, instance)


async def release_all_leases(conn: Conn, *, instance: str) -> None:
    await conn.execute(_SQL["release_all_leases"], instance)


async def retry_unreachable_now(conn: Conn) -> None:
    await conn.execute(_SQL["retry_unreachable_now"])


async def next_due_in(conn: Conn) -> float | None:
    """Seconds until the next queued mail is due, None when none waits."""
    return await conn.fetchval(_SQL["next_due_in"])


async def queue_state(conn: Conn) -> asyncpg.Record:
    """The queue as a whole: mails queued, how many of them are leased to a sender now, and
    the age in seconds of the oldest (0 when none)."""
    return await conn.fetchrow(_SQL["queue_state"])
