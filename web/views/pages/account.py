"""The HTML pages of an account's own data: assets, contracts, documents, knowledge base and
quotes (no JavaScript needed; printable). Reads and the quote acceptance are the same calls the
JSON API makes (web/views/api/account.py); the route table holds the privilege of each page,
and `account_data.shows` decides which gated sections a page renders at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.access.scope import Principal
from daemon.queries import account_data as q
from web.context import db, principal
from web.errors import not_found
from web.input import parse_id, path_id
from web.pages import render
from web.pagination import DEFAULT_LIMIT, page_request
from web.views.api.account import accept, total

# what /quotes says after the acceptance it redirected from (?accepted=<id>)
ACCEPTED_PARAM = "accepted"


def pager(request: web.Request, path: str, next_offset: int | None) -> dict[str, str | None]:
    """Links to the next and first page of the list at `path`; the limit is carried only when
    it is not the default."""
    pr = page_request(request)
    extra = f"&limit={pr.limit}" if pr.limit != DEFAULT_LIMIT else ""
    return {
        "next_url": f"{path}?offset={next_offset}{extra}" if next_offset is not None else None,
        "first_url": f"{path}?{extra.lstrip('&')}" if pr.offset > 0 else None,
    }


async def _account_names(conn: Any, p: Principal) -> dict[int, str]:
    # a customer sees one account, their own: the pages need no account column then
    if p.is_customer:
        return {}
    return {r["id"]: r["name"] for r in await q.account_names(conn, p)}


# -- pages ----------------------------------------------------------------------------------


async def _list_page(request: web.Request, page_of: Callable[..., Awaitable[q.Page]],
                     template: str, key: str, path: str, **extra: Any) -> web.Response:
    """One page of a list of the account data, with the account of each row for employees."""
    p, pr = principal(request), page_request(request)
    conn = db(request)
    page = await page_of(conn, p, limit=pr.limit, offset=pr.offset)
    accounts = await _account_names(conn, p)
    return render(request, template, {key: page.items, "accounts": accounts, **extra,
                                      **pager(request, path, page.next_offset)})


async def assets_page(request: web.Request) -> web.Response:
    return await _list_page(request, q.assets_page, "assets.html", "assets", "/assets",
                            show_note=q.shows(principal(request), "asset_config_note"))


async def contracts_page(request: web.Request) -> web.Response:
    return await _list_page(request, q.contracts_page, "contracts.html", "contracts", "/contracts")


async def contract_page(request: web.Request) -> web.Response:
    p, contract_id = principal(request), path_id(request)
    conn = db(request)
    contract = await q.get_contract(conn, p, contract_id)
    if contract is None:
        raise not_found()
    show_charges = q.shows(p, "charges")
    charges = await q.list_contract_charges(conn, p, contract_id) if show_charges else []
    accounts = await _account_names(conn, p)
    return render(request, "contract.html", {
        "contract": contract, "show_charges": show_charges, "charges": charges,
        "charges_total": total(charges), "accounts": accounts})


async def documents_page(request: web.Request) -> web.Response:
    return await _list_page(request, q.documents_page, "documents.html", "documents", "/documents")


async def kb_page(request: web.Request) -> web.Response:
    p, pr = principal(request), page_request(request)
    page = await q.kb_page(db(request), p, limit=pr.limit, offset=pr.offset)
    return render(request, "kb.html", {
        "articles": page.items, "show_files": q.shows(p, "kb", "download"),
        **pager(request, "/kb", page.next_offset)})


async def kb_article_page(request: web.Request) -> web.Response:
    p, article_id = principal(request), path_id(request)
    conn = db(request)
    article = await q.get_kb_article(conn, p, article_id)
    if article is None:
        raise not_found()
    show_files = q.shows(p, "kb", "download")
    files = await q.list_kb_files(conn, p, article_id) if show_files else []
    return render(request, "kb_article.html", {
        "article": article, "show_files": show_files, "files": files})


async def _quotes(request: web.Request, *, error: str | None = None,
                  status: int = 200) -> web.Response:
    p, pr = principal(request), page_request(request)
    accepted = None
    conn = db(request)
    page = await q.quotes_page(conn, p, limit=pr.limit, offset=pr.offset)
    accounts = await _account_names(conn, p)
    quote_id = parse_id(request.query.get(ACCEPTED_PARAM))
    if error is None and quote_id is not None:
        # the notice names the quote as the database has it, never text from the URL
        found = await q.get_quote(conn, p, quote_id)
        accepted = found if found is not None and found["status"] == "accepted" else None
    return render(request, "quotes.html", {
        "quotes": page.items, "accounts": accounts, "accepted": accepted, "error": error,
        "may_accept": p.is_customer and p.can("quotes", "accept"),
        **pager(request, "/quotes", page.next_offset)}, status=status)


async def quotes_page(request: web.Request) -> web.Response:
    return await _quotes(request)


async def accept_quote_submit(request: web.Request) -> web.Response:
    quote_id = path_id(request)
    try:
        await accept(request, principal(request), quote_id)
    except q.QuoteNotAcceptable as exc:
        # a conflict is news for the reader, not a broken page: say it above the list
        return await _quotes(request, error=f"{str(exc)[:1].upper()}{str(exc)[1:]}.", status=409)
    return web.Response(status=303, headers={"Location": f"/quotes?{ACCEPTED_PARAM}={quote_id}"})
