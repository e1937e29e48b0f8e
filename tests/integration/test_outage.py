"""A database that goes away under a request that is already being served (a restart, a cut
connection) is an outage, not a bug: the answer is 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.support.api import login_as
from tests.support.mail import wait_until


async def test_a_connection_cut_in_the_middle_of_a_request_answers_503(client, conn, dsn, seed) -> None:
    await login_as(client, "full@acme")
    # hold the request at its ticket query (the session is resolved by then): lock the table
    locker = await asyncpg.connect(dsn)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
        request = asyncio.ensure_future(client.get("/api/v1/tickets"))
        assert await wait_until(lambda: _waiting_on_lock(conn))
        cut = await conn.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'""")
        assert cut == 1
        resp = await request
        await tx.rollback()
    finally:
        await locker.close()
    assert resp.status == 503, await resp.text()
    assert resp.headers["Retry-After"]
    assert (await resp.json())["error"]["code"] == "unavailable"
    # the pool replaces the dead connection: the next request is served
    assert (await client.get("/api/v1/tickets")).status == 200


async def _waiting_on_lock(conn) -> bool:
    return bool(await conn.fetchval(
        """SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'"""))

