"""Employees and subcontractors: list with license seat usage, create, change group, account
access, (de)activate with the seat check, password, rate, and their alert and recipient
settings set on their behalf (subcontractors have nowhere else to set them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from daemon.access.kinds import EMPLOYEE_GROUPS
from daemon.services import employees, licenses, totp
from daemon.services.accounts import list_accounts
from daemon.services.common import AdminError
from daemon.services.groups import list_groups
from web.errors import not_found
from web.input import path_id, read_form
from web.schemas.admin import (
    EmployeeAccess,
    EmployeeActive,
    EmployeeCreate,
    EmployeeGroup,
    EmployeeMail,
    EmployeeRate,
    EmployeeWebAccess,
    License,
)
from web.views.admin.common import (
    LIVE,
    actor,
    admin_page,
    connection,
    field_for,
    generate_password,
    password_page,
    redirect,
)
from web.views.admin.labels import ALERT_LABELS, RECIPIENT_LABELS

LIST = "/admin/employees"
_CREATE_FIELDS = (("username", "create.username"), ("name", "create.full_name"),
                  ("email", "create.email"), ("rate", "create.hourly_rate"),
                  ("group", "create.group"), ("seat", "create.web_access"),
                  ("password", "create.password"))


def _page_of(employee: Mapping[str, Any]) -> str:
    return f"{LIST}/{employee['id']}"


async def _list_page(request: web.Request, *, status: int = 200,
                     errors: Mapping[str, str] | None = None,
                     values: Mapping[str, str] | None = None) -> web.Response:
    async with connection(request) as conn:
        listing = await employees.list_employees(conn)
        groups = await list_groups(conn, EMPLOYEE_GROUPS)
    return admin_page(request, "admin_employees.html",
                  {"employees": listing["employees"], "seats": listing["seats"], "groups": groups,
                   "default_group": employees.DEFAULT_EMPLOYEE_GROUP},
                  status=status, errors=errors, values=values)


async def _employee(request: web.Request) -> dict[str, Any]:
    employee_id = path_id(request)
    async with connection(request) as conn:
        listing = await employees.list_employees(conn)
    for employee in listing["employees"]:
        if employee["id"] == employee_id:
            return employee
    raise not_found()


async def _detail_page(request: web.Request, *, status: int = 200,
                       errors: Mapping[str, str] | None = None,
                       values: Mapping[str, str] | None = None) -> web.Response:
    employee = await _employee(request)
    async with connection(request) as conn:
        groups = await list_groups(conn, EMPLOYEE_GROUPS)
        accounts = await list_accounts(conn)
        mail = await employees.get_mail_settings(conn, username=employee["username"])
        seats = await licenses.show_license(conn)
        totp_on = employee["id"] in await totp.enabled_ids(conn, "employee")
    return admin_page(request, "admin_employee.html",
                  {"employee": employee, "groups": groups, "accounts": accounts, "totp_on": totp_on,
                   "mail": mail["settings"], "alert_labels": ALERT_LABELS,
                   "recipient_labels": RECIPIENT_LABELS, "seats": seats},
                  status=status, errors=errors, values=values)


async def employees_page(request: web.Request) -> web.Response:
    return await _list_page(request)


async def employee_page(request: web.Request) -> web.Response:
    return await _detail_page(request)


async def create_employee(request: web.Request) -> web.Response:
    form = await read_form(request, EmployeeCreate)
    fields = {"username": form.username, "full_name": form.full_name, "email": form.email,
              "group": form.group or employees.DEFAULT_EMPLOYEE_GROUP,
              "hourly_rate": form.hourly_rate or "0"}
    web_access = form.web_access == "on"
    password = generate_password() if form.password == "generate" else None
    try:
        async with connection(request) as conn:
            created = await employees.create_employee(conn, actor=actor(request), password=password,
                                                  web_access=web_access, **fields)
    except AdminError as exc:
        key = field_for(str(exc), _CREATE_FIELDS, "create.username")
        values = {f"create.{k}": v for k, v in fields.items()}
        values.update({"create.web_access": "on" if web_access else "off",
                       "create.password": form.password})
        return await _list_page(request, status=422, errors={key: str(exc)}, values=values)
    if password is not None:
        return password_page(request, username=created["username"], password=password,
                             kind="employee", back=_page_of(created), created=True)
    return redirect(_page_of(created), f'Employee "{created["username"]}" created, without a '
                    "password yet.", request=request)


async def set_license(request: web.Request) -> web.Response:
    text = (await read_form(request, License)).seats
    seats: Any
    try:
        seats = int(text)
    except ValueError:
        seats = text  # daemon.services refuses it with its own words
    try:
        async with connection(request) as conn:
            result = await licenses.set_license(conn, actor=actor(request), seats=seats)
    except AdminError as exc:
        return await _list_page(request, status=422, errors={"license.seats": str(exc)},
                                values={"license.seats": text})
    return redirect(LIST, f'License: {result["summary"]}.', request=request)


async def set_active(request: web.Request) -> web.Response:
    employee = await _employee(request)
    form = await read_form(request, EmployeeActive)
    active = form.active == "on"
    back_to_list = form.back == "list"
    try:
        async with connection(request) as conn:
            result = await employees.set_employee_active(conn, actor=actor(request),
                                                     username=employee["username"], active=active)
    except AdminError as exc:
        key = f"active.{employee['username']}"
        page = _list_page if back_to_list else _detail_page
        return await page(request, status=422, errors={key: str(exc)})
    state = "active" if result["active"] else "deactivated; their sessions have ended"
    notice = f'"{employee["username"]}" is {state}. {result["seats"]["summary"]}.'
    return redirect(LIST if back_to_list else _page_of(employee), notice, request=request)


async def set_web_access(request: web.Request) -> web.Response:
    employee = await _employee(request)
    web_access = (await read_form(request, EmployeeWebAccess)).web_access == "on"
    try:
        async with connection(request) as conn:
            result = await employees.set_employee_web_access(
                conn, actor=actor(request), username=employee["username"], web_access=web_access)
    except AdminError as exc:
        return await _detail_page(request, status=422,
                                  errors={f"web_access.{employee['username']}": str(exc)})
    state = ("may log in to the portal" if result["web_access"]
             else "has no web access any more (mail still reaches them); their sessions have ended")
    notice = f'"{employee["username"]}" {state}. {result["seats"]["summary"]}.'
    return redirect(_page_of(employee), notice, request=request)


async def set_group(request: web.Request) -> web.Response:
    employee = await _employee(request)
    group = (await read_form(request, EmployeeGroup)).group
    try:
        async with connection(request) as conn:
            result = await employees.set_employee_group(conn, actor=actor(request),
                                                    username=employee["username"], group=group)
    except AdminError as exc:
        return await _detail_page(request, status=422, errors={"group.group": str(exc)},
                                  values={"group.group": group})
    notice = (f'"{employee["username"]}" is now in group "{result["group"]}". {LIVE}'
              if result["changed"] else f'"{employee["username"]}" already is in "{result["group"]}".')
    return redirect(_page_of(employee), notice, request=request)


async def set_access(request: web.Request) -> web.Response:
    employee = await _employee(request)
    form = await read_form(request, EmployeeAccess)
    all_accounts = form.scope == "all"
    accounts = [] if all_accounts else form.accounts
    try:
        async with connection(request) as conn:
            result = await employees.set_employee_access(conn, actor=actor(request),
                                                     username=employee["username"],
                                                     all_accounts=all_accounts, accounts=accounts)
    except AdminError as exc:
        values = {"access.scope": "all" if all_accounts else "some",
                  **{f"access.account.{a}": "on" for a in accounts}, "access.posted": "1"}
        return await _detail_page(request, status=422, errors={"access.accounts": str(exc)},
                                  values=values)
    if result["all_accounts"]:
        reach = "all accounts"
    else:
        reach = ", ".join(result["accounts"]) or "no account at all"
    return redirect(_page_of(employee), f'"{employee["username"]}" may now access {reach}. {LIVE}',
                    request=request)


async def set_mail(request: web.Request) -> web.Response:
    employee = await _employee(request)
    form = await read_form(request, EmployeeMail)
    settings = {key: getattr(form, key) == "on" for key in employees.MAIL_SETTINGS}
    try:
        async with connection(request) as conn:
            result = await employees.set_mail_settings(conn, actor=actor(request),
                                                   username=employee["username"], settings=settings)
    except AdminError as exc:
        return await _detail_page(request, status=422, errors={"mail": str(exc)})
    notice = (f'Mail settings of "{employee["username"]}" saved: '
              + ", ".join(f"{k} {result['settings'][k]}" for k in result["changed"]) + "."
              if result["changed"] else f'No change to the mail settings of "{employee["username"]}".')
    return redirect(_page_of(employee) + "#mail", notice, request=request)


async def set_rate(request: web.Request) -> web.Response:
    employee = await _employee(request)
    rate = (await read_form(request, EmployeeRate)).hourly_rate
    try:
        async with connection(request) as conn:
            result = await employees.set_employee_rate(conn, actor=actor(request),
                                                   username=employee["username"], hourly_rate=rate)
    except AdminError as exc:
        return await _detail_page(request, status=422, errors={"rate.hourly_rate": str(exc)},
                                  values={"rate.hourly_rate": rate})
    return redirect(_page_of(employee), f'Hourly rate of "{employee["username"]}": '
                    f'{result["hourly_rate"]}.', request=request)


async def reset_password(request: web.Request) -> web.Response:
    employee = await _employee(request)
    password = generate_password()
    try:
        async with connection(request) as conn:
            await employees.set_employee_password(conn, actor=actor(request),
                                              username=employee["username"], password=password)
    except AdminError as exc:
        return await _detail_page(request, status=422, errors={"password": str(exc)})
    return password_page(request, username=employee["username"], password=password,
                         kind="employee", back=_page_of(employee))


# for the two-factor form of the employee's page (web/views/admin/totp.py)
employee_of = _employee
page_of = _page_of
detail_page = _detail_page
