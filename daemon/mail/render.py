"""A mail's subject, plain text and HTML, rendered from the templates in templates/ with what
its recipient may see (the ticket and what the mail is about, or a digest's tickets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from daemon.access.scope import Principal
from daemon.formatting import money, when
from daemon.mail.identity import MailIdentity
from daemon.mail.values import header_text, payload_of, summary

TEMPLATES_DIR = Path(__file__).parent / "templates"

_SUBJECTS: dict[str, str] = {
    "assigned": "Assigned to you",
    "created": "New ticket",
    "note": "New history note",
    "closed": "Closed",
    "email": "Email filed",
    "charge": "Charge logged",
}


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code: no stat() per mail
    )


def _label(value: object) -> str:
    return str(value or "").replace("_", " ")


def subject_for(row: Mapping[str, Any], ticket: Mapping[str, Any] | None, *,
                digest_count: int = 0) -> str:
    event = row["event"]
    payload = payload_of(row)
    if event == "digest":
        return header_text(f"Daily digest: {digest_count} open ticket{'s' if digest_count != 1 else ''}")
    if ticket is None:
        return "Test mail from the portal" if event == "test" else header_text(f"portald: {event}")
    if event == "status":
        what = f"Status changed to {_label(payload.get('to'))}"
    elif event == "reminder":
        what = f"Reminder: untouched for {payload.get('hours', '?')} h"
    else:
        what = _SUBJECTS.get(event, _label(event).capitalize())
    text = f"[{ticket['number']}] {what}"
    first_line = summary(ticket["description"])
    return header_text(f"{text}: {first_line}" if first_line else text)


def render_mail(row: Mapping[str, Any], *, identity: MailIdentity, recipient: Principal,
                ticket: Mapping[str, Any] | None, child: Mapping[str, Any] | None,
                digest: Sequence[Mapping[str, Any]]) -> tuple[str, str, str]:
    """Subject, plain text and HTML of one mail, from what this recipient may see."""
    event = row["event"]
    context = {
        "event": event,
        "payload": payload_of(row),
        "recipient_name": recipient.display_name,
        "ticket": ticket,
        "child": child,
        "digest": digest,
        "link": identity.ticket_link(ticket["id"]) if ticket else identity.public_url + "/tickets",
        "portal_url": identity.public_url,
        "label": _label,
        "when": when,
        "money": money,
    }
    env = _environment()
    name = "digest" if event == "digest" else "event"
    text = env.get_template(f"{name}.txt").render(context)
    html = env.get_template(f"{name}.html").render(context)
    return subject_for(row, ticket, digest_count=len(digest)), text, html
