"""Two-factor login on the admin pages: turn it on (a new secret, shown once with its QR code
and recovery codes) or off for an employee or a web user. The operation is the one of
`portald admin employee|webuser totp` (daemon/services/totp.py); it ends the user's sessions."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from markupsafe import Markup

from daemon.access.scope import Kind
from daemon.services import totp, webusers
from daemon.services.common import AdminError
from web.context import session
from web.errors import not_found
from web.input import read_form
from web.schemas.totp import AdminTotpForm
from web.views.admin import employees as employee_pages
from web.views.admin import webusers as webuser_pages
from web.views.admin.common import actor, admin_page, connection, redirect


async def _set(request: web.Request, kind: Kind, username: str, action: str) -> dict[str, Any]:
    if action not in ("enable", "disable"):
        raise AdminError('the action is "enable" or "disable"')
    async with connection(request) as conn:
        return await totp.set_totp(conn, actor=actor(request), kind=kind, username=username,
                                   enabled=action == "enable",
                                   keep_session=session(request).token_hash)


def _shown_once(request: web.Request, result: dict[str, Any], back: str) -> web.Response:
    """The new secret, its QR code and the recovery codes: answered by the POST itself, as the
    generated passwords are (nothing of it in a URL, a cookie or a log)."""
    return admin_page(request, "admin_totp.html",
                      {**result, "qr_svg": Markup(totp.qr_svg(result["otpauth_uri"])),
                       "back": back})


async def employee_totp(request: web.Request) -> web.Response:
    employee = await employee_pages.employee_of(request)
    form = await read_form(request, AdminTotpForm)
    back = employee_pages.page_of(employee)
    try:
        result = await _set(request, "employee", employee["username"], form.action)
    except AdminError as exc:
        return await employee_pages.detail_page(request, status=422, errors={"totp": str(exc)})
    if result["totp"] == "on":
        return _shown_once(request, result, back)
    return redirect(back, f'Two-factor login of "{result["username"]}" is off; '
                    f'{result["sessions_ended"]} session(s) ended.', request=request)


async def webuser_totp(request: web.Request) -> web.Response:
    account = await webuser_pages.account_of(request)
    form = await read_form(request, AdminTotpForm)
    async with connection(request) as conn:
        users = await webusers.list_webusers(conn, account=account["name"])
    if form.username.lower() not in {u["username"].lower() for u in users}:
        raise not_found()
    back = webuser_pages.base_of(account)
    try:
        result = await _set(request, "customer", form.username, form.action)
    except AdminError as exc:
        return await webuser_pages.users_page_of(request, account, status=422,
                                                 errors={f"totp.{form.username}": str(exc)})
    if result["totp"] == "on":
        return _shown_once(request, result, back)
    return redirect(back, f'Two-factor login of "{result["username"]}" is off; '
                    f'{result["sessions_ended"]} session(s) ended.', request=request)
