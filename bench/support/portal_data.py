"""The data set of bench/portal.py: the demo data, then 100,000 tickets loaded in bulk as a
restore would (without per-row triggers), and a copy of that database without row-level
security for the comparison with the policies off, both vacuumed, analyzed and read into the
cache alike."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from daemon.db import migrations
from daemon.dev.demo import load_demo

TICKETS = 100_000
CUSTOMER_TICKETS = 1_000
SUB_TICKETS = 300
BULK_ACCOUNTS = 200
NO_RLS_DATABASE = "portald_bench_no_rls"

# A bulk load, as a restore would do it: without per-row triggers (the mail events of 100,000
# new tickets are not what this measures) — then ANALYZE, so the planner knows the sizes.
LOAD_SQL = """
SET session_replication_role = replica;

INSERT INTO accounts (name) SELECT 'Bulk ' || g FROM generate_series(1, {bulk_accounts}) g;

-- {total} tickets over time (ids grow with created_at): every 100th is the measured customer's
-- ({customer} in all), the first {sub} of those assigned to sub1; the rest spread over the
-- other accounts
INSERT INTO tickets (account_id, description, priority, status, assigned_to, created_at,
                     updated_at, closed_at)
SELECT CASE WHEN mine THEN {acme} ELSE a.ids[1 + g % array_length(a.ids, 1)] END,
       CASE WHEN mine THEN 'Bench ' || k || ': printer ' || (k % 97) || ' reports error '
            ELSE 'Other ' || g || ': ' END || left(md5(g::text), 8),
       (ARRAY['low', 'normal', 'high', 'urgent'])[1 + k % 4],
       CASE WHEN k % 5 = 0 THEN 'closed' ELSE (ARRAY['open', 'in_progress', 'waiting'])[1 + k % 3] END,
       CASE WHEN mine AND k < {sub} THEN {sub1} WHEN g % 2 = 0 THEN {tech} END,
       now() - make_interval(mins => {total} - g), now() - make_interval(mins => {total} - g),
       CASE WHEN k % 5 = 0 THEN now() END
  FROM generate_series(1, {total}) g
       -- k numbers the customer's tickets 0, 1, 2, …: their status and text vary with it
       CROSS JOIN LATERAL (SELECT g % 100 = 50 AND g / 100 < {customer} AS mine,
                                  CASE WHEN g % 100 = 50 THEN g / 100 ELSE g END AS k) m,
       (SELECT array_agg(id) AS ids FROM accounts WHERE name <> 'Acme') a;

-- a few notes, charges and emails on each of the customer's bench tickets; the author is the
-- assignee, so sub1's own rows are there for sub1 to see
WITH bench AS (SELECT id, COALESCE(assigned_to, {tech}) AS by FROM tickets
                WHERE account_id = {acme} AND description LIKE 'Bench %')
INSERT INTO history_notes (ticket_id, author_employee_id, body, created_at)
SELECT b.id, b.by, 'Note ' || n || ': checked the printer queue and the driver ' || left(md5(b.id || '-' || n), 10),
       now() - make_interval(mins => 10 * (4 - n))
  FROM bench b, generate_series(1, 3) n;

WITH bench AS (SELECT id, COALESCE(assigned_to, {tech}) AS by FROM tickets
                WHERE account_id = {acme} AND description LIKE 'Bench %')
INSERT INTO charges (ticket_id, kind, description, quantity, unit_price, employee_id)
SELECT b.id, k.kind, k.what, k.quantity, k.price, b.by
  FROM bench b, (VALUES ('labor', 'On-site work', 1.5, 65.00), ('expense', 'Travel', 1, 24.50),
                        ('part', 'Toner', 2, 49.90)) AS k(kind, what, quantity, price);

WITH bench AS (SELECT id FROM tickets WHERE account_id = {acme} AND description LIKE 'Bench %')
INSERT INTO ticket_emails (ticket_id, from_addr, to_addr, subject, body, is_public, filed_by)
SELECT b.id, 'it@acme.example', 'support@msp.example', 'Printer ' || b.id || ' (' || e || ')',
       'Hello, the printer shows an error again. Regards', e = 1, {tech}
  FROM bench b, generate_series(1, 2) e;

SET session_replication_role = origin;
ANALYZE;
"""


async def load_data(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
        await load_demo(conn)
        ids = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM accounts")}
        sub1 = await conn.fetchval("SELECT id FROM employees WHERE username = 'sub1'")
        tech = await conn.fetchval("SELECT id FROM employees WHERE username = 'tech'")
        existing = await conn.fetchval("SELECT count(*) FROM tickets")
        # the ids are our own integers, so formatting them in is safe here
        await conn.execute(LOAD_SQL.format(
            bulk_accounts=BULK_ACCOUNTS, customer=CUSTOMER_TICKETS, sub=SUB_TICKETS,
            total=TICKETS - existing, acme=ids["Acme"], sub1=sub1, tech=tech))
        # the demo's mail is not what this measures: the daemons' mail workers find none to send
        await conn.execute("DELETE FROM outbox")
        detail_id = await conn.fetchval(
            "SELECT max(id) FROM tickets WHERE account_id = $1 AND status <> 'closed' "
            "AND description LIKE 'Bench %'", ids["Acme"])
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM tickets) AS tickets,
                      (SELECT count(*) FROM tickets WHERE account_id = $1) AS customer,
                      (SELECT count(*) FROM tickets WHERE assigned_to = $2) AS sub,
                      (SELECT count(*) FROM history_notes) AS notes,
                      (SELECT count(*) FROM charges) AS charges,
                      (SELECT count(*) FROM ticket_emails) AS emails""", ids["Acme"], sub1)
        return {"detail_id": detail_id, **dict(counts)}
    finally:
        await conn.close()


async def copy_without_row_security(dsn: str) -> str:
    """A copy of the bench's database (after loading, nobody connected) in which every table
    that has row-level security has it disabled: the same data and plans without the policies.
    Returns its DSN."""
    source = urlsplit(dsn).path.lstrip("/")
    # from the maintenance database: a template must have no session of its own
    admin = await asyncpg.connect(urlunsplit(urlsplit(dsn)._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{NO_RLS_DATABASE}"')
        await admin.execute(f'CREATE DATABASE "{NO_RLS_DATABASE}" TEMPLATE "{source}"')
    finally:
        await admin.close()
    copy = urlunsplit(urlsplit(dsn)._replace(path=f"/{NO_RLS_DATABASE}"))
    conn = await asyncpg.connect(copy)
    try:
        tables = [r["t"] for r in await conn.fetch(
            "SELECT quote_ident(relname) AS t FROM pg_class WHERE relrowsecurity "
            "AND relnamespace = 'public'::regnamespace ORDER BY 1")]
        assert tables, "the bench's database has no table under row-level security"
        for table in tables:
            await conn.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    finally:
        await conn.close()
    for each in (dsn, copy):
        await settle(each)
    return copy


async def settle(dsn: str) -> None:
    """The same footing for both databases: vacuumed (visibility map set, hint bits written:
    autovacuum would otherwise get to the original, whose insert counters it knows, and never
    to the copy, whose counters start at zero), analyzed, and every table and index read into
    the shared buffers, so that neither starts colder than the other."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM (FREEZE, ANALYZE)")
        relations = [r["oid"] for r in await conn.fetch(
            "SELECT c.oid FROM pg_class c WHERE c.relkind IN ('r', 'i', 't') "
            "AND c.relnamespace = 'public'::regnamespace ORDER BY c.oid")]
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            for oid in relations:
                await conn.execute("SELECT pg_prewarm($1::regclass)", oid)
        except asyncpg.PostgresError:
            # a PostgreSQL without contrib: a full read of each table warms it nearly as well
            for table in await conn.fetch("SELECT quote_ident(relname) AS t FROM pg_class "
                                          "WHERE relkind = 'r' AND relnamespace = "
                                          "'public'::regnamespace"):
                await conn.execute(f"SELECT count(*) FROM (SELECT * FROM {table['t']}) x")
    finally:
        await conn.close()


