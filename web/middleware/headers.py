"""Headers every answer carries: HTML pages may not be framed by another site (clickjacking),
and the server does not say which aiohttp it runs."""

from __future__ import annotations

from aiohttp import web, web_response

SERVER = "portald"
FRAMING = "frame-ancestors 'none'"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer the application makes."""
    response.headers["Server"] = SERVER
    if response.content_type == "text/html":
        csp = response.headers.get("Content-Security-Policy")
        if csp is None:
            response.headers["Content-Security-Policy"] = FRAMING
        elif "frame-ancestors" not in csp:
            response.headers["Content-Security-Policy"] = f"{csp}; {FRAMING}"
        response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def setup_headers(app: web.Application) -> None:
    app.on_response_prepare.append(security_headers)
    # The answers aiohttp makes itself, to bytes that are not HTTP at all, never reach the
    # application's signals; they take the Server header from this module default.
    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]
