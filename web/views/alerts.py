"""An employee's own alert and recipient settings: `GET`/`PUT /api/v1/me/alerts` and the
`/me/alerts` page.

The JSON keys are the columns of `employee_mail_settings` (daemon.queries.employees
.MAIL_SETTING_COLUMNS), each a boolean. A PUT sets the keys it carries and leaves the others;
an unknown key or a value that is not a boolean is refused with 422 naming it. The answer is
always the complete set. A change reaches the mail fan-out through the database (its triggers
bump the privilege version), so it applies at once, on every instance.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from daemon.appkeys import POOL
from daemon.queries import audit
from daemon.queries import employees as q
from web.auth import actor_of, client_ip, principal
from web.errors import ApiError
from web.pages import render
from web.validation import Fields, form_fields, json_fields

# label and explanation of each setting, in the page's order
ALERTS: dict[str, tuple[str, str]] = {
    "alert_assigned": ("A ticket is assigned to me", "Also when it is reassigned to me."),
    "alert_created": ("A new ticket is created", "For the accounts I may access."),
    "alert_reminder": ("Reminders", "About tickets assigned to me that nobody touched for a while."),
    "alert_digest": ("Daily digest", "One mail a day listing my open tickets."),
}
RECIPIENT_SETTINGS: dict[str, tuple[str, str]] = {
    "recv_note": ("A history note is added", ""),
    "recv_status": ("The status changes", ""),
    "recv_closed": ("The ticket is closed", ""),
    "recv_email": ("A public email is filed", ""),
    "recv_charge": ("A charge is logged", ""),
    "recv_own_changes": ("Changes I made myself", "Otherwise my own changes send me nothing."),
}
assert set(ALERTS) | set(RECIPIENT_SETTINGS) == set(q.MAIL_SETTING_COLUMNS)


async def _current(conn: asyncpg.Connection, employee_id: int) -> dict[str, bool]:
    row = await q.mail_settings(conn, employee_id)
    if row is None:
        # a trigger creates the row with the employee; only a hand-made deletion removes it
        raise ApiError(409, "your mail settings are missing; ask an administrator")
    return {c: bool(row[c]) for c in q.MAIL_SETTING_COLUMNS}


def _read_changes(fields: Fields) -> dict[str, bool]:
    changes = {c: fields.boolean(c) for c in q.MAIL_SETTING_COLUMNS if fields.has(c)}
    fields.finish()  # any other key is a mistake worth hearing about
    return changes


async def save_settings(request: web.Request, changes: dict[str, bool]) -> dict[str, bool]:
    """Apply `changes` to the logged-in employee's settings (audited); return all of them."""
    p = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await _current(conn, p.id)
        if changes:
            await q.update_mail_settings(conn, p.id, changes)
            after = {**before, **changes}
            if after != before:
                await audit.record(conn, actor=actor_of(p), action="mail_settings.change",
                                   target=actor_of(p),
                                   before={k: before[k] for k in changes},
                                   after=changes, ip=client_ip(request))
            return after
        return before


# -- JSON API -------------------------------------------------------------------------------


async def api_get_alerts(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        return web.json_response(await _current(conn, principal(request).id))


async def api_put_alerts(request: web.Request) -> web.Response:
    changes = _read_changes(await json_fields(request))
    return web.json_response(await save_settings(request, changes))


# -- the page -------------------------------------------------------------------------------


def _page(request: web.Request, settings: dict[str, bool], *, saved: bool = False,
          error: ApiError | None = None, status: int = 200) -> web.Response:
    return render(request, "alerts.html", {
        "settings": settings, "alerts": ALERTS, "recipient_settings": RECIPIENT_SETTINGS,
        "saved": saved, "error": error}, status=status)


async def alerts_page(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        settings = await _current(conn, principal(request).id)
    return _page(request, settings, saved=request.query.get("done") == "saved")


async def alerts_submit(request: web.Request) -> web.Response:
    fields = await form_fields(request)
    # An unchecked box is simply absent from a form post: every setting the page shows is
    # set, to false when its box was not sent.
    sent = {c: fields.has(c) for c in q.MAIL_SETTING_COLUMNS}
    try:
        form = {c: fields.boolean(c, default=False) for c in q.MAIL_SETTING_COLUMNS}
        fields.finish()
    except ApiError as err:
        return _page(request, sent, error=err, status=err.status)
    await save_settings(request, form)
    return web.Response(status=303, headers={"Location": "/me/alerts?done=saved"})
