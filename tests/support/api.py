"""Talking to a test server: logging a test client in, a logged-in client that sends its CSRF
token, and the ids of the demo data (daemon/dev/demo_data.py) looked up by what they are rather
than by number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp import FormData

from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.seed import SEED_PASSWORD


async def login_as(client: Any, username: str, password: str = SEED_PASSWORD) -> str:
    """Log `client` in through the API; returns the CSRF token."""
    resp = await client.post("/api/v1/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf_token"]


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    def __repr__(self) -> str:  # shown by failing asserts
        return f"Reply({self.status}, {self.body!r})"


class Api:
    """One logged-in user with a cookie jar of its own (several users can act side by side
    on one test server): JSON in and out, the CSRF header on every change."""

    def __init__(self, session: aiohttp.ClientSession, csrf: str, username: str) -> None:
        self.session, self.csrf, self.username = session, csrf, username

    @classmethod
    async def login(cls, client: Any, username: str, password: str = DEMO_PASSWORD) -> Api:
        session = aiohttp.ClientSession(base_url=str(client.make_url("")),
                                        cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with session.post("/api/v1/login", json={"username": username,
                                                       "password": password}) as resp:
            assert resp.status == 200, await resp.text()
            csrf = (await resp.json())["csrf_token"]
        return cls(session, csrf, username)

    async def close(self) -> None:
        await self.session.close()

    async def _reply(self, resp: Any) -> Reply:
        if resp.content_type == "application/json":
            body = await resp.json()
        else:
            body = await resp.read()
        return Reply(resp.status, body, resp.headers)

    async def get(self, path: str, **params: Any) -> Reply:
        async with self.session.get(path, params=params or None) as resp:
            return await self._reply(resp)

    async def send(self, method: str, path: str, json: Any = None, *, csrf: bool = True,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        headers = {**({"X-CSRF-Token": self.csrf} if csrf else {}), **(headers or {})}
        if json is not None:
            kwargs["json"] = json
        async with self.session.request(method, path, headers=headers, **kwargs) as resp:
            return await self._reply(resp)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return await self.send("POST", path, json, **kwargs)

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return await self.send("PATCH", path, json, **kwargs)

    async def put(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return await self.send("PUT", path, json, **kwargs)

    async def upload(self, ticket_id: int, data: bytes = b"hello", *, filename: str = "a.txt",
                     public: str | None = None) -> Reply:
        form = FormData()
        form.add_field("file", data, filename=filename, content_type="text/plain")
        if public is not None:
            form.add_field("public", public)
        return await self.post(f"/api/v1/tickets/{ticket_id}/attachments", data=form)


class DemoIds(dict):
    """Ids of the demo data by name: ids["acme"], ids["sub1"], ids["t_acme_main"], ids["Q-1001"]…"""


async def demo_ids(db: asyncpg.Connection | str) -> DemoIds:
    """The ids of the demo rows the tests use, by meaning; `db` is a connection or a DSN."""
    if isinstance(db, str):
        conn = await asyncpg.connect(db)
        try:
            return await demo_ids(conn)
        finally:
            await conn.close()
    ids = DemoIds()
    for r in await db.fetch("SELECT id, lower(name) AS name FROM accounts"):
        ids[r["name"]] = r["id"]
    for r in await db.fetch("SELECT id, username FROM employees"):
        ids[r["username"]] = r["id"]
    for r in await db.fetch("SELECT id, username FROM customer_web_users"):
        ids[r["username"]] = r["id"]
    # the main ticket of each account (see daemon/dev/demo_data.py) by a phrase of its description
    for key, phrase in (("t_acme_main", "projects share"), ("t_acme_vpn", "VPN access"),
                        ("t_acme_phones", "no dial tone"), ("t_globex_main", "stuck in the queue"),
                        ("t_initech_main", "PC LOAD LETTER")):
        ids[key] = await db.fetchval("SELECT id FROM tickets WHERE description LIKE $1",
                                     f"%{phrase}%")
    ids["contract"] = await db.fetchval("""SELECT c.id FROM contracts c JOIN accounts a ON a.id = c.account_id
                                            WHERE a.name = 'Acme' AND c.name = 'Managed services'""")
    ids["document"] = await db.fetchval("""SELECT d.id FROM documents d JOIN accounts a ON a.id = d.account_id
                                            WHERE a.name = 'Acme' AND d.is_public ORDER BY d.id LIMIT 1""")
    ids["kb"] = await db.fetchval("SELECT id FROM kb_articles WHERE title = 'Connecting to the office VPN'")
    ids["kb_file"] = await db.fetchval("SELECT min(id) FROM kb_files WHERE article_id = $1", ids["kb"])
    for number in ("Q-1001", "Q-1002", "Q-1003", "Q-1004"):
        ids[number] = await db.fetchval("SELECT id FROM quotes WHERE number = $1", number)
    return ids


async def ticket_ids(conn: asyncpg.Connection, account_id: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(
        "SELECT id FROM tickets WHERE account_id = $1 ORDER BY id", account_id)]


class Users:
    """Logs users in on one test server; closes their sessions at the end of the test."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.apis: list[Api] = []

    async def login(self, username: str, password: str = DEMO_PASSWORD) -> Api:
        api = await Api.login(self.client, username, password)
        self.apis.append(api)
        return api

    async def close(self) -> None:
        for api in self.apis:
            await api.close()
