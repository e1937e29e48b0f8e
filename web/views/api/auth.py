"""Login, logout, who am I, and password change in the JSON API.

The rules themselves (throttling, sessions, the `next` target) live in web/login.py; these
handlers only translate between HTTP and them.
"""

from __future__ import annotations

from aiohttp import web

from web import sessions
from web.context import principal, session, settings
from web.input import read_json
from web.login import change_password, login, logout, me_payload, set_pending_cookie
from web.schemas import Login, PasswordChange

MAX_JSON_BYTES = 64 * 1024  # a login or a password change is a few hundred bytes


async def api_login(request: web.Request) -> web.Response:
    body = await read_json(request, Login, max_bytes=MAX_JSON_BYTES)
    result = await login(request, body.username, body.password)
    if result.pending_token:
        # two-factor on: no session yet; POST /api/v1/login/totp with this cookie completes it
        response = web.json_response({"totp_required": True})
        set_pending_cookie(response, request, result.pending_token)
        return response
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
    body = await read_json(request, PasswordChange, max_bytes=MAX_JSON_BYTES)
    await change_password(request, body.current, body.new)
    return web.json_response({"status": "changed"})
