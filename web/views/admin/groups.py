"""Privilege groups, customer and employee: the grid of groups × identifiers, and one group's
page (levels, rename, default, delete). Both kinds have the same shape, so one set of handlers
serves both, each given the kind (daemon/access/kinds.py) it works on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from daemon.access.kinds import CUSTOMER_GROUPS, EMPLOYEE_GROUPS, GroupKind
from daemon.services import groups
from daemon.services.common import AdminError
from web.errors import not_found
from web.input import path_id, read_form
from web.schemas.admin import GroupCreate, GroupRename, levels_form
from web.views.admin.common import (
    LIVE,
    FieldErrors,
    actor,
    admin_page,
    connection,
    field_for,
    redirect,
)
from web.views.admin.labels import LEVEL_LABELS

# where each kind's pages are
BASES: dict[str, str] = {CUSTOMER_GROUPS.name: "/admin/groups",
                         EMPLOYEE_GROUPS.name: "/admin/employee-groups"}


def _context(kind: GroupKind, found: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "base": BASES[kind.name], "groups": found, "level_labels": LEVEL_LABELS}


async def _find(kind: GroupKind, request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    group_id = path_id(request)
    async with connection(request) as conn:
        found = await groups.list_groups(conn, kind)
    for group in found:
        if group["id"] == group_id:
            return group, found
    raise not_found()


async def _grid(kind: GroupKind, request: web.Request, *, status: int = 200,
                errors: Mapping[str, str] | None = None,
                values: Mapping[str, str] | None = None) -> web.Response:
    async with connection(request) as conn:
        found = await groups.list_groups(conn, kind)
    return admin_page(request, "admin_groups.html", _context(kind, found), status=status,
                      errors=errors, values=values)


async def _group_page(kind: GroupKind, request: web.Request, *, status: int = 200,
                      errors: Mapping[str, str] | None = None,
                      values: Mapping[str, str] | None = None) -> web.Response:
    group, found = await _find(kind, request)
    return admin_page(request, "admin_group.html", {**_context(kind, found), "group": group},
                      status=status, errors=errors, values=values)


# -- handlers, bound to a kind by `handlers()` ----------------------------------------------


async def grid_page(kind: GroupKind, request: web.Request) -> web.Response:
    return await _grid(kind, request)


async def group_page(kind: GroupKind, request: web.Request) -> web.Response:
    return await _group_page(kind, request)


async def create_group(kind: GroupKind, request: web.Request) -> web.Response:
    form = await read_form(request, GroupCreate)
    name, copy_from = form.name, form.copy_from or None
    try:
        async with connection(request) as conn:
            created = await groups.create_group(conn, kind, actor=actor(request), name=name,
                                                copy_from=copy_from)
    except AdminError as exc:
        errors = FieldErrors()
        errors.add(field_for(str(exc), (("unknown", "create.copy_from"),), "create.name"), str(exc))
        return await _grid(kind, request, status=422, errors=errors,
                           values={"create.name": name, "create.copy_from": copy_from or ""})
    source = f', a copy of "{copy_from}"' if copy_from else ""
    return redirect(f"{BASES[kind.name]}/{created['id']}",
                    f'{kind.group_word.capitalize()} "{created["name"]}" created{source}. '
                    "Set its levels below.", request=request)


async def save_levels(kind: GroupKind, request: web.Request) -> web.Response:
    group, _ = await _find(kind, request)
    form = await read_form(request, levels_form(kind))
    # every identifier the form carries; a checkbox is a hidden "off" followed by an "on"
    levels = {identifier: getattr(form, identifier) or "" for identifier in kind.levels
              if identifier in form.model_fields_set}
    back_to_grid = form.back == "grid"
    try:
        async with connection(request) as conn:
            result = await groups.set_group_levels(conn, kind, actor=actor(request),
                                                   name=group["name"], levels=levels)
    except AdminError as exc:
        errors = {f"levels-{group['id']}": str(exc)}
        values = {f"levels-{group['id']}.{k}": v for k, v in levels.items()}
        page = _grid if back_to_grid else _group_page
        return await page(kind, request, status=422, errors=errors, values=values)
    if result["changed"]:
        changes = ", ".join(f"{k} {result[kind.levels_key][k]}" for k in result["changed"])
        notice = f'Saved "{group["name"]}": {changes}. {LIVE}'
    else:
        notice = f'No change to "{group["name"]}".'
    base = BASES[kind.name]
    target = f"{base}#group-{group['id']}" if back_to_grid else f"{base}/{group['id']}"
    return redirect(target, notice, request=request)


async def rename_group(kind: GroupKind, request: web.Request) -> web.Response:
    group, _ = await _find(kind, request)
    new_name = (await read_form(request, GroupRename)).new_name
    try:
        async with connection(request) as conn:
            result = await groups.rename_group(conn, kind, actor=actor(request),
                                               name=group["name"], new_name=new_name)
    except AdminError as exc:
        return await _group_page(kind, request, status=422, errors={"rename.new_name": str(exc)},
                                 values={"rename.new_name": new_name})
    return redirect(f"{BASES[kind.name]}/{group['id']}",
                    f'Renamed "{result["old_name"]}" to "{result["name"]}".', request=request)


async def delete_group(kind: GroupKind, request: web.Request) -> web.Response:
    group, _ = await _find(kind, request)
    try:
        async with connection(request) as conn:
            await groups.delete_group(conn, kind, actor=actor(request), name=group["name"])
    except AdminError as exc:
        return await _group_page(kind, request, status=422, errors={"delete": str(exc)})
    return redirect(BASES[kind.name], f'{kind.group_word.capitalize()} "{group["name"]}" deleted.',
                    request=request)


async def default_group(kind: GroupKind, request: web.Request) -> web.Response:
    if not kind.has_default:
        raise not_found()
    group, _ = await _find(kind, request)
    try:
        async with connection(request) as conn:
            result = await groups.set_default_group(conn, actor=actor(request), name=group["name"])
    except AdminError as exc:
        return await _group_page(kind, request, status=422, errors={"default": str(exc)})
    notice = (f'"{group["name"]}" is now the default group: new web users get it.'
              if result["changed"] else f'"{group["name"]}" already is the default group.')
    return redirect(f"{BASES[kind.name]}/{group['id']}", notice, request=request)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handlers(kind: GroupKind) -> dict[str, Handler]:
    """The handlers of one kind, by action, for the route table."""
    def bind(fn: Callable[[GroupKind, web.Request], Awaitable[web.StreamResponse]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await fn(kind, request)
        handler.__name__ = f"{fn.__name__}_{kind.name}"
        return handler

    return {"grid": bind(grid_page), "create": bind(create_group), "page": bind(group_page),
            "levels": bind(save_levels), "rename": bind(rename_group),
            "delete": bind(delete_group), "default": bind(default_group)}


# the route table's handlers, one set per kind
customer = handlers(CUSTOMER_GROUPS)
employee = handlers(EMPLOYEE_GROUPS)
