"""Renders every refusal in the one error shape (web/errors.py) and turns anything unexpected
into a logged 500, never a traceback for the client."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from html import escape

from aiohttp import web

from daemon.db.pool import OUTAGE_ERRORS
from web.errors import ApiError, is_api

log = logging.getLogger("portald.web")


def error_response(request: web.Request, err: ApiError) -> web.Response:
    if is_api(request):
        body: dict = {"code": err.code, "message": err.message}
        if err.field:
            body["field"] = err.field
        return web.json_response({"error": body}, status=err.status, headers=err.headers)
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width,initial-scale=1'><title>{err.status}</title>"
            f"<link rel=stylesheet href='/static/portal.css'><main class=error><h1>{err.status}</h1>"
            f"<p>{escape(err.message)}</p><p><a href='/'>Back to the portal</a></p></main>")
    return web.Response(text=page, status=err.status, content_type="text/html", headers=err.headers)


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(request, err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return error_response(request, ApiError(exc.status, message, headers={
            k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "Location")}))
    except OUTAGE_ERRORS as exc:
        if isinstance(exc, ConnectionError) and _client_gone(request):
            # the client went away (or was closed for being too slow): the answer reaches
            # nobody, and aiohttp drops it quietly (re-raised, it would log a traceback)
            log.info("client gone while serving %s %s: %r", request.method, request.path, exc)
            return error_response(request, ApiError(400, "the connection was lost"))
        # the database went away under the request (a restart, a cut connection): not a bug,
        # and the client may simply try again
        log.warning("database unavailable serving %s %s: %r", request.method, request.path, exc)
        return error_response(request, ApiError(
            503, "the portal cannot reach its database; try again in a moment",
            headers={"Retry-After": "5"}))
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(request, ApiError(500, "internal error; it has been logged"))
