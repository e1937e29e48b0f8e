"""The `/me/alerts` page: an employee's own alert and recipient settings as checkboxes, saved
the way `PUT /api/v1/me/alerts` saves them (web/views/api/alerts.py)."""

from __future__ import annotations

from aiohttp import web

from daemon.queries import employees as q
from web.context import db, principal
from web.errors import ApiError
from web.input import posted, read_form_data
from web.pages import render
from web.schemas import MailSettingsChange
from web.views.api.alerts import current_settings, save_settings

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


def _page(request: web.Request, settings: dict[str, bool], *, saved: bool = False,
          error: ApiError | None = None, status: int = 200) -> web.Response:
    return render(request, "alerts.html", {
        "settings": settings, "alerts": ALERTS, "recipient_settings": RECIPIENT_SETTINGS,
        "saved": saved, "error": error}, status=status)


async def alerts_page(request: web.Request) -> web.Response:
    conn = db(request)
    settings = await current_settings(conn, principal(request).id)
    return _page(request, settings, saved=request.query.get("done") == "saved")


async def alerts_submit(request: web.Request) -> web.Response:
    data = await posted(request)
    # An unchecked box is simply absent from a form post: every setting the page shows is
    # set, to false when its box was not sent.
    sent = {c: c in data for c in q.MAIL_SETTING_COLUMNS}
    try:
        model = read_form_data(data, MailSettingsChange)
        form = {c: getattr(model, c) for c in q.MAIL_SETTING_COLUMNS}
    except ApiError as err:
        return _page(request, sent, error=err, status=err.status)
    await save_settings(request, form)
    return web.Response(status=303, headers={"Location": "/me/alerts?done=saved"})
