"""Paging of lists (SPEC §7): `?limit=` (default 50, at most 200) and `?offset=`; answers carry
`next_offset`, null on the last page. A bad value is a 422 naming its field."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from web.input import read_query
from web.schemas import DEFAULT_PAGE, PageQuery

DEFAULT_LIMIT = DEFAULT_PAGE


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int


def page_request(request: web.Request) -> PageRequest:
    """The `limit` and `offset` of the query string."""
    page = read_query(request, PageQuery)
    return PageRequest(limit=page.limit, offset=page.offset)
