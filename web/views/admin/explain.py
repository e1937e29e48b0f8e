""""Can USER see TICKET?": the answer of `portald admin explain`, from the same function."""

from __future__ import annotations

from aiohttp import web

from daemon.access.explain import explain
from daemon.services.common import AdminError
from web.errors import ApiError
from web.input import read_query
from web.schemas.admin import ExplainQuery
from web.views.admin.common import admin_page, connection, field_for


async def explain_page(request: web.Request) -> web.Response:
    try:
        form = read_query(request, ExplainQuery)
    except ApiError as err:
        return admin_page(request, "admin_explain.html",
                          {"username": "", "ticket": "", "result": None}, status=422,
                          errors={f"explain.{err.field}": err.message})
    username, ticket = form.user or "", form.ticket or ""
    context = {"username": username, "ticket": ticket, "result": None}
    errors: dict[str, str] = {}
    if form.model_fields_set:
        if not username:
            errors["explain.user"] = "give a user name"
        if not ticket:
            errors["explain.ticket"] = "give a ticket id or number (e.g. T-1000)"
        if not errors:
            try:
                async with connection(request) as conn:
                    context["result"] = await explain(conn, username, ticket)
            except AdminError as exc:
                key = field_for(str(exc), (("ticket", "explain.ticket"),), "explain.user")
                errors[key] = str(exc)
    return admin_page(request, "admin_explain.html", context, status=422 if errors else 200,
                  errors=errors)
