"""Rendering an HTML page of the portal, and what every page's template may use."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web
from markupsafe import Markup

from daemon.access.scope import Principal
from daemon.appkeys import CAUGHT_MAIL
from daemon.formatting import amount_input, file_size, money, when
from web.context import PRINCIPAL, csrf_token
from web.middleware.access import ACCESS_BY_NAME


def isoformat(value: Any) -> str:
    """A time as the `datetime` attribute of <time> wants it."""
    return value.isoformat()


# How the pages write numbers, times and sizes (the same functions as the mails and the API).
# Filters, `{{ t.created_at|when }}`, rather than functions: Jinja calls a filter directly and
# a function through its context, which inspects the callable on every call.
TEMPLATE_FILTERS: dict[str, Any] = {
    "money": money, "amount_input": amount_input, "when": when, "file_size": file_size,
    "isoformat": isoformat,
}


# Rows reach the templates as dicts and asyncpg records, read as `ticket.number`. Jinja tries
# an attribute first and the item only after the AttributeError, which was a good share of a
# ticket page's rendering; for a name that neither type has as an attribute (all but `get`,
# `items`, `keys`, … — those keep Jinja's order) the item comes first: the same value, without
# raising.
_ROW_TYPES = {dict: frozenset(dir(dict)), asyncpg.Record: frozenset(dir(asyncpg.Record))}


def item_first_lookups(env: jinja2.Environment) -> None:
    """Make `env` read `row.name` of a dict or record as `row["name"]` at once."""
    generic = env.getattr

    def getattr_(obj: Any, attribute: str) -> Any:
        attributes = _ROW_TYPES.get(type(obj))
        if attributes is None:
            # any other object (a dataclass, the principal): its attribute, as Jinja reads it
            # first; Jinja's own lookup only when there is none
            try:
                return getattr(obj, attribute)
            except AttributeError:
                pass
        elif attribute not in attributes:
            try:
                return obj[attribute]
            except KeyError:
                pass  # Jinja's own way to its `undefined`
        return generic(obj, attribute)

    env.getattr = getattr_  # type: ignore[method-assign]


def render(request: web.Request, template: str, context: dict[str, Any], *,
           status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    # pages carry personal data and a CSRF token: never from a shared cache
    response.headers["Cache-Control"] = "private, no-store"
    return response


# The main tabs of base.html after "Tickets": account data (web/views/pages/account.py), each
# shown only where the route table lets the user in (customers by privilege, employees by the
# rights of their group), then administration for employees with the `admin` right.
ACCOUNT_TABS = (("/assets", "Assets", "assets"), ("/contracts", "Contracts", "contracts"),
                ("/documents", "Documents", "documents"), ("/kb", "Knowledge base", "kb"),
                ("/quotes", "Quotes", "quotes"))


def may_use(request: web.Request, p: Principal, route_name: str) -> bool:
    """Whether the access middleware lets `p` use that route (the route table's rule)."""
    return request.app[ACCESS_BY_NAME][route_name].refusal(p) is None


def _tab(href: str, label: str, path: str) -> str:
    # href and label are this module's constants: nothing to escape; a tab is current on its
    # page and the pages under it
    if path == href or (href != "/" and path.startswith(href + "/")):
        return f'<a href="{href}" aria-current="page">{label}</a>'
    return f'<a href="{href}">{label}</a>'


def main_tabs(request: web.Request, p: Principal) -> Markup:
    """The links of the main navigation for `p`, the current page's marked. Written here and
    not in base.html's loop: every page shows them, and in Jinja they were a sixth of a list
    page's rendering."""
    path = request.path
    tabs = [_tab("/", "Tickets", path)]
    tabs += [_tab(href, label, path) for href, label, route in ACCOUNT_TABS
             if may_use(request, p, route)]
    if p.can("admin"):
        tabs.append(_tab("/admin", "Admin", path))
    return Markup("\n      ".join(tabs))


async def template_context(request: web.Request) -> dict[str, Any]:
    """Handed to every template: the user (None on public pages), the CSRF token for forms,
    `can(identifier, level)`, and `may(route name)`: whether the access middleware would let
    the user use that route, so that a tab is shown exactly where its page answers."""
    p: Principal | None = request.get(PRINCIPAL)

    def can(identifier: str, level: str = "on") -> bool:
        return p is not None and p.can(identifier, level)

    def may(route_name: str) -> bool:
        return p is not None and may_use(request, p, route_name)

    def tabs() -> Markup:
        return main_tabs(request, p) if p is not None else Markup("")

    return {"user": p, "csrf_token": csrf_token(request), "can": can, "may": may,
            "main_tabs": tabs, "demo_mail": CAUGHT_MAIL in request.app}
