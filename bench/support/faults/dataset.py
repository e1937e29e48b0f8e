"""The fault bench's data: the demo data set (loaded with `portald demo`), plus the bench's
own tickets, and what it needs to measure: commit timestamps, and a table that keeps, for
every mail event, the transaction that produced it (its xmin), since the daemon's fan-out
later updates the event row itself."""

from __future__ import annotations

import asyncio

import asyncpg

from bench.support.faults.load import Db, Targets
from bench.support.faults.procs import Postgres

BENCH_TICKETS = 20
PASSWORD = "demo"  # of every demo login

BENCH_SQL = """
CREATE TABLE bench_event_commits (event_id bigint PRIMARY KEY);
CREATE FUNCTION bench_event_commits() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO bench_event_commits SELECT id FROM new_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_event_commits AFTER INSERT ON mail_events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_event_commits();
"""


async def enable_commit_timestamps(pg: Postgres) -> None:
    """Delays are measured from the commit as PostgreSQL records it: needs a restart."""
    conn = await asyncpg.connect(pg.dsn)
    try:
        await conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    finally:
        await conn.close()
    await asyncio.to_thread(pg.restart)


async def prepare(db: Db, base: str) -> tuple[Targets, dict[int, set[int]]]:
    """The bench's tickets (Acme, recipients admin and tech) and the commit-time table."""

    async def go(conn: asyncpg.Connection) -> tuple[Targets, dict[int, set[int]]]:
        emp = dict(await conn.fetch("SELECT username, id FROM employees"))
        acme = await conn.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
        customer = await conn.fetchval("SELECT id FROM customer_web_users WHERE username = 'full@acme'")
        demo = {r["id"] for r in await conn.fetch("SELECT id FROM tickets")}
        tickets = [r["id"] for r in await conn.fetch(
            """INSERT INTO tickets (account_id, description, assigned_to)
               SELECT $1, 'Fault bench ticket ' || g, $2 FROM generate_series(1, $3) g RETURNING id""",
            acme, emp["tech"], BENCH_TICKETS)]
        people = [emp["admin"], emp["tech"]]
        await conn.execute("INSERT INTO ticket_recipients SELECT t, e FROM unnest($1::bigint[]) t, "
                           "unnest($2::bigint[]) e", tickets, people)
        await conn.execute(BENCH_SQL)
        return (Targets(base, tickets, demo, people, customer, PASSWORD),
                {t: set(people) for t in tickets})

    return await db.run(go)
