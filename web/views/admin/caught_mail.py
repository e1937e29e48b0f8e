"""Demo mode only (`make run`): the mails the local catcher caught, newest first, each shown as
its recipient would see it, with a "Reply" form that answers it through the daemon's own
inbound SMTP listener, so a newcomer can follow an alert from the mail to the ticket and back
without a mail client. Outside demo mode these routes are not even registered (web/routes.py).

The HTML part is shown in `<iframe sandbox srcdoc>`: no scripts, no plugins, no forms, an
opaque origin, and a policy that loads nothing remote (this page's Content-Security-Policy,
which the srcdoc document inherits, and its own). Links in it open at the top, as a mail
client opens them in the browser.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from daemon.appkeys import CAUGHT_MAIL
from daemon.dev.caught import CaughtMail, list_caught, read_caught, send_reply
from web.context import settings
from web.errors import not_found
from web.input import read_form
from web.schemas.admin import CaughtReply
from web.views.admin.common import admin_page

LIST = "/admin/caught-mail"
MAX_REPLY_CHARS = 20000
# This page's policy: its own stylesheet, and for the mail inside the frame inline styles and
# data: pictures only (a mail's remote pictures are how senders learn it was opened).
PAGE_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "frame-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'")
FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# allow-popups*: a link may open the portal in a new tab; top navigation only on a click
FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"


def _frame_document(html: str) -> str:
    head = (f'<meta http-equiv="Content-Security-Policy" content="{FRAME_CSP}">'
            '<base target="_top">')
    return head + html


async def mail_list(request: web.Request) -> web.Response:
    mails = await asyncio.to_thread(list_caught, request.app[CAUGHT_MAIL])
    return admin_page(request, "admin_caught_mails.html",
                      {"mails": mails, "directory": request.app[CAUGHT_MAIL]})


async def _mail(request: web.Request) -> CaughtMail:
    found = await asyncio.to_thread(read_caught, request.app[CAUGHT_MAIL],
                                    request.match_info.get("name", ""))
    if found is None:
        raise not_found()
    return found


def _mail_page(request: web.Request, mail: CaughtMail, *, status: int = 200,
               errors: dict[str, str] | None = None,
               values: dict[str, str] | None = None) -> web.Response:
    response = admin_page(request, "admin_caught_mail.html",
                          {"mail": mail, "frame": _frame_document(mail.html),
                           "sandbox": FRAME_SANDBOX, "reply_max": MAX_REPLY_CHARS},
                          status=status, errors=errors, values=values)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


async def mail_page(request: web.Request) -> web.Response:
    return _mail_page(request, await _mail(request))


async def reply_submit(request: web.Request) -> web.Response:
    mail = await _mail(request)
    form = await read_form(request, CaughtReply)
    text, quote = form.text, form.quote == "on"
    values = {"reply.text": text, "reply.quote": "on" if quote else "off"}
    problem = None
    if not mail.reply_to:
        problem = "This mail has no Reply-To: replies by mail were off when it was sent."
    elif not text:
        problem = "Write a reply first."
    elif len(text) > MAX_REPLY_CHARS:
        problem = f"A reply may have at most {MAX_REPLY_CHARS} characters."
    if problem is None:
        accepted, answer = await send_reply(settings(request), mail, text, quote=quote)
        if accepted and mail.ticket_id is not None:
            raise web.HTTPSeeOther(f"/tickets/{mail.ticket_id}?done=reply")
        if accepted:
            raise web.HTTPSeeOther(LIST)
        problem = f"The daemon refused the reply: {answer}"
    return _mail_page(request, mail, status=422, errors={"reply.text": problem}, values=values)
