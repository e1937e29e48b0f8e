"""Logging in and out, and changing one's password: the rules behind the JSON API and the HTML
forms (web/views/api/auth.py, web/views/pages/login.py, web/views/pages/password.py).

Login attempts are throttled per user and per address, with the same answer for a wrong user
as for a wrong password; a login always starts a new session; a password change ends the
user's other sessions. The `next` target after a login only ever leads inside the portal.

For a user with two-factor login on, a right password starts no session: it leaves a pending
login (in PostgreSQL, so any instance completes it) whose token goes to the browser in a
cookie of its own, and the second step (web/two_factor.py) turns it into the session. The
password's attempt stays counted until that second step succeeds, so the code is guessed under
the same throttle as the password.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from daemon.access.acting import acting_as
from daemon.access.principals import load_principal
from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES, Kind, Principal
from daemon.appkeys import METRICS, POOL
from daemon.passwords import (
    MAX_LENGTH,
    HashingBusy,
    PasswordGate,
    needs_rehash,
    password_problem,
)
from daemon.queries import audit
from daemon.queries import sessions as q
from daemon.queries import totp as totp_q
from web import sessions
from web.context import actor_of, client_ip, db, principal, session, settings
from web.errors import ApiError
from web.sessions import Session

log = logging.getLogger("portald.auth")

LOGIN_COOKIE = "portald_login"
MAX_USERNAME_CHARS = 200

_UNSAFE_NEXT = re.compile(r"[\x00-\x20\x7f\\]")


def safe_next(target: str | None) -> str:
    """A post-login target that can only lead inside the portal: a path starting with exactly
    one "/", with no scheme, host, backslash, whitespace or control character (browsers drop
    tabs and newlines, turning "/\\t/evil" into "//evil")."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if _UNSAFE_NEXT.search(target) or len(target) > 2000:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _printable(text: str, limit: int = 100) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


class LoginFailed(ApiError):
    def __init__(self) -> None:
        # One answer for an unknown user, a wrong password and a deactivated user.
        super().__init__(401, "wrong username or password", code="invalid_credentials")


# A pending login (the password was right, the code is to come) lives this long.
PENDING_TTL_S = 300
PENDING_COOKIE = "portald_pending"
SECURE_PENDING_COOKIE = "__Host-portald_pending"


@dataclass(frozen=True)
class LoginResult:
    """A session (token, session, principal), or, two-factor on, only `pending_token`."""

    token: str | None = None
    session: Session | None = None
    principal: Principal | None = None
    pending_token: str | None = None

    @property
    def totp_required(self) -> bool:
        return self.pending_token is not None


def pending_cookie_name(request: web.Request) -> str:
    return SECURE_PENDING_COOKIE if settings(request).secure_cookies else PENDING_COOKIE


def set_pending_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    # SameSite=Strict: only our own pages send it back; it is of no use to any other site
    response.set_cookie(pending_cookie_name(request), token, path="/", httponly=True,
                        samesite="Strict", secure=settings(request).secure_cookies,
                        max_age=PENDING_TTL_S)


def clear_pending_cookie(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(pending_cookie_name(request), path="/", httponly=True, samesite="Strict",
                        secure=settings(request).secure_cookies)


HASHING = web.AppKey("hashing", PasswordGate)


def setup_hashing(app: web.Application) -> None:
    app[HASHING] = PasswordGate()


async def claim_attempt(conn: Any, username: str, ip: str, limit: int) -> int:
    """Count this attempt, or refuse it with 429 when the name or the address is at the limit
    (web/login.py's one throttle, for logins and password changes alike). Returns its id."""
    row = await q.claim_attempt(conn, username, ip, limit)
    if row["retry_s"]:
        retry = int(row["retry_s"])
        raise ApiError(429, f"too many failed logins; try again in {retry} s",
                       headers={"Retry-After": str(retry)})
    return int(row["attempt_id"])


async def check_password(request: web.Request, password_hash: str | None, password: str) -> bool:
    """The hash checked off the loop, in a bounded number of slots; holds no connection."""
    request.app[METRICS].password_checks.inc()
    try:
        return await request.app[HASHING].verify(password_hash, password)
    except HashingBusy:
        raise ApiError(503, "the portal is busy; try again in a moment",
                       headers={"Retry-After": "2"}) from None


async def login(request: web.Request, username: str, password: str) -> LoginResult:
    """Check the credentials and start a new session; raises `LoginFailed`, 429 or 503.
    No pool connection is held while the password is hashed."""
    cfg = settings(request)
    metrics = request.app[METRICS]
    pool = request.app[POOL]
    ip = client_ip(request)
    username = username.strip()
    acceptable = 0 < len(username) <= MAX_USERNAME_CHARS and len(password) <= MAX_LENGTH
    async with pool.acquire() as conn:
        try:
            await claim_attempt(conn, username[:MAX_USERNAME_CHARS], ip,
                                cfg.http.login_attempts_per_15min)
        except ApiError:
            metrics.logins.labels("throttled").inc()
            raise
        cand = await q.login_candidate(conn, username) if acceptable else None
    # check_password(None, …) burns the time of a real check: an unknown user answers as
    # slowly as a wrong password does.
    ok = await check_password(request, cand["password_hash"] if cand else None,
                              password if acceptable else "")
    if not (ok and cand["can_login"]):
        # the attempt is already counted: only the audit row is left to write
        async with pool.acquire() as conn:
            await audit.record(conn, actor="anonymous", action="login_failed",
                               target=_printable(username), ip=ip)
        metrics.logins.labels("failed").inc()
        raise LoginFailed()
    new_hash = None
    if needs_rehash(cand["password_hash"]):
        with contextlib.suppress(HashingBusy):  # an upgrade of the hash can wait for next time
            new_hash = await request.app[HASHING].hash(password)
    async with pool.acquire() as conn, conn.transaction():
        await q.purge_expired(conn)
        if new_hash:
            await q.set_password_hash(conn, cand["kind"], cand["id"], new_hash)
        if await _totp_on(conn, cand["kind"], cand["id"]):
            return await _start_pending(request, conn, cand, ip)
        result = await open_session(request, conn, cand["kind"], cand["id"], cand["username"])
    log.info("login: %s from %s", actor_of(result.principal), ip)
    return result


async def _totp_on(conn: Any, kind: Kind, user_id: int) -> bool:
    cred = await totp_q.credential(conn, kind, user_id)
    return cred is not None and cred["confirmed_at"] is not None


async def _start_pending(request: web.Request, conn: Any, cand: Any, ip: str) -> LoginResult:
    """The password was right; the second factor is to come. No session yet, and the attempt
    stays counted (the name's failures are cleared only when the code is right too)."""
    await totp_q.purge_pending(conn)
    token = sessions.new_token()
    await totp_q.create_pending(conn, sessions.hash_token(token), cand["kind"], cand["id"],
                                ttl_s=PENDING_TTL_S, ip=ip)
    who = f"{'webuser' if cand['kind'] == 'customer' else 'employee'}:{cand['username']}"
    await audit.record(conn, actor=who, action="login_password_ok", target=who, ip=ip,
                       after={"totp_required": True})
    request.app[METRICS].logins.labels("totp_required").inc()
    return LoginResult(pending_token=token)


async def open_session(request: web.Request, conn: Any, kind: Kind, user_id: int, username: str,
                       *, second_factor: str | None = None) -> LoginResult:
    """The new session of a completed login, in the caller's transaction: failures of the name
    forgotten, audited, counted."""
    cfg, ip = settings(request), client_ip(request)
    await q.clear_failures(conn, username)
    token, s = await sessions.start(
        conn, cfg, kind=kind, user_id=user_id, ip=ip,
        user_agent=request.headers.get("User-Agent", ""),
        previous_token=sessions.request_token(request, cfg))
    p = await load_principal(conn, kind, user_id)
    assert p is not None
    await audit.record(conn, actor=actor_of(p), action="login", target=actor_of(p), ip=ip,
                       after={"second_factor": second_factor} if second_factor else None)
    request.app[METRICS].logins.labels("ok").inc()
    return LoginResult(token, s, p)


async def logout(request: web.Request) -> None:
    s, p = session(request), principal(request)
    conn = db(request)
    async with conn.transaction():
        await sessions.end(conn, s)
        await audit.record(conn, actor=actor_of(p), action="logout", target=actor_of(p),
                           ip=client_ip(request))


async def change_password(request: web.Request, current: str, new: str) -> None:
    """Raises ApiError 422 (wrong current password, weak new one), 429 or 503; on success ends
    the user's other sessions. Its route holds no connection (`holds_db=False` in
    web/routes.py): each step below takes one for its own transaction, as portald_web on behalf
    of the user, and none is held while a password is hashed (~0.2 s of a core, twice)."""
    cfg = settings(request)
    s, p = session(request), principal(request)
    ip = client_ip(request)
    pool = request.app[POOL]
    # A stolen session must not become a password-guessing oracle: same throttle as login.
    # The attempt is counted (and committed) before the hash is checked, as a login's is.
    async with pool.acquire() as conn, acting_as(conn, p):
        attempt = await claim_attempt(conn, p.username, ip, cfg.http.login_attempts_per_15min)
        stored = await q.password_hash(conn, s.kind, s.user_id)
    if not await check_password(request, stored, current if len(current) <= MAX_LENGTH else ""):
        raise ApiError(422, "the current password is wrong", field="current")
    problem = password_problem(new)
    if problem:
        async with pool.acquire() as conn, acting_as(conn, p):
            await q.forget_attempt(conn, attempt)  # the right password: not a failure
        raise ApiError(422, problem, field="new")
    try:
        new_hash = await request.app[HASHING].hash(new)
    except HashingBusy:
        raise ApiError(503, "the portal is busy; try again in a moment",
                       headers={"Retry-After": "2"}) from None
    async with pool.acquire() as conn, acting_as(conn, p):
        await q.forget_attempt(conn, attempt)
        await q.set_password_hash(conn, s.kind, s.user_id, new_hash)
        ended = await q.delete_others(conn, kind=s.kind, user_id=s.user_id, keep=s.token_hash)
        await audit.record(conn, actor=actor_of(p), action="password.change",
                           target=actor_of(p), after={"other_sessions_ended": ended}, ip=ip)


def me_payload(p: Principal, csrf: str) -> dict[str, Any]:
    """`GET /api/v1/me` and the login answer: who (with their mail address), what kind,
    effective privileges."""
    data: dict[str, Any] = {
        "kind": p.kind,
        "id": p.id,
        "username": p.username,
        "email": p.email,
        "display_name": p.display_name,
        "group": p.group_name,
    }
    if p.is_customer:
        data["account_id"] = p.account_id
        data["privileges"] = {i: p.privileges.get(i, levels[0])
                              for i, levels in CUSTOMER_PRIVILEGES.items()}
    else:
        data["all_accounts"] = p.all_accounts
        data["account_ids"] = sorted(p.account_ids)
        data["privileges"] = {r: p.privileges.get(r, levels[0])
                              for r, levels in EMPLOYEE_PRIVILEGES.items()}
    data["csrf_token"] = csrf
    return data
