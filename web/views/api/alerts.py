"""An employee's own alert and recipient settings: `GET`/`PUT /api/v1/me/alerts`, and the
reading and saving the `/me/alerts` page (web/views/pages/alerts.py) shares.

The JSON keys are the columns of `employee_mail_settings` (daemon.queries.employees
.MAIL_SETTING_COLUMNS), each a boolean. A PUT sets the keys it carries and leaves the others;
an unknown key or a value that is not a boolean is refused with 422 naming it. The answer is
always the complete set. A change reaches the mail fan-out through the database (its triggers
bump the privilege version), so it applies at once, on every instance.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from daemon.queries import audit
from daemon.queries import employees as q
from web.context import actor_of, client_ip, db, principal
from web.errors import ApiError
from web.input import read_json
from web.schemas import MailSettingsChange


async def current_settings(conn: asyncpg.Connection, employee_id: int) -> dict[str, bool]:
    row = await q.mail_settings(conn, employee_id)
    if row is None:
        # a trigger creates the row with the employee; only a hand-made deletion removes it
        raise ApiError(409, "your mail settings are missing; ask an administrator")
    return {c: bool(row[c]) for c in q.MAIL_SETTING_COLUMNS}


async def save_settings(request: web.Request, changes: dict[str, bool]) -> dict[str, bool]:
    """Apply `changes` to the logged-in employee's settings (audited); return all of them."""
    p = principal(request)
    conn = db(request)
    async with conn.transaction():
        before = await current_settings(conn, p.id)
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


async def api_get_alerts(request: web.Request) -> web.Response:
    conn = db(request)
    return web.json_response(await current_settings(conn, principal(request).id))


async def api_put_alerts(request: web.Request) -> web.Response:
    changes = (await read_json(request, MailSettingsChange)).sent()
    return web.json_response(await save_settings(request, changes))
