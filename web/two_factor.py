"""Two-factor login in the portal: the second step of a login, and a user's own set-up (the
Security page and /api/v1/me/totp). The codes themselves are daemon/services/totp.py's.

The second step is throttled with the password's throttle (web/login.py `claim_attempt`,
counted under the user's login name and the address) and has one answer for a wrong code, a
used one and an expired or unknown pending login. Setting two-factor up anew or turning it off
ends the user's other sessions.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from daemon.appkeys import METRICS, POOL
from daemon.queries import audit
from daemon.queries import sessions as sessions_q
from daemon.queries import totp as totp_q
from daemon.services import totp
from web import sessions
from web.context import actor_of, client_ip, db, principal, session, settings
from web.errors import ApiError
from web.login import LoginResult, claim_attempt, open_session, pending_cookie_name

log = logging.getLogger("portald.auth")


class CodeFailed(ApiError):
    def __init__(self) -> None:
        # One answer for a wrong or used code and a pending login that expired or never was.
        super().__init__(401, "wrong or expired code; log in again if it keeps failing",
                         code="invalid_code")


def pending_token(request: web.Request) -> str | None:
    token = request.cookies.get(pending_cookie_name(request))
    return token if sessions.is_token(token) else None


async def complete_login(request: web.Request, code: str) -> LoginResult:
    """The second step: a current TOTP code or an unused recovery code turns the pending login
    of this browser into a session. Raises CodeFailed or 429."""
    cfg, pool, ip = settings(request), request.app[POOL], client_ip(request)
    token = pending_token(request)
    token_hash = sessions.hash_token(token) if token else b""
    async with pool.acquire() as conn:
        found = await totp_q.pending(conn, token_hash) if token else None
        username = found["username"] if found else ""
        try:
            await claim_attempt(conn, username, ip, cfg.http.login_attempts_per_15min)
        except ApiError:
            request.app[METRICS].logins.labels("throttled").inc()
            raise
    if found is not None:
        kind, user_id = totp_q.kind_of(found)
        async with pool.acquire() as conn, conn.transaction():
            # one request at a time per pending login, and the code checked only while it is
            # still there: of two sent together, the one after a completed login finds it gone
            # and uses up no code (a recovery code would otherwise be spent for nothing)
            locked = await totp_q.lock_pending(conn, token_hash)
            how = await totp.verify_code(conn, kind, user_id, code) if locked else None
            if how and await totp_q.take_pending(conn, token_hash):
                result = await open_session(request, conn, kind, user_id, username,
                                            second_factor=how)
                log.info("login: %s from %s (%s)", actor_of(result.principal), ip, how)
                return result
    async with pool.acquire() as conn:
        await audit.record(conn, actor="anonymous", action="login_code_failed",
                           target=username or "(no pending login)", ip=ip)
    request.app[METRICS].logins.labels("failed").inc()
    raise CodeFailed()


async def _checked_code(request: web.Request, code: str) -> str:
    """A code of the logged-in user, throttled like a password (a stolen session must not
    become a code-guessing oracle); refused with 422."""
    p, conn = principal(request), db(request)
    attempt = await claim_attempt(conn, p.username, client_ip(request),
                                  settings(request).http.login_attempts_per_15min)
    how = await totp.verify_code(conn, p.kind, p.id, code)
    if how is None:
        raise ApiError(422, "wrong or used code", field="code", code="invalid_code")
    await sessions_q.forget_attempt(conn, attempt)
    return how


async def own_status(request: web.Request) -> dict[str, Any]:
    p = principal(request)
    return {**await totp.status(db(request), p.kind, p.id),
            "required": p.is_employee and p.can("require_2fa")}


async def start_setup(request: web.Request) -> dict[str, Any]:
    """A new secret, not yet asked for at login: shown to the user to scan. Refused while
    two-factor is on (turn it off first: that needs a code)."""
    p, conn = principal(request), db(request)
    if (await totp.status(conn, p.kind, p.id))["enabled"]:
        raise ApiError(409, "two-factor login is already on; turn it off first to set it up anew",
                       code="totp_enabled")
    secret = totp.new_secret()
    async with conn.transaction():
        await totp_q.replace_credential(conn, p.kind, p.id, secret, confirmed=False)
    return setup_view(secret, p.username)


def setup_view(secret: str, username: str) -> dict[str, Any]:
    uri = totp.otpauth_uri(secret, username)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg(uri)}


async def pending_setup(request: web.Request) -> dict[str, Any] | None:
    """The set-up begun and not confirmed yet, as the page shows it."""
    p = principal(request)
    cred = await totp_q.credential(db(request), p.kind, p.id)
    if cred is None or cred["confirmed_at"] is not None:
        return None
    return setup_view(cred["secret"], p.username)


async def confirm_setup(request: web.Request, code: str) -> list[str]:
    """The first code confirms the set-up: two-factor is on, the user's other sessions end,
    and the recovery codes are answered, this once."""
    p, s, conn = principal(request), session(request), db(request)
    cred = await totp_q.credential(conn, p.kind, p.id)
    step = totp.matched_step(cred["secret"], code) if cred and not cred["confirmed_at"] else None
    async with conn.transaction():
        if step is None or not await totp_q.confirm_credential(conn, cred["id"], step):
            raise ApiError(422, "wrong code: check the device's clock and type the code it "
                           "shows now", field="code", code="invalid_code")
        codes = await totp.store_recovery_codes(conn, p.kind, p.id)
        ended = await totp.end_sessions(conn, p.kind, p.id, keep=s.token_hash)
        await audit.record(conn, actor=actor_of(p), action="totp.enable", target=actor_of(p),
                           after={"totp": True, "other_sessions_ended": ended},
                           ip=client_ip(request))
    return codes


async def regenerate_codes(request: web.Request, code: str) -> list[str]:
    p, conn = principal(request), db(request)
    await _checked_code(request, code)
    async with conn.transaction():
        codes = await totp.store_recovery_codes(conn, p.kind, p.id)
        await audit.record(conn, actor=actor_of(p), action="totp.recovery_codes",
                           target=actor_of(p), ip=client_ip(request))
    return codes


async def disable_own(request: web.Request, code: str) -> None:
    p, s, conn = principal(request), session(request), db(request)
    if p.is_employee and p.can("require_2fa"):
        raise ApiError(403, "your employee group requires two-factor login",
                       code="totp_required_by_group")
    await _checked_code(request, code)
    async with conn.transaction():
        await totp.disable(conn, p.kind, p.id)
        ended = await totp.end_sessions(conn, p.kind, p.id, keep=s.token_hash)
        await audit.record(conn, actor=actor_of(p), action="totp.disable", target=actor_of(p),
                           after={"totp": False, "other_sessions_ended": ended},
                           ip=client_ip(request))
