"""The HTML login form, and logging out from a page. The rules (throttling, sessions, the
`next` target) live in web/login.py; the form's own CSRF guard, a double-submit token in a
cookie scoped to /login, is checked here because no session exists yet. With two-factor on, a
right password leads to the code form (/login/totp), which the same token guards."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from web import sessions
from web.context import settings
from web.errors import ApiError
from web.input import read_form
from web.login import (
    LOGIN_COOKIE,
    clear_pending_cookie,
    login,
    logout,
    safe_next,
    set_pending_cookie,
)
from web.middleware.access import resolve_principal
from web.schemas import LoginForm
from web.schemas.totp import TotpCodeForm
from web.two_factor import complete_login, pending_token

# The pre-session token of the HTML login form lives this long in its cookie.
LOGIN_TOKEN_MAX_AGE_S = 3600


def _login_token(request: web.Request) -> str | None:
    """The form's pre-session token from its cookie, if it is one we could have issued."""
    token = request.cookies.get(LOGIN_COOKIE)
    return token if sessions.is_token(token) else None


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _login_form(request: web.Request, *, next_: str, error: str | None = None,
                status: int = 200, headers: dict[str, str] | None = None,
                username: str = "", template: str = "login.html") -> web.Response:
    token = _login_token(request) or secrets.token_urlsafe(24)
    response = aiohttp_jinja2.render_template(
        template, request,
        {"next": next_, "error": error, "login_token": token, "username": username},
        status=status)
    response.headers.update(headers or {})
    # SameSite=Strict and scoped to /login: only our own login page ever sends it back.
    response.set_cookie(LOGIN_COOKIE, token, path="/login", httponly=True, samesite="Strict",
                        secure=settings(request).secure_cookies, max_age=LOGIN_TOKEN_MAX_AGE_S)
    return response


async def login_page(request: web.Request) -> web.Response:
    next_ = safe_next(request.query.get("next"))
    if await resolve_principal(request) is not None:
        return _redirect(next_)
    return _login_form(request, next_=next_)


async def login_submit(request: web.Request) -> web.Response:
    form = await read_form(request, LoginForm)
    next_ = safe_next(form.next)
    username, password = form.username, form.password
    if not _form_token_ok(request, form.csrf_token):
        return _login_form(request, next_=next_, status=403, username=username,
                           error="The login form expired. Please try again.")
    try:
        result = await login(request, username, password)
    except ApiError as err:
        return _login_form(request, next_=next_, error=err.message, status=err.status,
                           headers=err.headers, username=username)
    if result.pending_token:
        # the code comes next; the `next` target goes along in the URL, checked again there
        response = _redirect("/login/totp?next=" + quote(next_, safe="/"))
        set_pending_cookie(response, request, result.pending_token)
        return response
    return _logged_in(request, next_, result.token)


def _form_token_ok(request: web.Request, sent: str) -> bool:
    cookie = _login_token(request) or ""
    return bool(cookie) and sessions.is_token(sent) and hmac.compare_digest(cookie, sent)


def _logged_in(request: web.Request, next_: str, token: str) -> web.Response:
    response = _redirect(next_)
    sessions.set_cookie(response, settings(request), token)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    clear_pending_cookie(response, request)
    return response


async def totp_page(request: web.Request) -> web.Response:
    next_ = safe_next(request.query.get("next"))
    if pending_token(request) is None:
        return _redirect("/login?next=" + quote(next_, safe="/"))
    return _login_form(request, next_=next_, template="login_totp.html")


async def totp_submit(request: web.Request) -> web.Response:
    form = await read_form(request, TotpCodeForm)
    next_ = safe_next(form.next)
    if not _form_token_ok(request, form.csrf_token):
        return _login_form(request, next_=next_, status=403, template="login_totp.html",
                           error="The login form expired. Please try again.")
    try:
        result = await complete_login(request, form.code)
    except ApiError as err:
        return _login_form(request, next_=next_, error=err.message[:1].upper() + err.message[1:],
                           status=err.status, headers=err.headers, template="login_totp.html")
    return _logged_in(request, next_, result.token)


async def logout_submit(request: web.Request) -> web.Response:
    await logout(request)
    response = _redirect("/login")
    sessions.clear_cookie(response, settings(request))
    return response
