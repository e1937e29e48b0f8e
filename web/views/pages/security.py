"""The Security page: a user sets up two-factor login (scan the QR code, confirm with a first
code, keep the recovery codes shown once), makes new recovery codes, or turns it off. The
rules are web/two_factor.py's, the same as /api/v1/me/totp's."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from markupsafe import Markup

from web.errors import ApiError
from web.input import read_form
from web.pages import render
from web.schemas.totp import SecurityForm
from web.two_factor import (
    confirm_setup,
    disable_own,
    own_status,
    pending_setup,
    regenerate_codes,
    start_setup,
)

DONE_PARAM = "done"
DONE = {"disabled": "Two-factor login is off. Your other sessions were logged out."}


async def _page(request: web.Request, *, status: int = 200, error: str | None = None,
                codes: list[str] | None = None) -> web.Response:
    state = await own_status(request)
    setup: dict[str, Any] | None = await pending_setup(request)
    if setup:
        # SVG made by segno from our own otpauth:// URI: markup we wrote, not user data
        setup = {**setup, "qr_svg": Markup(setup["qr_svg"])}
    notice = DONE.get(request.query.get(DONE_PARAM, ""))
    return render(request, "security.html", {"state": state, "setup": setup, "error": error,
                                             "codes": codes, "notice": notice}, status=status)


async def security_page(request: web.Request) -> web.Response:
    return await _page(request)


async def setup_submit(request: web.Request) -> web.Response:
    await read_form(request, SecurityForm)
    try:
        await start_setup(request)
    except ApiError as err:
        return await _page(request, status=err.status, error=err.message)
    # the page shows the set-up begun; a reload does not make another secret
    return web.Response(status=303, headers={"Location": "/security"})


async def confirm_submit(request: web.Request) -> web.Response:
    form = await read_form(request, SecurityForm)
    try:
        codes = await confirm_setup(request, form.code)
    except ApiError as err:
        return await _page(request, status=err.status, error=err.message)
    # answered here, not after a redirect: the codes must not travel in a URL or be stored
    return await _page(request, codes=codes)


async def recovery_submit(request: web.Request) -> web.Response:
    form = await read_form(request, SecurityForm)
    try:
        codes = await regenerate_codes(request, form.code)
    except ApiError as err:
        response = await _page(request, status=err.status, error=err.message)
        response.headers.update(err.headers)
        return response
    return await _page(request, codes=codes)


async def disable_submit(request: web.Request) -> web.Response:
    form = await read_form(request, SecurityForm)
    try:
        await disable_own(request, form.code)
    except ApiError as err:
        response = await _page(request, status=err.status, error=err.message)
        response.headers.update(err.headers)
        return response
    return web.Response(status=303, headers={"Location": f"/security?{DONE_PARAM}=disabled"})
