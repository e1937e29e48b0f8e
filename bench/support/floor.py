"""The floors of bench/portal.py: a bare aiohttp + asyncpg server (a process of its own, as the
portal is) whose handlers run exactly the SQL of the page they stand beside, on a pooled
connection of the portal's pool size, and write the rows with orjson. No session, no
transaction, no role, no template: what is left when the portal's own work is taken away.

    python bench/support/floor.py DSN PORT POOL_MAX USERNAME

/ceiling            a constant
/list               the list page's statement (open tickets, 50)
/api                the JSON list's statement (all tickets, 50)
/detail/{id}        the ticket page's statement (the ticket and its sections, json_agg)
/detail-two/{id}    the ticket and its notes in two statements (the floor the issue used)
/same/list, /same/detail/{id}, /same/api
                    every statement the portal sends for that page, in the same order: BEGIN,
                    the session cookie resolved and its user named as principal (one
                    statement), the page's statement, COMMIT; what is left beside the portal is its Python (the
                    middleware, validation, templates)
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from daemon.access.acting import WEB_ROLE, settled  # noqa: E402
from daemon.access.principals import find_user  # noqa: E402
from daemon.access.scope import Principal  # noqa: E402
from daemon.queries import sessions as sq  # noqa: E402
from daemon.queries import tickets as tq  # noqa: E402
from daemon.queries.ticket_page import Wanted, ticket_page  # noqa: E402
from web.sessions import COOKIE_NAME, hash_token  # noqa: E402

POOL = web.AppKey("pool", asyncpg.Pool)
PRINCIPAL = web.AppKey("principal", Principal)


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), content_type="application/json")


def wanted(p: Principal) -> Wanted:
    """The sections the ticket page reads for a customer of the Full group."""
    return Wanted(notes=p.can("history_notes"), emails=p.can("public_emails"),
                  attachments=p.can("documents"), charges=p.can("charges"),
                  assets=p.can("ticket_asset", "edit"))


async def ceiling(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def ticket_list(request: web.Request, status: str | None) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows, _ = await tq.list_tickets(conn, request.app[PRINCIPAL],
                                        tq.TicketFilter(status=status, limit=50))
    return _json([dict(r.items()) for r in rows])


async def list_page(request: web.Request) -> web.Response:
    return await ticket_list(request, "open")


async def api_list(request: web.Request) -> web.Response:
    return await ticket_list(request, None)


async def detail(request: web.Request) -> web.Response:
    p = request.app[PRINCIPAL]
    async with request.app[POOL].acquire() as conn:
        page = await ticket_page(conn, p, int(request.match_info["id"]), wanted(p))
    return _json(page)


async def detail_two(request: web.Request) -> web.Response:
    p, ticket_id = request.app[PRINCIPAL], int(request.match_info["id"])
    async with request.app[POOL].acquire() as conn:
        ticket = await tq.get_ticket(conn, p, ticket_id)
        notes = await tq.list_notes(conn, p, ticket_id)
    return _json({"ticket": dict(ticket.items()), "notes": [dict(n.items()) for n in notes]})


async def same_sql(request: web.Request, read: Any) -> web.Response:
    """The portal's statements for one page: BEGIN, the session resolved and its user named
    as principal (one statement), the page's, COMMIT."""
    p = request.app[PRINCIPAL]
    token = request.cookies.get(COOKIE_NAME, "")
    async with request.app[POOL].acquire() as conn, settled(conn):
        found = await sq.resolve_acting(conn, hash_token(token), idle_s=3600, absolute_s=86400,
                                        touch_after_s=60, role=WEB_ROLE)
        if found["csrf_token"] is None:
            raise web.HTTPUnauthorized()
        data = await read(conn, p)
    return _json(data)


async def same_list(request: web.Request) -> web.Response:
    async def read(conn: asyncpg.Connection, p: Principal) -> Any:
        rows, _ = await tq.list_tickets(conn, p, tq.TicketFilter(status="open", limit=50))
        return [dict(r.items()) for r in rows]
    return await same_sql(request, read)


async def same_api(request: web.Request) -> web.Response:
    async def read(conn: asyncpg.Connection, p: Principal) -> Any:
        rows, _ = await tq.list_tickets(conn, p, tq.TicketFilter(limit=50))
        return [dict(r.items()) for r in rows]
    return await same_sql(request, read)


async def same_detail(request: web.Request) -> web.Response:
    async def read(conn: asyncpg.Connection, p: Principal) -> Any:
        return await ticket_page(conn, p, int(request.match_info["id"]), wanted(p))
    return await same_sql(request, read)


def floor_app(dsn: str, pool_max: int, username: str) -> web.Application:
    app = web.Application()

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await asyncpg.create_pool(dsn, min_size=2, max_size=pool_max)
        found = await find_user(app[POOL], username)
        assert found is not None, username
        app[PRINCIPAL] = found
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/ceiling", ceiling)
    app.router.add_get("/list", list_page)
    app.router.add_get("/api", api_list)
    app.router.add_get("/detail/{id:[0-9]+}", detail)
    app.router.add_get("/detail-two/{id:[0-9]+}", detail_two)
    app.router.add_get("/same/list", same_list)
    app.router.add_get("/same/api", same_api)
    app.router.add_get("/same/detail/{id:[0-9]+}", same_detail)
    return app


if __name__ == "__main__":
    dsn, port, pool_max, username = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    web.run_app(floor_app(dsn, pool_max, username), host="127.0.0.1", port=port,
                access_log=None, print=None)
