"""The JSON API of an account's own data (SPEC §7): assets, contracts, documents, knowledge base
and quotes, plus the two downloads, which the HTML pages link to under their own paths.

Route-level privileges are declared in web/routes.py; what a privilege hides inside an answer
(a configuration note, charges, KB files) is decided by `account_data.shows` and never fetched.
Money is a decimal string ("238.00"), dates and times ISO 8601.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp import web

from daemon.access.scope import Principal
from daemon.formatting import plain
from daemon.queries import account_data as q
from daemon.queries import audit
from web.context import actor_of, client_ip, db, principal
from web.errors import ApiError, not_found
from web.files import download_response, safe_filename
from web.input import path_id
from web.pagination import page_request


def as_json(row: asyncpg.Record | dict[str, Any], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    # a file name comes from whoever wrote the row: shown only once made safe
    return {k: safe_filename(v) if k == "filename" else plain(v)
            for k, v in dict(row).items() if k not in drop}


def total(charges: list[asyncpg.Record]) -> Decimal:
    return sum((c["amount"] for c in charges), Decimal("0.00"))


def _page_json(page: q.Page, **kwargs: Any) -> web.Response:
    return web.json_response({"items": [as_json(r, **kwargs) for r in page.items],
                              "next_offset": page.next_offset})


# -- lists and details ----------------------------------------------------------------------


def _list(page_of: Callable[..., Awaitable[q.Page]], *,
          drop: tuple[str, ...] = ()) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of one paged list: `?offset=&limit=` in, `{items, next_offset}` out."""

    async def handler(request: web.Request) -> web.Response:
        pr = page_request(request)
        page = await page_of(db(request), principal(request), limit=pr.limit, offset=pr.offset)
        return _page_json(page, drop=drop)

    return handler


api_assets = _list(q.assets_page)
api_contracts = _list(q.contracts_page)
api_documents = _list(q.documents_page)
api_kb = _list(q.kb_page)
api_quotes = _list(q.quotes_page, drop=("accepted_by_name",))


async def api_contract(request: web.Request) -> web.Response:
    p = principal(request)
    contract_id = path_id(request)
    conn = db(request)
    contract = await q.get_contract(conn, p, contract_id)
    if contract is None:
        raise not_found()
    data = as_json(contract)
    if q.shows(p, "charges"):
        charges = await q.list_contract_charges(conn, p, contract_id)
        data["charges"] = [as_json(c) for c in charges]
        data["charges_total"] = plain(total(charges))
    return web.json_response(data)


async def api_kb_article(request: web.Request) -> web.Response:
    p = principal(request)
    article_id = path_id(request)
    conn = db(request)
    article = await q.get_kb_article(conn, p, article_id)
    if article is None:
        raise not_found()
    data = as_json(article)
    if q.shows(p, "kb", "download"):
        data["files"] = [as_json(f) for f in await q.list_kb_files(conn, p, article_id)]
    return web.json_response(data)


# -- accepting a quote ----------------------------------------------------------------------


async def accept(request: web.Request, p: Principal, quote_id: int) -> asyncpg.Record:
    """Accept the quote and audit it in one transaction. 404 when missing or out of scope;
    QuoteNotAcceptable when it is accepted, declined or expired."""
    conn = db(request)
    async with conn.transaction():
        quote = await q.accept_quote(conn, p, quote_id)
        if quote is None:
            raise not_found()
        await audit.record(conn, actor=actor_of(p), action="quote.accept",
                           target=f"quote:{quote['number']}",
                           before={"status": "open"},
                           after={"status": "accepted", "accepted_at": quote["accepted_at"]},
                           ip=client_ip(request))
    return quote


async def api_accept_quote(request: web.Request) -> web.Response:
    try:
        quote = await accept(request, principal(request), path_id(request))
    except q.QuoteNotAcceptable as exc:
        raise ApiError(409, str(exc), code="quote_not_acceptable") from None
    return web.json_response(as_json(quote, drop=("accepted_by_name",)))


# -- downloads (API and page paths alike) ---------------------------------------------------


async def _audited_download(request: web.Request, row: asyncpg.Record | None, target: str,
                            conn: asyncpg.Connection) -> web.Response:
    if row is None:
        raise not_found()
    p = principal(request)
    await audit.record(conn, actor=actor_of(p), action="download", target=target,
                       after={"filename": row["filename"], "size": row["size"]},
                       ip=client_ip(request))
    return download_response(filename=row["filename"], content_type=row["content_type"],
                             data=bytes(row["data"]))


async def download_document(request: web.Request) -> web.Response:
    p = principal(request)
    document_id = path_id(request)
    conn = db(request)
    row = await q.get_document(conn, p, document_id)
    return await _audited_download(request, row, f"document:{document_id}", conn)


async def download_kb_file(request: web.Request) -> web.Response:
    p = principal(request)
    article_id, file_id = path_id(request), path_id(request, "file_id")
    conn = db(request)
    row = await q.get_kb_file(conn, p, article_id, file_id)
    return await _audited_download(request, row, f"kb_file:{file_id}", conn)
