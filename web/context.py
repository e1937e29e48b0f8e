"""What a handler knows of its request: who is asking and in which session (set by the access
middleware, web/middleware/access.py), the live configuration, the peer's address, and the name
the audit log gives the person acting."""

from __future__ import annotations

from aiohttp import web

from daemon.access.scope import Principal
from daemon.appkeys import SETTINGS
from daemon.config import Config
from web.sessions import Session

PRINCIPAL = web.RequestKey("principal", Principal)
SESSION = web.RequestKey("session", Session)


def principal(request: web.Request) -> Principal:
    """The logged-in principal of a non-public route (set by the access middleware)."""
    try:
        return request[PRINCIPAL]
    except KeyError:
        raise RuntimeError("principal(request) used on a public route") from None


def session(request: web.Request) -> Session:
    try:
        return request[SESSION]
    except KeyError:
        raise RuntimeError("session(request) used on a public route") from None


def csrf_token(request: web.Request) -> str | None:
    s = request.get(SESSION)
    return s.csrf_token if s else None


def settings(request: web.Request) -> Config:
    return request.app[SETTINGS].current


def client_ip(request: web.Request) -> str:
    # The peer address; a reverse proxy in front shares one address between all its clients.
    return request.remote or ""


def actor_of(p: Principal) -> str:
    return f"{'webuser' if p.is_customer else 'employee'}:{p.username}"
