"""Login, logout, who am I, and password change: JSON API and HTML forms.

The rules themselves (throttling, sessions, CSRF, the `next` target) live in web/auth.py;
these handlers only translate between HTTP and them.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from web import sessions
from web.auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    change_password,
    login,
    logout,
    me_payload,
    principal,
    resolve_principal,
    safe_next,
    session,
    settings,
)
from web.errors import ApiError

# The pre-session token of the HTML login form lives this long in its cookie.
LOGIN_TOKEN_MAX_AGE_S = 3600
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


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# -- JSON API -------------------------------------------------------------------------------


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


# -- HTML -----------------------------------------------------------------------------------


def _login_form(request: web.Request, *, next_: str, error: str | None = None,
                status: int = 200, headers: dict[str, str] | None = None,
                username: str = "") -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
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
    form = await request.post()
    next_ = safe_next(str(form.get("next", "") or ""))
    username = str(form.get("username", "") or "")
    password = str(form.get("password", "") or "")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    sent = str(form.get(CSRF_FIELD, "") or "")
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
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
