"""Customer accounts and their web users: list, create, change group, (de)activate, reset the
password (a generated one, shown once)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from daemon.access.kinds import CUSTOMER_GROUPS
from daemon.services import totp, webusers
from daemon.services.accounts import create_account as create_account_op
from daemon.services.accounts import list_accounts
from daemon.services.common import AdminError
from daemon.services.groups import list_groups
from web.errors import not_found
from web.input import path_id, read_form
from web.schemas.admin import AccountCreate, Member, WebuserCreate
from web.views.admin.common import (
    LIVE,
    FieldErrors,
    actor,
    admin_page,
    connection,
    field_for,
    generate_password,
    password_page,
    redirect,
)

_ACCOUNT_FIELDS = (("email", "account.email"),)
_CREATE_FIELDS = (("username", "create.username"), ("full name", "create.full_name"),
                  ("email", "create.email"), ("group", "create.group"),
                  ("password", "create.password"))


def _base(account: Mapping[str, Any]) -> str:
    return f"/admin/accounts/{account['id']}"


async def _account(request: web.Request) -> dict[str, Any]:
    account_id = path_id(request)
    async with connection(request) as conn:
        accounts = await list_accounts(conn)
    for account in accounts:
        if account["id"] == account_id:
            return account
    raise not_found()


async def _accounts_page(request: web.Request, *, status: int = 200,
                         errors: Mapping[str, str] | None = None,
                         values: Mapping[str, str] | None = None) -> web.Response:
    async with connection(request) as conn:
        accounts = await list_accounts(conn)
    return admin_page(request, "admin_accounts.html", {"accounts": accounts}, status=status,
                  errors=errors, values=values)


async def _users_page(request: web.Request, account: dict[str, Any], *, status: int = 200,
                      errors: Mapping[str, str] | None = None,
                      values: Mapping[str, str] | None = None) -> web.Response:
    async with connection(request) as conn:
        users = await webusers.list_webusers(conn, account=account["name"])
        groups = await list_groups(conn, CUSTOMER_GROUPS)
        totp_on = await totp.enabled_ids(conn, "customer")
    default = next((g["name"] for g in groups if g["is_default"]), "")
    return admin_page(request, "admin_webusers.html",
                  {"account": account, "users": users, "groups": groups, "default_group": default,
                   "base": _base(account), "totp_on": totp_on},
                  status=status, errors=errors, values=values)


async def accounts_page(request: web.Request) -> web.Response:
    return await _accounts_page(request)


async def create_account(request: web.Request) -> web.Response:
    form = await read_form(request, AccountCreate)
    fields = {"name": form.name, "contact_name": form.contact_name, "email": form.email}
    try:
        async with connection(request) as conn:
            created = await create_account_op(conn, actor=actor(request), **fields)
    except AdminError as exc:
        key = field_for(str(exc), _ACCOUNT_FIELDS, "account.name")
        return await _accounts_page(request, status=422, errors={key: str(exc)},
                                    values={f"account.{k}": v for k, v in fields.items()})
    return redirect(_base(created), f'Account "{created["name"]}" created.', request=request)


async def users_page(request: web.Request) -> web.Response:
    return await _users_page(request, await _account(request))


async def create_webuser(request: web.Request) -> web.Response:
    account = await _account(request)
    form = await read_form(request, WebuserCreate)
    fields = {"username": form.username, "full_name": form.full_name, "email": form.email,
              "group": form.group}
    password = generate_password() if form.password == "generate" else None
    try:
        async with connection(request) as conn:
            created = await webusers.create_webuser(
                conn, actor=actor(request), account=account["name"], username=fields["username"],
                group=fields["group"] or None, password=password, full_name=fields["full_name"],
                email=fields["email"])
    except AdminError as exc:
        key = field_for(str(exc), _CREATE_FIELDS, "create.username")
        values = {f"create.{k}": v for k, v in fields.items()}
        values["create.password"] = form.password
        return await _users_page(request, account, status=422, errors={key: str(exc)},
                                 values=values)
    if password is not None:
        return password_page(request, username=created["username"], password=password,
                             kind="web user", back=_base(account), created=True)
    return redirect(_base(account), f'Web user "{created["username"]}" created in group '
                    f'"{created["group"]}", without a password yet.', request=request)


async def _member(request: web.Request) -> tuple[dict[str, Any], str, Any]:
    """The account of the URL, and the posted username (which must be one of its users)."""
    account = await _account(request)
    form = await read_form(request, Member)
    username = form.username
    async with connection(request) as conn:
        users = await webusers.list_webusers(conn, account=account["name"])
    if username.lower() not in {u["username"].lower() for u in users}:
        raise not_found()
    return account, username, form


async def set_group(request: web.Request) -> web.Response:
    account, username, form = await _member(request)
    group = form.group
    try:
        async with connection(request) as conn:
            result = await webusers.set_webuser_group(conn, actor=actor(request), username=username,
                                                   group=group)
    except AdminError as exc:
        errors = FieldErrors({f"group.{username}": str(exc)})
        return await _users_page(request, account, status=422, errors=errors,
                                 values={f"group.{username}": group})
    notice = (f'"{username}" is now in group "{result["group"]}". {LIVE}' if result["changed"]
              else f'"{username}" already is in group "{result["group"]}".')
    return redirect(_base(account), notice, request=request)


async def set_active(request: web.Request) -> web.Response:
    account, username, form = await _member(request)
    active = form.active == "on"
    try:
        async with connection(request) as conn:
            result = await webusers.set_webuser_active(conn, actor=actor(request), username=username,
                                                    active=active)
    except AdminError as exc:
        return await _users_page(request, account, status=422,
                                 errors={f"active.{username}": str(exc)})
    state = "active" if result["active"] else "deactivated; their sessions have ended"
    return redirect(_base(account), f'"{username}" is {state}.', request=request)


async def reset_password(request: web.Request) -> web.Response:
    account, username, _ = await _member(request)
    password = generate_password()
    try:
        async with connection(request) as conn:
            await webusers.set_webuser_password(conn, actor=actor(request), username=username,
                                             password=password)
    except AdminError as exc:
        return await _users_page(request, account, status=422,
                                 errors={f"password.{username}": str(exc)})
    return password_page(request, username=username, password=password, kind="web user",
                         back=_base(account))


# for the two-factor buttons of the users' table (web/views/admin/totp.py)
account_of = _account
base_of = _base
users_page_of = _users_page
