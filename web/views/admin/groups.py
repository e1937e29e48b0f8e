"""Privilege groups, customer and employee: the grid of groups × identifiers, and one group's
page (levels, rename, default, delete). Both kinds have the same shape, so one set of handlers
serves both, each kind naming its daemon.admin functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from daemon import admin
from daemon.admin import AdminError
from daemon.scope import CUSTOMER_IDENTIFIERS, EMPLOYEE_RIGHTS
from web.errors import not_found
from web.views.admin.common import (
    LIVE,
    FieldErrors,
    actor,
    connection,
    field_for,
    path_id,
    read_form,
    redirect,
    render,
)
from web.views.admin.labels import CUSTOMER_LABELS, EMPLOYEE_RIGHT_LABELS, LEVEL_LABELS


@dataclass(frozen=True)
class GroupKind:
    slug: str  # the URL segment under /admin
    title: str
    what: str  # "customer group" as said in messages
    levels: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, str]
    key: str  # where a group dict keeps its levels
    members_key: str
    member_word: str
    list_groups: Callable[..., Awaitable[list[dict[str, Any]]]]
    create: Callable[..., Awaitable[dict[str, Any]]]
    set_levels: Callable[..., Awaitable[dict[str, Any]]]
    levels_kwarg: str
    rename: Callable[..., Awaitable[dict[str, Any]]]
    delete: Callable[..., Awaitable[dict[str, Any]]]
    set_default: Callable[..., Awaitable[dict[str, Any]]] | None

    @property
    def base(self) -> str:
        return f"/admin/{self.slug}"


CUSTOMER = GroupKind(
    slug="groups", title="Customer privilege groups", what="customer group",
    levels=CUSTOMER_IDENTIFIERS, labels=CUSTOMER_LABELS, key="privileges",
    members_key="users", member_word="web user",
    list_groups=admin.list_customer_groups, create=admin.create_customer_group,
    set_levels=admin.set_customer_group_levels, levels_kwarg="levels",
    rename=admin.rename_customer_group, delete=admin.delete_customer_group,
    set_default=admin.set_default_customer_group)

EMPLOYEE = GroupKind(
    slug="employee-groups", title="Employee privilege groups", what="employee group",
    levels=EMPLOYEE_RIGHTS, labels=EMPLOYEE_RIGHT_LABELS, key="rights",
    members_key="employees", member_word="employee",
    list_groups=admin.list_employee_groups, create=admin.create_employee_group,
    set_levels=admin.set_employee_group_rights, levels_kwarg="rights",
    rename=admin.rename_employee_group, delete=admin.delete_employee_group,
    set_default=None)


def _context(kind: GroupKind, groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "groups": groups, "level_labels": LEVEL_LABELS}


async def _find(kind: GroupKind, request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    group_id = path_id(request)
    async with connection(request) as conn:
        groups = await kind.list_groups(conn)
    for group in groups:
        if group["id"] == group_id:
            return group, groups
    raise not_found()


async def _grid(kind: GroupKind, request: web.Request, *, status: int = 200,
                errors: Mapping[str, str] | None = None,
                values: Mapping[str, str] | None = None) -> web.Response:
    async with connection(request) as conn:
        groups = await kind.list_groups(conn)
    return render(request, "admin_groups.html", _context(kind, groups), status=status,
                  errors=errors, values=values)


async def _group_page(kind: GroupKind, request: web.Request, *, status: int = 200,
                      errors: Mapping[str, str] | None = None,
                      values: Mapping[str, str] | None = None) -> web.Response:
    group, groups = await _find(kind, request)
    return render(request, "admin_group.html", {**_context(kind, groups), "group": group},
                  status=status, errors=errors, values=values)


# -- handlers, bound to a kind by `handlers()` ----------------------------------------------


async def grid_page(kind: GroupKind, request: web.Request) -> web.Response:
    return await _grid(kind, request)


async def group_page(kind: GroupKind, request: web.Request) -> web.Response:
    return await _group_page(kind, request)


async def create_group(kind: GroupKind, request: web.Request) -> web.Response:
    form = await read_form(request)
    name, copy_from = form.get("name"), form.get("copy_from") or None
    try:
        async with connection(request) as conn:
            created = await kind.create(conn, actor=actor(request), name=name, copy_from=copy_from)
    except AdminError as exc:
        errors = FieldErrors()
        errors.add(field_for(str(exc), (("unknown", "create.copy_from"),), "create.name"), str(exc))
        return await _grid(kind, request, status=422, errors=errors,
                           values={"create.name": name, "create.copy_from": copy_from or ""})
    source = f', a copy of "{copy_from}"' if copy_from else ""
    return redirect(f"{kind.base}/{created['id']}",
                    f'{kind.what.capitalize()} "{created["name"]}" created{source}. '
                    "Set its levels below.", request=request)


async def save_levels(kind: GroupKind, request: web.Request) -> web.Response:
    group, _ = await _find(kind, request)
    form = await read_form(request)
    # every identifier the form carries; a checkbox is a hidden "off" followed by an "on"
    levels = {identifier: form.get(identifier) for identifier in kind.levels if form.has(identifier)}
    back_to_grid = form.get("back") == "grid"
    try:
        async with connection(request) as conn:
            result = await kind.set_levels(conn, actor=actor(request), name=group["name"],
                                           **{kind.levels_kwarg: levels})
    except AdminError as exc:
        errors = {f"levels-{group['id']}": str(exc)}
        values = {f"levels-{group['id']}.{k}": v for k, v in levels.items()}
        page = _grid if back_to_grid else _group_page
        return await page(kind, request, status=422, errors=errors, values=values)
    if result["changed"]:
        changes = ", ".join(f"{k} {result[kind.key][k]}" for k in result["changed"])
        notice = f'Saved "{group["name"]}": {changes}. {LIVE}'
    else:
        notice = f'No change to "{group["name"]}".'
    target = f"{kind.base}#group-{group['id']}" if back_to_grid else f"{kind.base}/{group['id']}"
    return redirect(target, notice, request=request)


async def rename_group(kind: GroupKind, request: web.Request) -> web.Response:
    group, _ = await _find(kind, request)
    form = await read_form(request)
    new_name = form.get("new_name")
    try:
        async with connection(request) as conn:
            result = await kind.rename(conn, actor=actor(request), name=group["name"],
                                       new_name=new_name)
    except AdminError as exc:
        return await _group_page(kind, request, status=422, errors={"rename.new_name": str(exc)},
                                 values={"rename.new_name": new_name})
    return redirect(f"{kind.base}/{group['id']}",
                    f'Renamed "{result["old_name"]}" to "{result["name"]}".', request=request)


async def delete_group(kind: GroupKind, request: web.Request) -> web.Response:
    group, _ = await _find(kind, request)
    try:
        async with connection(request) as conn:
            await kind.delete(conn, actor=actor(request), name=group["name"])
    except AdminError as exc:
        return await _group_page(kind, request, status=422, errors={"delete": str(exc)})
    return redirect(kind.base, f'{kind.what.capitalize()} "{group["name"]}" deleted.',
                    request=request)


async def default_group(kind: GroupKind, request: web.Request) -> web.Response:
    if kind.set_default is None:
        raise not_found()
    group, _ = await _find(kind, request)
    try:
        async with connection(request) as conn:
            result = await kind.set_default(conn, actor=actor(request), name=group["name"])
    except AdminError as exc:
        return await _group_page(kind, request, status=422, errors={"default": str(exc)})
    notice = (f'"{group["name"]}" is now the default group: new web users get it.'
              if result["changed"] else f'"{group["name"]}" already is the default group.')
    return redirect(f"{kind.base}/{group['id']}", notice, request=request)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handlers(kind: GroupKind) -> dict[str, Handler]:
    """The handlers of one kind, by action, for the route table."""
    def bind(fn: Callable[[GroupKind, web.Request], Awaitable[web.StreamResponse]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await fn(kind, request)
        handler.__name__ = f"{fn.__name__}_{kind.slug.replace('-', '_')}"
        return handler

    return {"grid": bind(grid_page), "create": bind(create_group), "page": bind(group_page),
            "levels": bind(save_levels), "rename": bind(rename_group),
            "delete": bind(delete_group), "default": bind(default_group)}



# the route table's handlers, one set per kind
customer = handlers(CUSTOMER)
employee = handlers(EMPLOYEE)
