"""CSRF: a synchronizer token per session, sent back in the `X-CSRF-Token` header (API) or the
`csrf_token` form field (HTML; in a multipart form it must be the first field), required on
every state-changing method of every route that needs a login. The two login routes have no
session yet, so they are guarded otherwise:
- `POST /api/v1/login` accepts only `application/json`, which a cross-site page cannot send
  without a CORS preflight that we never grant;
- `POST /login` (HTML form) uses a double-submit token: a random value in a SameSite=Strict,
  HttpOnly cookie scoped to /login must equal the form's hidden field; another site can neither
  read nor set that cookie, so it cannot forge a login into an account of its choosing
  (web/views/pages/login.py);
- both, like every state-changing request, are refused when the browser's `Origin` header names
  another site.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from web.context import SESSION, settings
from web.errors import ApiError
from web.input import posted
from web.sessions import is_token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
MAX_CSRF_BYTES = 256


def origin_allowed(request: web.Request) -> bool:
    """Browsers name the page that sent a request in `Origin`; another site's is refused.
    Requests without it (non-browser clients) rely on the token checks alone."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = urlsplit(settings(request).http.public_url)
    allowed = {f"{public.scheme}://{public.netloc}", f"{request.scheme}://{request.host}"}
    return origin.rstrip("/") in allowed


async def _leading_multipart_token(request: web.Request) -> str | None:
    """The CSRF field of a multipart form, which must be its *first* part (browsers send fields
    in document order: put the hidden field first). Only that part is read, so an upload keeps
    streaming: the handler's own `request.multipart()` (or `post()`) resumes after it."""
    part = await (await request.multipart()).next()
    if not isinstance(part, BodyPartReader) or part.name != CSRF_FIELD or part.filename is not None:
        return None
    value = bytearray()
    while chunk := await part.read_chunk(MAX_CSRF_BYTES):
        value += chunk
        if len(value) > MAX_CSRF_BYTES:
            return None
    return value.decode("ascii", errors="replace")


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in STATE_CHANGING:
        return await handler(request)
    if not origin_allowed(request):
        raise ApiError(403, "cross-site request refused", code="csrf_failed")
    s = request.get(SESSION)
    if s is None:  # public route (login has its own guard) or unmatched path
        return await handler(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type == "multipart/form-data":
        try:
            sent = await _leading_multipart_token(request)
        except (HttpProcessingError, ValueError, AssertionError):
            # a bad boundary or part header: the client's mistake, not a 500
            raise ApiError(400, "the multipart body is malformed") from None
    elif sent is None and request.content_type == "application/x-www-form-urlencoded":
        # aiohttp caches the parsed form: handlers read it again with `await request.post()`
        value = (await posted(request)).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    # a token is URL-safe ASCII: anything else (non-UTF-8 bytes arrive as lone surrogates)
    # cannot be it, and must not reach compare_digest, which takes ASCII or bytes only
    if not is_token(sent) or not hmac.compare_digest(sent, s.csrf_token):
        raise ApiError(403, "missing or wrong CSRF token; reload the page and try again",
                       code="csrf_failed")
    return await handler(request)
