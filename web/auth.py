"""Who is asking, and may they: the access middleware every route passes through, the CSRF
middleware, and login/logout with throttling.

Each route of web/routes.py declares an `Access`; `access_middleware` enforces it before the
handler runs, so a handler cannot forget it. In one database round trip the middleware resolves
the session cookie and reads `privilege_state.version`; the principal then comes from the
privilege cache at that version (see daemon/privileges.py). Handlers get it with
`principal(request)`.

CSRF: a synchronizer token per session, sent back in the `X-CSRF-Token` header (API) or the
`csrf_token` form field (HTML; in a multipart form it must be the first field), required on
every state-changing method of every route that needs a login. The two login routes have no session yet, so they are guarded otherwise:
- `POST /api/v1/login` accepts only `application/json`, which a cross-site page cannot send
  without a CORS preflight that we never grant;
- `POST /login` (HTML form) uses a double-submit token: a random value in a SameSite=Strict,
  HttpOnly cookie scoped to /login must equal the form's hidden field; another site can neither
  read nor set that cookie, so it cannot forge a login into an account of its choosing;
- both, like every state-changing request, are refused when the browser's `Origin` header names
  another site.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import asyncpg
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.access.principals import load_principal
from daemon.access.scope import CUSTOMER_IDENTIFIERS, EMPLOYEE_RIGHTS, Principal
from daemon.appkeys import METRICS, POOL, PRIVILEGES, SETTINGS
from daemon.config import Config
from daemon.passwords import MAX_LENGTH, hash_password, needs_rehash, verify_password
from daemon.queries import audit
from daemon.queries import sessions as q
from web import sessions
from web.errors import ApiError, is_api
from web.sessions import Session

log = logging.getLogger("portald.auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Errors that mean "the database is down or restarting", as opposed to a bug.
DATABASE_DOWN = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                 asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
LOGIN_COOKIE = "portald_login"
MAX_USERNAME_CHARS = 200
MAX_CSRF_BYTES = 256


# -- what a route requires ------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What a non-public route requires.

    kind:      "customer", "employee" or "any" logged-in user; the wrong kind gets 403.
    privilege: customers only — (SPEC §2 identifier, minimum level), e.g. ("assets", "on").
               Employees are not held to it (their reach is their rights and scope).
    employee_right: employees only — (right of their group, minimum level), e.g.
               ("log_charges", "on"). Customers are not held to it.
    admin:     employees whose group has the `admin` right (customers: 403).
    hide:      a refused user gets 404 instead of 403, so the route does not even admit to
               existing (the admin pages: to everyone else they are simply not there).
    """

    kind: Literal["customer", "employee", "any"] = "any"
    privilege: tuple[str, str] | None = None
    employee_right: tuple[str, str] | None = None
    admin: bool = False
    hide: bool = False

    def __post_init__(self) -> None:
        # A typo in the route table fails at import, not silently at request time.
        if self.kind not in ("customer", "employee", "any"):
            raise ValueError(f"Access.kind: {self.kind!r}")
        for pair, table, what in ((self.privilege, CUSTOMER_IDENTIFIERS, "privilege"),
                                  (self.employee_right, EMPLOYEE_RIGHTS, "employee_right")):
            if pair is not None and (pair[0] not in table or pair[1] not in table[pair[0]]):
                raise ValueError(f"Access.{what}: unknown identifier or level {pair!r}")
        if self.privilege and self.kind == "employee":
            raise ValueError("Access.privilege applies to customers; use employee_right")
        if self.employee_right and self.kind == "customer":
            raise ValueError("Access.employee_right applies to employees; use privilege")

    def refusal(self, p: Principal) -> str | None:
        """Why `p` may not use the route, or None."""
        if self.kind != "any" and p.kind != self.kind:
            return f"this is for {self.kind} users only"
        if p.is_customer:
            if self.admin:
                return "this is for administrators only"
            if self.privilege and not p.can(*self.privilege):
                return f"your privilege group does not allow this ({self.privilege[0]})"
        else:
            if self.admin and not p.can("admin"):
                return "this is for administrators only"
            if self.employee_right and not p.can(*self.employee_right):
                return f"your employee group does not allow this ({self.employee_right[0]})"
        return None


@dataclass(frozen=True)
class RouteSpec:
    """What the middleware needs to know of a route (filled from web/routes.py's table)."""

    public: bool
    access: Access


ROUTE_SPECS = web.AppKey("route_specs", dict)
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


# -- the access middleware ------------------------------------------------------------------


async def resolve_principal(request: web.Request) -> tuple[Session, Principal] | None:
    """The live session and principal of this request's cookie, or None."""
    cfg = settings(request)
    token = sessions.request_token(request, cfg)
    if token is None:
        return None
    pool = request.app[POOL]
    resolved = await sessions.resolve(pool, token, cfg)
    s = resolved.session
    if s is None:
        return None
    p = await request.app[PRIVILEGES].principal(s.kind, s.user_id, resolved.version)
    if p is None or not p.active:
        # Deactivation already deleted the row in the database; this covers any other way a
        # principal stops existing or being allowed in between.
        await sessions.end(pool, s)
        return None
    if resolved.stale:
        await sessions.touch(pool, s)
    return s, p


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    target = request.path_qs if request.method in ("GET", "HEAD") else "/"
    return web.HTTPSeeOther("/login?next=" + quote(safe_next(target), safe="/"))


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    spec: RouteSpec | None = request.app[ROUTE_SPECS].get(route)
    if spec is None:
        if request.match_info.http_exception is not None or isinstance(route.resource,
                                                                       web.StaticResource):
            return await handler(request)  # 404/405 and static files: nothing to protect
        # A route added outside web/routes.py has no declared access: fail closed.
        log.error("route %s %s is not in the route table; refusing it", request.method,
                  request.path)
        raise ApiError(404, "not found")
    if spec.public:
        return await handler(request)
    try:
        found = await resolve_principal(request)
    except DATABASE_DOWN as exc:
        # not the user's fault and not a bug: say so, and let them retry
        log.warning("cannot check the session, database unavailable: %r", exc)
        raise ApiError(503, "the portal cannot reach its database; try again in a moment",
                       headers={"Retry-After": "5"}) from None
    if found is None:
        if is_api(request):
            raise ApiError(401, "log in first")
        raise login_redirect(request)
    s, p = found
    refusal = spec.access.refusal(p)
    if refusal is not None:
        if spec.access.hide:
            # exactly what an unknown path answers, so the two cannot be told apart
            raise web.HTTPNotFound()
        raise ApiError(403, refusal)
    request[SESSION] = s
    request[PRINCIPAL] = p
    return await handler(request)


# -- CSRF -----------------------------------------------------------------------------------


def origin_allowed(request: web.Request) -> bool:
    """Browsers name the page that sent a request in `Origin`; another site's is refused.
    Requests without it (non-browser clients) rely on the token checks alone."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = urlsplit(settings(request).http.public_url)
    allowed = {f"{public.scheme}://{public.netloc}", f"{request.scheme}://{request.host}"}
    return origin.rstrip("/") in allowed


async def _leading_multipart_token(request: web.Request) -> str | None:
    """The CSRF field of a multipart form, which must be its *first* part (browsers send fields
    in document order: put the hidden field first). Only that part is read, so an upload keeps
    streaming: the handler's own `request.multipart()` (or `post()`) resumes after it."""
    part = await (await request.multipart()).next()
    if not isinstance(part, BodyPartReader) or part.name != CSRF_FIELD or part.filename is not None:
        return None
    value = bytearray()
    while chunk := await part.read_chunk(MAX_CSRF_BYTES):
        value += chunk
        if len(value) > MAX_CSRF_BYTES:
            return None
    return value.decode("utf-8", errors="replace")


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in STATE_CHANGING:
        return await handler(request)
    if not origin_allowed(request):
        raise ApiError(403, "cross-site request refused", code="csrf_failed")
    s = request.get(SESSION)
    if s is None:  # public route (login has its own guard) or unmatched path
        return await handler(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type == "multipart/form-data":
        try:
            sent = await _leading_multipart_token(request)
        except (HttpProcessingError, ValueError, AssertionError):
            # a bad boundary or part header: the client's mistake, not a 500
            raise ApiError(400, "the multipart body is malformed") from None
    elif sent is None and request.content_type == "application/x-www-form-urlencoded":
        # aiohttp caches the parsed form: handlers read it again with `await request.post()`
        value = (await request.post()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), s.csrf_token.encode()):
        raise ApiError(403, "missing or wrong CSRF token; reload the page and try again",
                       code="csrf_failed")
    return await handler(request)


# -- login, logout, password ----------------------------------------------------------------

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


def actor_of(p: Principal) -> str:
    return f"{'webuser' if p.is_customer else 'employee'}:{p.username}"


def _printable(text: str, limit: int = 100) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


class LoginFailed(ApiError):
    def __init__(self) -> None:
        # One answer for an unknown user, a wrong password and a deactivated user.
        super().__init__(401, "wrong username or password", code="invalid_credentials")


@dataclass(frozen=True)
class LoginResult:
    token: str
    session: Session
    principal: Principal


async def check_throttle(conn: Any, username: str, ip: str, limit: int) -> None:
    row = await q.failures(conn, username, ip)
    waits = [int(row["user_retry_s"] or 1) if row["by_user"] >= limit else 0,
             int(row["ip_retry_s"] or 1) if row["by_ip"] >= limit else 0]
    if max(waits) > 0:
        retry = max(1, max(waits))
        raise ApiError(429, f"too many failed logins; try again in {retry} s",
                       headers={"Retry-After": str(retry)})


async def login(request: web.Request, username: str, password: str) -> LoginResult:
    """Check the credentials and start a new session; raises `LoginFailed` or 429."""
    cfg = settings(request)
    metrics = request.app[METRICS]
    ip = client_ip(request)
    username = username.strip()
    acceptable = 0 < len(username) <= MAX_USERNAME_CHARS and len(password) <= MAX_LENGTH
    async with request.app[POOL].acquire() as conn:
        try:
            await check_throttle(conn, username[:MAX_USERNAME_CHARS], ip,
                                 cfg.http.login_attempts_per_15min)
        except ApiError:
            metrics.logins.labels("throttled").inc()
            raise
        cand = await q.login_candidate(conn, username) if acceptable else None
        # verify_password(None, …) burns the time of a real check: an unknown user answers as
        # slowly as a wrong password does.
        ok = await asyncio.to_thread(verify_password, cand["password_hash"] if cand else None,
                                     password if acceptable else "")
        if not (ok and cand["can_login"]):
            async with conn.transaction():
                await q.record_failure(conn, username[:MAX_USERNAME_CHARS], ip)
                await audit.record(conn, actor="anonymous", action="login_failed",
                                   target=_printable(username), ip=ip)
            metrics.logins.labels("failed").inc()
            raise LoginFailed()
        new_hash = (await asyncio.to_thread(hash_password, password)
                    if needs_rehash(cand["password_hash"]) else None)
        async with conn.transaction():
            await q.purge_expired(conn)
            await q.clear_failures(conn, username)
            if new_hash:
                await q.set_password_hash(conn, cand["kind"], cand["id"], new_hash)
            token, s = await sessions.start(
                conn, cfg, kind=cand["kind"], user_id=cand["id"], ip=ip,
                user_agent=request.headers.get("User-Agent", ""),
                previous_token=sessions.request_token(request, cfg))
            p = await load_principal(conn, cand["kind"], cand["id"])
            await audit.record(conn, actor=actor_of(p), action="login", target=actor_of(p), ip=ip)
    metrics.logins.labels("ok").inc()
    log.info("login: %s from %s", actor_of(p), ip)
    return LoginResult(token, s, p)


async def logout(request: web.Request) -> None:
    s, p = session(request), principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await sessions.end(conn, s)
        await audit.record(conn, actor=actor_of(p), action="logout", target=actor_of(p),
                           ip=client_ip(request))


async def change_password(request: web.Request, current: str, new: str) -> None:
    """Raises ApiError 422 (wrong current password, weak new one) or 429; on success ends the
    user's other sessions."""
    from daemon.passwords import password_problem

    cfg = settings(request)
    s, p = session(request), principal(request)
    ip = client_ip(request)
    async with request.app[POOL].acquire() as conn:
        # A stolen session must not become a password-guessing oracle: same throttle as login.
        await check_throttle(conn, p.username, ip, cfg.http.login_attempts_per_15min)
        stored = await q.password_hash(conn, s.kind, s.user_id)
        ok = await asyncio.to_thread(verify_password, stored,
                                     current if len(current) <= MAX_LENGTH else "")
        if not ok:
            await q.record_failure(conn, p.username, ip)
            raise ApiError(422, "the current password is wrong", field="current")
        problem = password_problem(new)
        if problem:
            raise ApiError(422, problem, field="new")
        new_hash = await asyncio.to_thread(hash_password, new)
        async with conn.transaction():
            await q.set_password_hash(conn, s.kind, s.user_id, new_hash)
            ended = await q.delete_others(conn, kind=s.kind, user_id=s.user_id, keep=s.token_hash)
            await audit.record(conn, actor=actor_of(p), action="password.change",
                               target=actor_of(p), after={"other_sessions_ended": ended}, ip=ip)


def me_payload(p: Principal, csrf: str) -> dict[str, Any]:
    """`GET /api/v1/me` and the login answer: who, what kind, effective privileges."""
    data: dict[str, Any] = {
        "kind": p.kind,
        "id": p.id,
        "username": p.username,
        "display_name": p.display_name,
        "group": p.group_name,
    }
    if p.is_customer:
        data["account_id"] = p.account_id
        data["privileges"] = {i: p.privileges.get(i, levels[0])
                              for i, levels in CUSTOMER_IDENTIFIERS.items()}
    else:
        data["all_accounts"] = p.all_accounts
        data["account_ids"] = sorted(p.account_ids)
        data["privileges"] = {r: p.privileges.get(r, levels[0])
                              for r, levels in EMPLOYEE_RIGHTS.items()}
    data["csrf_token"] = csrf
    return data


async def template_context(request: web.Request) -> dict[str, Any]:
    """Handed to every template: the user (None on public pages), the CSRF token for forms,
    and `can(identifier, level)` so that a template shows a tab only when the API allows it."""
    p: Principal | None = request.get(PRINCIPAL)

    def can(identifier: str, level: str = "on") -> bool:
        return p is not None and p.can(identifier, level)

    return {"user": p, "csrf_token": csrf_token(request), "can": can}
