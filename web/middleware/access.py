"""Who is asking, and may they: the access middleware every route passes through.

Each route of web/routes.py declares an `Access`; `access_middleware` enforces it before the
handler runs, so a handler cannot forget it. A request takes one pooled connection, and only
one, and opens the request's one transaction on it. Its first statement resolves the session
cookie, reads `privilege_state.version` and switches the transaction to portald_web on behalf
of the session's user (daemon/access/acting.py, web/sessions.py `resolve_acting`); the
principal then comes from the privilege cache at that version (daemon/access/cache.py). When
the cache cannot answer at once (a newer version to load, or no listener to vouch for it), the
principal is read on the same connection before the transaction instead. Handlers get it with
`web.context.principal(request)`, and the connection with `web.context.db(request)`: the
database's row-level security is the second wall behind the query layer's scope. The
transaction commits when the handler answers, redirects or refuses (a refused action has
undone its own changes in a savepoint) and rolls back on anything unexpected. Routes that
hash a password (`holds_db=False` in web/routes.py) get no connection: it goes back to the
pool once the session is resolved.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import asyncpg
from aiohttp import web

from daemon.access.acting import WEB_ROLE, CommitRefused, acting_as, settled
from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES, Principal
from daemon.appkeys import POOL, PRIVILEGES
from daemon.db.pool import OUTAGE_ERRORS
from web import sessions
from web.context import DB, PRINCIPAL, SESSION, settings
from web.errors import ApiError, is_api
from web.login import safe_next
from web.sessions import Session

log = logging.getLogger("portald.auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]



@dataclass(frozen=True)
class Access:
    """What a non-public route requires.

    kind:      "customer", "employee" or "any" logged-in user; the wrong kind gets 403.
    privilege: customers only — (customer privilege, minimum level), e.g. ("assets", "on").
               Employees are not held to it (their reach is their own privileges and scope).
    employee_right: employees only — (employee privilege, minimum level), e.g.
               ("log_charges", "on"). Customers are not held to it. (The name is that of the
               key the OpenAPI document publishes it under, x-portald-access.)
    admin:     employees whose group has the `admin` privilege (customers: 403).
    hide:      a refused user gets 404 instead of 403, so the route does not even admit to
               existing (the admin pages: to everyone else they are simply not there).
    enrolment: open to a user whose group requires two-factor login before they have set it
               up (the set-up itself, logout); every other route refuses them until then.
    """

    kind: Literal["customer", "employee", "any"] = "any"
    privilege: tuple[str, str] | None = None
    employee_right: tuple[str, str] | None = None
    admin: bool = False
    hide: bool = False
    enrolment: bool = False

    def __post_init__(self) -> None:
        # A typo in the route table fails at import, not silently at request time.
        if self.kind not in ("customer", "employee", "any"):
            raise ValueError(f"Access.kind: {self.kind!r}")
        for pair, table, what in ((self.privilege, CUSTOMER_PRIVILEGES, "privilege"),
                                  (self.employee_right, EMPLOYEE_PRIVILEGES, "employee_right")):
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
    holds_db: bool = True  # False: the handler gets no connection (web/routes.py Route)


# where a user who must set up two-factor login is sent (web/views/pages/security.py)
ENROLMENT_PAGE = "/security"

ROUTE_SPECS = web.AppKey("route_specs", dict)
# route name → its Access: what pages ask before offering a link (web.pages `may`)
ACCESS_BY_NAME = web.AppKey("access_by_name", dict)


async def resolve_principal(request: web.Request,
                            conn: asyncpg.Connection | None = None) -> tuple[Session, Principal] | None:
    """The live session and principal of this request's cookie, or None. Reads on `conn` (the
    request's one connection, before its transaction begins), or on a pooled one."""
    if conn is None:
        async with request.app[POOL].acquire() as pooled:
            return await resolve_principal(request, pooled)
    cfg = settings(request)
    token = sessions.request_token(request, cfg)
    if token is None:
        return None
    resolved = await sessions.resolve(conn, token, cfg)
    s = resolved.session
    if s is None:
        return None
    p = await request.app[PRIVILEGES].principal(s.kind, s.user_id, resolved.version, conn=conn)
    if p is None or not p.may_log_in:
        # Deactivation (or web access taken away) already deleted the row in the database;
        # this covers any other way a principal stops existing or being allowed in between.
        await sessions.end(conn, s)
        return None
    if resolved.stale:
        await sessions.touch(conn, s)
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
        # One connection for the whole request: the session, the principal and the page's
        # data. Each acquisition costs a round trip or two of the pool's.
        async with request.app[POOL].acquire() as conn:
            if spec.holds_db:
                return await _serve(request, handler, spec, conn)
            await _authorised(request, spec, conn)
    except OUTAGE_ERRORS as exc:
        if DB in request:
            raise  # the handler's own work failed: the error middleware decides
        # not the user's fault and not a bug: say so, and let them retry
        log.warning("cannot check the session, database unavailable: %r", exc)
        raise ApiError(503, "the portal cannot reach its database; try again in a moment",
                       headers={"Retry-After": "5"}) from None
    return await handler(request)


async def _serve(request: web.Request, handler: Handler, spec: RouteSpec,
                 conn: asyncpg.Connection) -> web.StreamResponse:
    """The request in one transaction whose first statement resolves the session and names
    its user as the principal. Only when the privilege cache cannot answer at once (a newer
    version to load, or no listener to vouch for it) is the principal read first, outside."""
    token = sessions.request_token(request, settings(request))
    try:
        async with settled(conn, commit_despite=(ApiError, web.HTTPException)):
            found = await _acting_principal(request, conn, token) if token else None
            if found is not False:
                _admit(request, spec, found)
                request[DB] = conn
                return await handler(request)
    except CommitRefused as exc:
        # what the handler answered did not happen after all: say why instead
        raise ApiError(422, str(exc)) from None
    _, p = await _authorised(request, spec, conn)
    return await _in_transaction(request, handler, p, conn)


async def _acting_principal(request: web.Request, conn: asyncpg.Connection,
                            token: str) -> tuple[Session, Principal] | None | bool:
    """The session and principal (None: nobody), the transaction acting for them; False when
    the privilege cache cannot say who it is without reading."""
    resolved = await sessions.resolve_acting(conn, token, settings(request), WEB_ROLE)
    s = resolved.session
    if s is None:
        return None
    p = request.app[PRIVILEGES].cached(s.kind, s.user_id, resolved.version)
    if p is False:
        return False
    if p is None or not p.may_log_in:
        # as in resolve_principal; the refusal that follows commits the deletion
        await sessions.end(conn, s)
        return None
    return s, p


async def _authorised(request: web.Request, spec: RouteSpec,
                      conn: asyncpg.Connection) -> tuple[Session, Principal]:
    """Who is asking, on `conn`; 401/redirect when nobody, 403 (or 404) when not allowed."""
    return _admit(request, spec, await resolve_principal(request, conn))


def _admit(request: web.Request, spec: RouteSpec,
           found: tuple[Session, Principal] | None) -> tuple[Session, Principal]:
    if found is None:
        if is_api(request):
            raise ApiError(401, "log in first")
        raise login_redirect(request)
    s, p = found
    if p.must_enrol and not spec.access.enrolment:
        # the group's policy, hot-reloaded like every privilege: set up two-factor first
        if is_api(request):
            raise ApiError(403, "your employee group requires two-factor login: set it up "
                           "first (POST /api/v1/me/totp/setup)", code="totp_enrolment_required")
        raise web.HTTPSeeOther(ENROLMENT_PAGE)
    refusal = spec.access.refusal(p)
    if refusal is not None:
        if spec.access.hide:
            # exactly what an unknown path answers, so the two cannot be told apart
            raise web.HTTPNotFound()
        raise ApiError(403, refusal)
    request[SESSION] = s
    request[PRINCIPAL] = p
    return s, p


async def _in_transaction(request: web.Request, handler: Handler, p: Principal,
                          conn: asyncpg.Connection) -> web.StreamResponse:
    try:
        async with acting_as(conn, p, commit_despite=(ApiError, web.HTTPException)):
            request[DB] = conn
            return await handler(request)
    except CommitRefused as exc:
        # what the handler answered did not happen after all: say why instead
        raise ApiError(422, str(exc)) from None
