"""The audit table as a page: filter by actor, action, target and dates; each change shown as
its fields before → after; paginated."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from daemon.formatting import when
from daemon.queries import audit_search
from web.errors import ApiError
from web.input import read_query
from web.schemas.admin import AuditQuery
from web.views.admin.common import admin_page, connection

PAGE_SIZE = 50
MAX_PAGE = 10_000
FILTERS = ("actor", "action", "target", "from", "to")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
        # a group's levels and the like: "charges off, kb view" reads better than JSON
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def changes(before: Any, after: Any) -> list[tuple[str, str, str]]:
    """(field, before, after) for each field that differs; a creation lists what it made, a
    deletion what it removed."""
    before, after = _json(before), _json(after)
    if before is None and after is None:
        return []
    if isinstance(before, dict | None) and isinstance(after, dict | None):
        old, new = before or {}, after or {}
        keys = list(dict.fromkeys([*old, *new]))
        return [(k, _text(old.get(k)) if before is not None else "",
                 _text(new.get(k)) if after is not None else "")
                for k in keys if before is None or after is None or old.get(k) != new.get(k)]
    return [("", _text(before), _text(after))]


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _empty_context() -> dict[str, Any]:
    return {"entries": [], "query": dict.fromkeys(FILTERS, ""), "actions": [], "page": 1,
            "newer": None, "older": None, "filtered": False}


async def audit_page(request: web.Request) -> web.Response:
    try:
        form = read_query(request, AuditQuery)
    except ApiError as err:
        return admin_page(request, "admin_audit.html", _empty_context(), status=422,
                          errors={f"filter.{err.field}": err.message})
    query = {"actor": form.actor, "action": form.action, "target": form.target,
             "from": form.from_, "to": form.to}
    errors: dict[str, str] = {}
    bounds: dict[str, datetime | None] = {"from": None, "to": None}
    for key in ("from", "to"):
        if query[key]:
            try:
                day = _day(query[key])
            except ValueError:
                errors[f"filter.{key}"] = f'"{query[key]}" is not a date: use YYYY-MM-DD'
                continue
            if day == date.max and key == "to":
                continue  # the end of time: no bound at all
            # "to" includes its whole day
            bounds[key] = datetime.combine(day + timedelta(days=1 if key == "to" else 0),
                                           time.min, tzinfo=UTC)
    page = form.page if form.page is not None and form.page <= MAX_PAGE else 1
    rows: list[Any] = []
    async with connection(request) as conn:
        if not errors:
            rows = list(await audit_search.search(
                conn, actor=query["actor"], action=query["action"], target=query["target"],
                since=bounds["from"], until=bounds["to"], limit=PAGE_SIZE + 1,
                offset=(page - 1) * PAGE_SIZE))
        actions = await audit_search.actions(conn)
    more = len(rows) > PAGE_SIZE
    entries = [{"at": when(r["at"], seconds=True), "actor": r["actor"],
                "action": r["action"], "target": r["target"], "ip": r["ip"],
                "changes": changes(r["before"], r["after"])} for r in rows[:PAGE_SIZE]]
    kept = {k: v for k, v in query.items() if v}

    def page_link(n: int) -> str:
        return "/admin/audit?" + urlencode({**kept, "page": n})

    return admin_page(request, "admin_audit.html",
                  {"entries": entries, "query": query, "actions": actions, "page": page,
                   "newer": page_link(page - 1) if page > 1 else None,
                   "older": page_link(page + 1) if more else None,
                   "filtered": bool(kept)},
                  status=422 if errors else 200, errors=errors)
