"""Shared by the mail tests: tickets and settings written with plain SQL (as any program
writing the database would), the fan-out run by hand, and an outbox worker on a test
database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from daemon.config import Config, Settings
from daemon.mail.fanout import fan_out
from daemon.mail.identity import MailIdentity
from daemon.mail.worker import OutboxWorker, create_mail_pool
from daemon.metrics import Metrics


async def new_ticket(conn: asyncpg.Connection, account_id: int, description: str = "Printer on fire", *,
                     assigned_to: int | None = None, recipients: tuple[int, ...] = (),
                     created_by: int | None = None) -> int:
    ticket_id = await conn.fetchval(
        """INSERT INTO tickets (account_id, description, assigned_to, created_by_employee)
           VALUES ($1, $2, $3, $4) RETURNING id""", account_id, description, assigned_to, created_by)
    for emp in recipients:
        await conn.execute("INSERT INTO ticket_recipients VALUES ($1, $2)", ticket_id, emp)
    return ticket_id


async def forget_mail(conn: asyncpg.Connection) -> None:
    """Start a test from a quiet outbox: everything so far counts as told."""
    await conn.execute("UPDATE mail_events SET fanned_out = true WHERE NOT fanned_out")
    await conn.execute("DELETE FROM outbox")


async def set_mail_settings(conn: asyncpg.Connection, employee_id: int, **values: bool) -> None:
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(values))
    await conn.execute(f"UPDATE employee_mail_settings SET {sets} WHERE employee_id = $1",
                       employee_id, *values.values())


def identity(config: Config) -> MailIdentity:
    return MailIdentity.from_config(config)


async def fan_out_all(conn: asyncpg.Connection, config: Config) -> list[tuple[str, str]]:
    """Run the fan-out until no event is left; the queued mails as (event, username), sorted."""
    while (await fan_out(conn, identity=identity(config))).events:
        pass
    rows = await conn.fetch(
        """SELECT o.event, e.username FROM outbox o JOIN employees e ON e.id = o.employee_id
            WHERE o.status = 'queued' ORDER BY o.event, e.username""")
    return [(r["event"], r["username"]) for r in rows]


@contextlib.asynccontextmanager
async def running_worker(config: Config, dsn: str, **options: Any) -> AsyncIterator[OutboxWorker]:
    pool = await create_mail_pool(dsn, lanes=options.get("lanes") or config.smtp.connections)
    worker = OutboxWorker(pool=pool, dsn=dsn, settings=Settings(config), metrics=Metrics(), **options)
    worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
        await pool.close()


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())


async def outbox_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await conn.fetch(
        "SELECT status, count(*) AS n FROM outbox GROUP BY status")}
