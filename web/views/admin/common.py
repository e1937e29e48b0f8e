"""What every admin page shares: the connection, the actor, form reading, rendering with the
one-time notice, and errors shown beside the field they concern.

A successful POST answers 303 to a page that shows a notice. The notice travels in a short-lived
cookie scoped to /admin rather than in the URL, so nobody can craft a link that makes the admin
pages say something they did not. A refused POST re-renders its page with 422, the user's input
and the reason beside the field.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, unquote

import asyncpg
from aiohttp import web

from web import pages
from web.context import actor_of, db, principal, settings
from web.middleware.access import Access

# Admin routes answer 404 to everyone who is not an administrator (see Access.hide).
ADMIN = Access(kind="employee", admin=True, hide=True)

NOTICE_COOKIE = "portald_admin_notice"
NOTICE_MAX_AGE_S = 60
NOTICE_MAX_CHARS = 500

# Said after every privilege-bearing change: the daemon reloads by itself (SPEC §5).
LIVE = "It is live for logged-in users at their next request; nothing needs restarting."


@contextlib.asynccontextmanager
async def connection(request: web.Request) -> AsyncIterator[asyncpg.Connection]:
    """The request's connection (web.context.db): the admin operations of daemon/services run
    in it, each in a savepoint of its own (services.common.change)."""
    yield db(request)


def actor(request: web.Request) -> str:
    """The audit actor of this request: `employee:<username>` (the CLI's is `cli:<os user>`)."""
    return actor_of(principal(request))


class FieldErrors(dict[str, str]):
    """Reasons by field key ("form.field"); `add` keeps the first reason of a field."""

    def add(self, key: str, message: str) -> None:
        self.setdefault(key, message)


def field_for(message: str, rules: tuple[tuple[str, str], ...], default: str) -> str:
    """The field an AdminError reason concerns: the first rule whose words occur in it."""
    # the quoted values are what the user typed: they must not steer the choice
    lowered = re.sub(r'"[^"]*"', '""', message).lower()
    for words, key in rules:
        if words in lowered:
            return key
    return default


def redirect(location: str, notice: str | None = None, *, request: web.Request) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    if notice:
        response.set_cookie(NOTICE_COOKIE, quote(notice[:NOTICE_MAX_CHARS], safe=""),
                            path="/admin", max_age=NOTICE_MAX_AGE_S, httponly=True,
                            samesite="Strict", secure=settings(request).secure_cookies)
    return response


def admin_page(request: web.Request, template: str, context: dict[str, Any], *,
               status: int = 200, errors: Mapping[str, str] | None = None,
               values: Mapping[str, str] | None = None) -> web.Response:
    """A page of the admin area; shows (and forgets) a notice left by the previous POST."""
    notice = request.cookies.get(NOTICE_COOKIE)
    page = {"errors": dict(errors or {}), "values": dict(values or {}),
            "notice": unquote(notice)[:NOTICE_MAX_CHARS] if notice and status < 400 else None,
            **context}
    # no-store matters here too: a page may show, once, a generated password
    response = pages.render(request, template, page, status=status)
    if notice is not None:
        response.del_cookie(NOTICE_COOKIE, path="/admin")
    return response


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# Letters and digits a person can read aloud without confusing them (no 0/O, 1/l/I).
_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PASSWORD_GROUPS, PASSWORD_GROUP_CHARS = 4, 5  # ~114 bits


def generate_password() -> str:
    """A password the admin passes on once; shown on one page, never logged nor stored in clear."""
    return "-".join("".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_CHARS))
                    for _ in range(PASSWORD_GROUPS))


def password_page(request: web.Request, *, username: str, password: str, kind: str,
                  back: str, created: bool = False) -> web.Response:
    """The one page that shows a generated password. It answers the POST itself (200, no-store)
    instead of redirecting: a redirect would have to carry the password in a URL, a cookie or
    the database."""
    return admin_page(request, "admin_password.html",
                  {"username": username, "password": password, "kind": kind, "back": back,
                   "created": created})
