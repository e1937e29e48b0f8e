"""The HTML login form, and logging out from a page. The rules (throttling, sessions, the
`next` target) live in web/login.py; the form's own CSRF guard, a double-submit token in a
cookie scoped to /login, is checked here because no session exists yet."""

from __future__ import annotations

import hmac
import secrets

import aiohttp_jinja2
from aiohttp import web

from web import sessions
from web.context import settings
from web.errors import ApiError
from web.input import read_form
from web.login import LOGIN_COOKIE, login, logout, safe_next
from web.middleware.access import resolve_principal
from web.schemas import LoginForm

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
                username: str = "") -> web.Response:
    token = _login_token(request) or secrets.token_urlsafe(24)
    response = aiohttp_jinja2.render_template(
        "login.html", request,
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
    cookie = _login_token(request) or ""
    sent = form.csrf_token
    if not cookie or not sessions.is_token(sent) or not hmac.compare_digest(cookie, sent):
        return _login_form(request, next_=next_, status=403, username=username,
                           error="The login form expired. Please try again.")
    try:
        result = await login(request, username, password)
    except ApiError as err:
        return _login_form(request, next_=next_, error=err.message, status=err.status,
                           headers=err.headers, username=username)
    response = _redirect(next_)
    sessions.set_cookie(response, settings(request), result.token)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout_submit(request: web.Request) -> web.Response:
    await logout(request)
    response = _redirect("/login")
    sessions.clear_cookie(response, settings(request))
    return response
