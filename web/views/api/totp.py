"""Two-factor login in the JSON API: the login's second step, and the user's own set-up. The
rules live in web/two_factor.py; these handlers translate between HTTP and them."""

from __future__ import annotations

from aiohttp import web

from web import sessions
from web.context import settings
from web.input import read_json
from web.login import clear_pending_cookie, me_payload
from web.schemas import TotpCode
from web.two_factor import (
    complete_login,
    confirm_setup,
    disable_own,
    own_status,
    regenerate_codes,
    start_setup,
)

MAX_JSON_BYTES = 4 * 1024  # a code is a few bytes


async def api_login_totp(request: web.Request) -> web.Response:
    body = await read_json(request, TotpCode, max_bytes=MAX_JSON_BYTES)
    result = await complete_login(request, body.code)
    response = web.json_response(me_payload(result.principal, result.session.csrf_token))
    sessions.set_cookie(response, settings(request), result.token)
    clear_pending_cookie(response, request)
    return response


async def api_totp_status(request: web.Request) -> web.Response:
    return web.json_response(await own_status(request))


async def api_totp_setup(request: web.Request) -> web.Response:
    view = await start_setup(request)
    return web.json_response({"secret": view["secret"], "otpauth_uri": view["otpauth_uri"]})


async def api_totp_confirm(request: web.Request) -> web.Response:
    body = await read_json(request, TotpCode, max_bytes=MAX_JSON_BYTES)
    codes = await confirm_setup(request, body.code)
    return web.json_response({"status": "enabled", "recovery_codes": codes})


async def api_totp_recovery_codes(request: web.Request) -> web.Response:
    body = await read_json(request, TotpCode, max_bytes=MAX_JSON_BYTES)
    return web.json_response({"recovery_codes": await regenerate_codes(request, body.code)})


async def api_totp_disable(request: web.Request) -> web.Response:
    body = await read_json(request, TotpCode, max_bytes=MAX_JSON_BYTES)
    await disable_own(request, body.code)
    return web.json_response({"status": "disabled"})
