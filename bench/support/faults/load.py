"""The load of the fault bench, fixed and modest (the machine has few cores and the daemon
must not be starved by its own load generator):

- portal readers: logged-in users reading ticket lists and details, HTML and JSON API, each
  at one request per READ_PERIOD_S;
- an API writer (an employee): a note or a reassignment every WRITE_PERIOD_S;
- a database writer: a note or a reassignment every WRITE_PERIOD_S, straight in SQL;
- bursts (before each fault): many notes in one transaction, so a fault finds mail in flight.

Every portal request is recorded (wall-clock start and end, outcome) for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

READ_PERIOD_S = 0.5  # per reader: 2 requests/s
WRITE_PERIOD_S = 1.0  # per writer: 1 change/s
REQUEST_TIMEOUT_S = 20.0  # a request that takes longer is a hang
LOGIN_RETRY_S = 0.5
BENCH_APP = "faults-bench"  # application_name of the bench's own connections (never cut)
DB_CONNECT_TIMEOUT_S = 5.0

# outcomes of a portal request
OK = "ok"
UNAVAILABLE = "503"
HTTP_ERROR = "http-error"  # any other status than the expected ones and 503
REFUSED = "refused"  # TCP connection refused: nothing listens (the daemon is down)
DROPPED = "dropped"  # the connection broke with the request in flight
TIMEOUT = "timeout"
TRANSPORT = "transport"  # any other client-side failure

DB_DOWN: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


class Db:
    """One connection of the bench's own, reopened whenever the server went away."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = f"{BENCH_APP}-{name}"
        self.conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.dsn, timeout=DB_CONNECT_TIMEOUT_S,
                                              server_settings={"application_name": self.name})
        return self.conn

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[Any]], *,
                  patience_s: float = 90.0) -> Any:
        """fn(connection), retried on a fresh connection while the server is away."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                return await fn(await self._connection())
            except DB_DOWN:
                await self.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()


@dataclass
class Request:
    start: float
    end: float
    who: str
    what: str
    outcome: str
    status: int | None = None
    detail: str = ""


@dataclass
class Targets:
    """What the load works on: the bench's tickets (changed) and the employees involved."""

    base: str
    tickets: list[int]
    demo_tickets: set[int]  # read only: nobody's scope changes under the readers
    assignees: list[int]
    customer_webuser: int  # author of the SQL notes
    password: str


@dataclass
class Load:
    targets: Targets
    requests: list[Request] = field(default_factory=list)
    db_changes: dict[str, int] = field(default_factory=lambda: {"committed": 0, "failed": 0})
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    # -- one request ----------------------------------------------------------------------------

    async def call(self, http: aiohttp.ClientSession, who: str, what: str, method: str,
                   path: str, *, html: bool, **kw: Any) -> tuple[str, int | None, Any]:
        start = time.time()
        status, body, outcome, detail = None, None, OK, ""
        try:
            async with http.request(method, self.targets.base + path, allow_redirects=False,
                                    **kw) as resp:
                status = resp.status
                raw = await resp.read()
            ok = status == 200 if html else 200 <= status < 300
            if ok:
                body = raw
            else:
                outcome = UNAVAILABLE if status == 503 else HTTP_ERROR
                detail = f"{status} {raw[:160].decode('utf-8', 'replace')}"
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            outcome, detail = (REFUSED if refused else TRANSPORT), repr(exc.os_error)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientPayloadError) as exc:
            outcome, detail = DROPPED, repr(exc)
        except TimeoutError:
            outcome, detail = TIMEOUT, f"no answer within {REQUEST_TIMEOUT_S:.0f} s"
        except aiohttp.ClientError as exc:
            outcome, detail = TRANSPORT, repr(exc)
        self.requests.append(Request(start, time.time(), who, what, outcome, status, detail))
        return outcome, status, body

    # -- sessions -------------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        # unsafe: the default jar keeps no cookies of a bare IP address such as 127.0.0.1
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))

    async def login(self, http: aiohttp.ClientSession, username: str) -> str:
        """Log in (retrying while the daemon is away); the CSRF token."""
        while not self.stop.is_set():
            try:
                async with http.post(f"{self.targets.base}/api/v1/login",
                                     json={"username": username,
                                           "password": self.targets.password}) as resp:
                    if resp.status == 200:
                        return (await resp.json())["csrf_token"]
            except (aiohttp.ClientError, TimeoutError):
                pass
            await self._pause(LOGIN_RETRY_S)
        return ""

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), max(0.0, seconds))

    async def _pace(self, started: float, period: float) -> None:
        await self._pause(started + period - time.monotonic())

    # -- readers --------------------------------------------------------------------------------

    async def _detail_ids(self, http: aiohttp.ClientSession, who: str, api_list: str) -> list[int]:
        while not self.stop.is_set():
            outcome, _, body = await self.call(http, who, "api list", "GET", api_list, html=False)
            if outcome == OK:
                ids = [t["id"] for t in json.loads(body)["items"]]
                return [i for i in ids if i in self.targets.demo_tickets]
            await self._pause(READ_PERIOD_S)
        return []

    async def reader(self, username: str, *, everything: bool) -> None:
        """`everything`: an employee listing all tickets in scope, not only those assigned
        to them (the default)."""
        html_list, api_list = ("/tickets?mine=0", "/api/v1/tickets?assigned=any") if everything \
            else ("/tickets", "/api/v1/tickets")
        async with self.session() as http:
            await self.login(http, username)
            ids = await self._detail_ids(http, username, api_list)
            if not ids and not self.stop.is_set():
                raise RuntimeError(f"{username} sees no ticket to read")
            pages = itertools.cycle([
                ("html list", html_list, True), ("html ticket", "/tickets/{}", True),
                ("api list", api_list, False), ("api ticket", "/api/v1/tickets/{}", False)])
            ids = itertools.cycle(ids)
            while not self.stop.is_set():
                started = time.monotonic()
                what, path, html = next(pages)
                _, status, _ = await self.call(http, username, what, "GET",
                                               path.format(next(ids)), html=html)
                if status in (401, 303):  # the session is gone: log in again
                    await self.login(http, username)
                await self._pace(started, READ_PERIOD_S)

    # -- writers --------------------------------------------------------------------------------

    async def api_writer(self, username: str) -> None:
        async with self.session() as http:
            csrf = await self.login(http, username)
            for n in itertools.count():
                if self.stop.is_set():
                    break
                started = time.monotonic()
                ticket = random.choice(self.targets.tickets)
                headers = {"X-CSRF-Token": csrf}
                if n % 2 == 0:
                    _, status, _ = await self.call(
                        http, username, "api note", "POST", f"/api/v1/tickets/{ticket}/notes",
                        html=False, headers=headers, json={"body": f"API note {n} by the bench"})
                else:
                    _, status, _ = await self.call(
                        http, username, "api assign", "PATCH", f"/api/v1/tickets/{ticket}",
                        html=False, headers=headers,
                        json={"assigned_to": random.choice(self.targets.assignees)})
                if status == 401:
                    csrf = await self.login(http, username)
                await self._pace(started, WRITE_PERIOD_S)

    async def db_writer(self, db: Db) -> None:
        for n in itertools.count():
            if self.stop.is_set():
                break
            started = time.monotonic()
            ticket = random.choice(self.targets.tickets)
            try:
                await db.run(lambda c, n=n, t=ticket: self._db_change(c, n, t), patience_s=0)
                self.db_changes["committed"] += 1
            except DB_DOWN:
                self.db_changes["failed"] += 1
            await self._pace(started, WRITE_PERIOD_S)

    async def _db_change(self, conn: asyncpg.Connection, n: int, ticket: int) -> None:
        if n % 2 == 0:
            await conn.execute("INSERT INTO history_notes (ticket_id, author_webuser_id, body) "
                               "VALUES ($1, $2, $3)", ticket, self.targets.customer_webuser,
                               f"SQL note {n} by the bench")
        else:
            a, b = self.targets.assignees[:2]
            await conn.execute("UPDATE tickets SET assigned_to = CASE WHEN assigned_to = $2 "
                               "THEN $3 ELSE $2 END WHERE id = $1", ticket, a, b)

    async def burst(self, db: Db, notes: int) -> None:
        """`notes` notes over the bench's tickets in one transaction (each mails 2 people)."""
        tickets = self.targets.tickets
        per_ticket = max(1, notes // len(tickets))
        await db.run(lambda c: c.execute(
            """INSERT INTO history_notes (ticket_id, author_webuser_id, body)
               SELECT t, $2, 'Burst note ' || g FROM unnest($1::bigint[]) t, generate_series(1, $3) g""",
            tickets, self.targets.customer_webuser, per_ticket))
