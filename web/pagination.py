"""Paging of lists (SPEC §7): `?limit=` (default 50, at most 200) and `?offset=`; answers carry
`next_offset`, null on the last page. A bad value is a 422 naming its field."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from web.validation import query_fields

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# far beyond any real list; keeps the number a plain bigint for PostgreSQL
MAX_OFFSET = 10_000_000


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int


def page_request(request: web.Request) -> PageRequest:
    """The `limit` and `offset` of the query string."""
    fields = query_fields(request)
    limit = fields.integer("limit", required=False, minimum=1, maximum=MAX_LIMIT,
                           default=DEFAULT_LIMIT)
    offset = fields.integer("offset", required=False, minimum=0, maximum=MAX_OFFSET, default=0)
    assert limit is not None and offset is not None  # defaults given
    return PageRequest(limit=limit, offset=offset)
