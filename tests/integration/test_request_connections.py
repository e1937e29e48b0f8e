"""What a request holds of the pool: one connection for the session, the principal and the
page's data (so pages answer on a pool of a single connection, even when the privilege cache
must read), and none while a password change hashes."""

from __future__ import annotations

import asyncio

import pytest

from daemon.app import build_app
from daemon.appkeys import PRIVILEGES
from tests.support.api import Api
from tests.support.config import with_settings
from tests.support.hashing import BlockedHashing
from web.routes import setup_web


@pytest.fixture
def one_connection_app(demo_config, demo_dsn):
    cfg = with_settings(demo_config, database={"pool_min": 1, "pool_max": 1},
                        http={"login_attempts_per_15min": 100})
    return build_app(cfg, demo_dsn, setup_web=setup_web, background=False)


async def test_pages_answer_on_a_pool_of_one_connection(one_connection_app, aiohttp_client,
                                                        demo_db) -> None:
    client = await aiohttp_client(one_connection_app)
    full = await Api.login(client, "full@acme")
    try:
        ticket = (await full.get("/api/v1/tickets")).body["items"][0]["id"]
        cache = one_connection_app[PRIVILEGES]
        # a cache that the listener vouches for, behind the database (a newer version whose
        # notification never came): the request that reads it reloads the cache, on the one
        # connection it already holds
        await cache.reload()
        cache.mark_valid()
        await demo_db.execute("UPDATE privilege_state SET version = version + 1")
        reloads = cache.reloads
        async with asyncio.timeout(10):
            for path in ("/tickets", f"/tickets/{ticket}", "/api/v1/tickets"):
                reply = await full.get(path)
                assert reply.status == 200, (path, reply.status)
        assert cache.reloads == reloads + 1 and cache.valid
        # an invalid cache: each request reads its principal on its own connection
        cache.invalidate(quiet=True)
        direct = cache.direct_reads
        async with asyncio.timeout(10):
            assert (await full.get(f"/tickets/{ticket}")).status == 200
        assert cache.direct_reads == direct + 1
    finally:
        await full.close()


async def test_password_change_holds_no_connection_while_it_hashes(
        one_connection_app, aiohttp_client, monkeypatch, demo_db) -> None:
    client = await aiohttp_client(one_connection_app)
    changer = await Api.login(client, "full@acme")
    other = await Api.login(client, "partial@acme")
    try:
        blocked = BlockedHashing(monkeypatch)
        change = asyncio.create_task(changer.post("/api/v1/me/password", json={
            "current": "demo", "new": "a new password 1"}))
        await blocked.wait_entered(1)
        # the pool's only connection is free while the current password is checked
        async with asyncio.timeout(10):
            reply = await other.get("/api/v1/me")
        assert reply.status == 200 and reply.body["username"] == "partial@acme"
        assert not change.done()
        blocked.release.set()
        assert (await change).status == 200
        assert await demo_db.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'password.change'") == 1
    finally:
        await changer.close()
        await other.close()
