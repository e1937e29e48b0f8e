"""Login, logout, who am I, and password change in the JSON API.

The rules themselves (throttling, sessions, the `next` target) live in web/login.py; these
handlers only translate between HTTP and them.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from web import sessions
from web.context import principal, session, settings
from web.errors import ApiError
from web.login import change_password, login, logout, me_payload

MAX_JSON_BYTES = 64 * 1024


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "send the request body as application/json")
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise ApiError(413, "request body too large")
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _string_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ApiError(422, f"{name} is required and must be a string", field=name)
    return value


async def api_login(request: web.Request) -> web.Response:
    body = await _json_object(request)
    result = await login(request, _string_field(body, "username"), _string_field(body, "password"))
    response = web.json_response(me_payload(result.principal, result.session.csrf_token))
    sessions.set_cookie(response, settings(request), result.token)
    return response


async def api_logout(request: web.Request) -> web.Response:
    await logout(request)
    response = web.json_response({"status": "logged_out"})
    sessions.clear_cookie(response, settings(request))
    return response


async def api_me(request: web.Request) -> web.Response:
    return web.json_response(me_payload(principal(request), session(request).csrf_token))


async def api_change_password(request: web.Request) -> web.Response:
    body = await _json_object(request)
    await change_password(request, _string_field(body, "current"), _string_field(body, "new"))
    return web.json_response({"status": "changed"})
