"""One error shape: `{"error": {"code", "message"}}` under /api, a plain page elsewhere.

Handlers raise `ApiError` (or aiohttp's HTTP exceptions); the error middleware
(web/middleware/errors.py) renders them, and turns anything unexpected into a logged 500
without leaking a traceback to the client.
"""

from __future__ import annotations

from aiohttp import web

_CODES = {400: "bad_request", 401: "not_logged_in", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
          422: "invalid", 429: "throttled", 500: "internal", 503: "unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None,
                 field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.field = field
        self.headers = headers or {}


def not_found() -> ApiError:
    # Out of scope and missing look exactly alike.
    return ApiError(404, "not found")


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")
