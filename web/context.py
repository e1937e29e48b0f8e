"""What a handler knows of its request: who is asking and in which session, and the database
connection its work runs on (all three set by the access middleware, web/middleware/access.py),
the live configuration, the peer's address, and the name the audit log gives the person acting."""

from __future__ import annotations

import functools
import ipaddress

import asyncpg
from aiohttp import web

from daemon.access.scope import Principal
from daemon.appkeys import SETTINGS
from daemon.config import Config
from web.sessions import Session

PRINCIPAL = web.RequestKey("principal", Principal)
SESSION = web.RequestKey("session", Session)
DB = web.RequestKey("db", asyncpg.Connection)


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


def db(request: web.Request) -> asyncpg.Connection:
    """The connection of a non-public route: inside the one transaction of this request, as
    the role portald_web on behalf of its principal (daemon/access/acting.py), so the
    database's row-level security holds behind the query layer's scope. A savepoint
    (`conn.transaction()`) inside it undoes one action's changes when that action fails."""
    try:
        return request[DB]
    except KeyError:
        raise RuntimeError("db(request) used on a public route") from None


def csrf_token(request: web.Request) -> str | None:
    s = request.get(SESSION)
    return s.csrf_token if s else None


def settings(request: web.Request) -> Config:
    return request.app[SETTINGS].current


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def in_networks(address: str, cidrs: tuple[str, ...]) -> bool:
    found = _address(address)
    return found is not None and any(found in n for n in _networks(cidrs))


def client_ip(request: web.Request) -> str:
    """Who is asking: the peer, or behind a trusted balancer ([http] trusted_proxies) the
    rightmost X-Forwarded-For hop that is not itself trusted. Hops left of that one are
    whatever the client chose to send, so they are never believed."""
    peer = request.remote or ""
    trusted = settings(request).http.trusted_proxies
    if not trusted or not in_networks(peer, trusted):
        return peer
    hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage: keep the nearest hop we could read
        client = str(address)
        if not any(address in n for n in _networks(trusted)):
            break
    return client


def actor_of(p: Principal) -> str:
    return f"{'webuser' if p.is_customer else 'employee'}:{p.username}"
