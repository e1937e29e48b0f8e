"""The scheduled jobs' statements (sql/scheduler.sql): run a (job, slot) once across
instances, enqueue reminder and digest events, and clean up."""

from __future__ import annotations

import asyncpg

from daemon.queries.named import queries

_SQL = queries("scheduler.sql")


def _count(status: str) -> int:
    # "INSERT 0 12" / "DELETE 12"
    return int(status.rsplit(" ", 1)[-1])


async def claim_run(conn: asyncpg.Connection, lock_class: int, job: str, slot: str) -> bool:
    """Take the job's lock for this transaction, then claim (job, slot): False when some
    instance already ran it."""
    await conn.execute(_SQL["lock_job"], lock_class, job)
    return bool(await conn.fetchval(_SQL["claim_run"], job, slot))


async def enqueue_reminders(conn: asyncpg.Connection, *, reminder_hours: int) -> int:
    return _count(await conn.execute(_SQL["enqueue_reminders"], reminder_hours))


async def enqueue_digests(conn: asyncpg.Connection, *, day: str) -> int:
    return _count(await conn.execute(_SQL["enqueue_digests"], day))


async def clean_up(conn: asyncpg.Connection, *, days: int) -> int:
    """Sent mail, expanded events and run records older than `days`; how many rows went."""
    return sum([_count(await conn.execute(_SQL[name], days))
                for name in ("delete_sent_mail", "delete_expanded_events", "delete_old_runs")])
