"""Server-side sessions in PostgreSQL, so any instance serves any request and ending a session
(logout, deactivation) takes effect at once everywhere.

The cookie carries 32 random bytes; the table keeps only their SHA-256. The cookie is HttpOnly,
SameSite=Lax (top-level links from mails still arrive logged in) and, when the public URL is
https, Secure with the `__Host-` prefix (no subdomain can plant or shadow it). It is a browser
session cookie; the server enforces the idle and absolute timeouts of [http].
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from daemon.access.scope import Kind
from daemon.config import Config
from daemon.queries import sessions as q

COOKIE_NAME = "portald_session"
SECURE_COOKIE_NAME = "__Host-portald_session"
TOKEN_BYTES = 32
# last_seen_at is written at most this often per session: reads stay reads on the hot path.
TOUCH_INTERVAL_S = 60


@dataclass(frozen=True)
class Session:
    token_hash: bytes
    kind: Kind
    user_id: int
    csrf_token: str


@dataclass(frozen=True)
class Resolved:
    """What one round trip told a request: its session (if alive) and the privilege version."""

    session: Session | None
    version: int
    stale: bool = False


def cookie_name(cfg: Config) -> str:
    return SECURE_COOKIE_NAME if cfg.secure_cookies else COOKIE_NAME


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_token(value: str | None) -> bool:
    """Whether `value` could be a token we issued (URL-safe base64). Anything else, bytes that
    are not UTF-8 included (they arrive as lone surrogates), cannot match: no query for it."""
    return value is not None and _TOKEN.fullmatch(value) is not None


def request_token(request: web.Request, cfg: Config) -> str | None:
    token = request.cookies.get(cookie_name(cfg))
    return token if is_token(token) else None


def idle_s(cfg: Config) -> int:
    return cfg.http.session_idle_minutes * 60


def absolute_s(cfg: Config) -> int:
    return cfg.http.session_absolute_hours * 3600


async def resolve(conn: asyncpg.Connection | asyncpg.Pool, token: str, cfg: Config) -> Resolved:
    row = await q.resolve(conn, hash_token(token), idle_s=idle_s(cfg), absolute_s=absolute_s(cfg),
                          touch_after_s=TOUCH_INTERVAL_S)
    return _resolved(token, row)


async def resolve_acting(conn: asyncpg.Connection, token: str, cfg: Config, role: str) -> Resolved:
    """`resolve` as the first statement of the request's transaction, which it also switches
    to `role` on behalf of the session's user (daemon/access/acting.py) when the session is
    alive; a stale last_seen_at is touched in the same round trip."""
    row = await q.resolve_acting(conn, hash_token(token), idle_s=idle_s(cfg),
                                 absolute_s=absolute_s(cfg), touch_after_s=TOUCH_INTERVAL_S,
                                 role=role)
    return _resolved(token, row)


def _resolved(token: str, row: asyncpg.Record) -> Resolved:
    if row["csrf_token"] is None:
        return Resolved(None, row["version"])
    kind: Kind = "customer" if row["webuser_id"] is not None else "employee"
    user_id = row["webuser_id"] if kind == "customer" else row["employee_id"]
    return Resolved(Session(hash_token(token), kind, user_id, row["csrf_token"]), row["version"],
                    bool(row["stale"]))


async def touch(conn: asyncpg.Connection | asyncpg.Pool, session: Session) -> None:
    await q.touch(conn, session.token_hash)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


async def start(conn: asyncpg.Connection, cfg: Config, *, kind: Kind, user_id: int, ip: str,
                user_agent: str, previous_token: str | None = None) -> tuple[str, Session]:
    """A brand-new session (never a reused id: that is what defeats session fixation).
    Returns the cookie token and the session."""
    if previous_token:
        await q.delete(conn, hash_token(previous_token))
    token = new_token()
    session = Session(hash_token(token), kind, user_id, secrets.token_urlsafe(TOKEN_BYTES))
    # a header's bytes that are not UTF-8 arrive as lone surrogates, which no text column takes
    agent = user_agent[:500].encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    await q.create(conn, token_hash=session.token_hash, kind=kind, user_id=user_id,
                   csrf_token=session.csrf_token, absolute_s=absolute_s(cfg), ip=ip,
                   user_agent=agent)
    return token, session


async def end(conn: asyncpg.Connection | asyncpg.Pool, session: Session) -> None:
    await q.delete(conn, session.token_hash)


def set_cookie(response: web.StreamResponse, cfg: Config, token: str) -> None:
    response.set_cookie(cookie_name(cfg), token, path="/", httponly=True, samesite="Lax",
                        secure=cfg.secure_cookies)


def clear_cookie(response: web.StreamResponse, cfg: Config) -> None:
    response.del_cookie(cookie_name(cfg), path="/", httponly=True, samesite="Lax",
                        secure=cfg.secure_cookies)
