"""Logins under load: the throttle counts an attempt and checks the limit in one step (so at
most the limit is ever hashed), no database connection is held while a password is hashed, and
hashing runs in a bounded number of slots. Behind a balancer the client is the rightmost
untrusted X-Forwarded-For hop, and only from [http] trusted_proxies."""

from __future__ import annotations

import asyncio
import re

import pytest

from daemon.app import build_app
from daemon.dev.demo_data import DEMO_PASSWORD
from daemon.passwords import PasswordGate
from tests.support.api import Api
from tests.support.config import with_settings
from tests.support.hashing import BlockedHashing
from web.login import HASHING
from web.routes import setup_web

LIMIT = 10  # [http] login_attempts_per_15min of the test configuration


def checks(metrics_text: str) -> float:
    return float(re.search(r"^portald_password_checks_total (\S+)$", metrics_text, re.M).group(1))


async def test_thirty_concurrent_wrong_passwords_hash_at_most_the_limit(demo_client, demo_db) -> None:
    assert (await demo_client.get("/metrics")).status == 200
    before = checks(await (await demo_client.get("/metrics")).text())

    async def attempt(i: int) -> int:
        resp = await demo_client.post("/api/v1/login", json={"username": "tech",
                                                             "password": f"wrong-{i}"})
        body = await resp.json()
        assert set(body) == {"error"}, body
        return resp.status

    statuses = await asyncio.gather(*(attempt(i) for i in range(30)))
    hashed = checks(await (await demo_client.get("/metrics")).text()) - before
    print(f"30 concurrent wrong passwords: {statuses.count(401)} checked (401), "
          f"{statuses.count(429)} throttled (429), {hashed:.0f} hashed")
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == LIMIT and hashed == LIMIT
    assert await demo_db.fetchval("SELECT count(*) FROM login_failures WHERE username = 'tech'") == LIMIT
    assert await demo_db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'login_failed'") == LIMIT


@pytest.fixture
def small_pool_app(demo_config, demo_dsn):
    cfg = with_settings(demo_config, database={"pool_min": 1, "pool_max": 2},
                        http={"login_attempts_per_15min": 100})
    return build_app(cfg, demo_dsn, setup_web=setup_web, background=False)


async def test_me_answers_while_logins_hash_on_a_pool_of_two(small_pool_app, aiohttp_client,
                                                             monkeypatch) -> None:
    client = await aiohttp_client(small_pool_app)
    me = await Api.login(client, "full@acme")
    try:
        blocked = BlockedHashing(monkeypatch)
        logins = [asyncio.create_task(client.post("/api/v1/login", json={
            "username": f"nobody{i}", "password": "wrong"})) for i in range(12)]
        # as many logins hash as there are slots; with a connection held by each, the pool
        # (2) would be empty and /me would wait until the hashes end: here, never
        await blocked.wait_entered(min(2, small_pool_app[HASHING].slots))
        async with asyncio.timeout(15):
            reply = await me.get("/api/v1/me")
        assert reply.status == 200 and reply.body["username"] == "full@acme"
        assert blocked.entered <= small_pool_app[HASHING].slots  # the others wait their turn
        blocked.release.set()
        statuses = [(await t).status for t in logins]
        assert statuses == [401] * 12
    finally:
        await me.close()


async def test_hashing_beyond_the_slots_waits_then_answers_503(small_pool_app, aiohttp_client,
                                                               monkeypatch) -> None:
    small_pool_app[HASHING] = PasswordGate(1, wait_s=0.3)
    client = await aiohttp_client(small_pool_app)
    blocked = BlockedHashing(monkeypatch)
    first = asyncio.create_task(client.post("/api/v1/login", json={"username": "tech",
                                                                   "password": "wrong"}))
    await blocked.wait_entered(1)
    second = await client.post("/api/v1/login", json={"username": "admin", "password": "wrong"})
    assert second.status == 503 and second.headers["Retry-After"]
    assert (await second.json())["error"]["code"] == "unavailable"
    blocked.release.set()
    assert (await first).status == 401


@pytest.fixture
def proxied_app(demo_config, demo_dsn):
    cfg = with_settings(demo_config, http={"trusted_proxies": ("127.0.0.1/32", "10.0.0.0/8")})
    return build_app(cfg, demo_dsn, setup_web=setup_web, background=False)


async def _failed_login_ip(client, demo_db, forwarded: str | None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    resp = await client.post("/api/v1/login", json={"username": "tech", "password": "wrong"},
                             headers=headers)
    assert resp.status == 401
    return await demo_db.fetchval(
        "SELECT ip FROM audit_log WHERE action = 'login_failed' ORDER BY id DESC LIMIT 1")


@pytest.mark.parametrize(("forwarded", "client_ip"), [
    (None, "127.0.0.1"),
    ("203.0.113.7", "203.0.113.7"),
    ("198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the left one is the client's own claim
    ("203.0.113.7, 10.1.2.3", "203.0.113.7"),  # 10.1.2.3 is a trusted balancer hop
    ("garbage, 10.1.2.3", "10.1.2.3"),
    ("10.9.9.9, 10.1.2.3", "10.9.9.9"),  # all trusted: the leftmost
])
async def test_forwarded_for_is_believed_from_trusted_proxies(proxied_app, aiohttp_client, demo_db,
                                                              forwarded, client_ip) -> None:
    client = await aiohttp_client(proxied_app)
    assert await _failed_login_ip(client, demo_db, forwarded) == client_ip


async def test_forwarded_for_is_ignored_by_default(demo_client, demo_db) -> None:
    assert await _failed_login_ip(demo_client, demo_db, "203.0.113.7") == "127.0.0.1"


async def test_a_good_login_still_works_after_failures_below_the_limit(demo_client) -> None:
    for _ in range(LIMIT - 1):
        resp = await demo_client.post("/api/v1/login", json={"username": "tech", "password": "x"})
        assert resp.status == 401
    resp = await demo_client.post("/api/v1/login", json={"username": "tech",
                                                         "password": DEMO_PASSWORD})
    assert resp.status == 200
