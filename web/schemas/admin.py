"""The forms and queries of the admin pages, as models of the one input layer (web/input.py).

They check shapes only: text without control characters, within a length. What a value must
mean (a user name's characters, an existing group, a rate's range) is for daemon/services to
say, in the words the CLI uses too, beside the field the admin pages show it at. In these
forms a name given twice counts by its last value: a checkbox is a hidden "off" followed by
its "on".
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, create_model

from daemon.access.kinds import GroupKind
from daemon.services.employees import MAIL_SETTINGS
from web.schemas import Body, LenientId, Query, Text

MAX_ADMIN_CHARS = 500
# a value as typed on an admin form; empty is for the service to refuse where it matters
Value = Text(MAX_ADMIN_CHARS, allow_empty=True)


class AdminForm(Body):
    REPEATED: ClassVar[str] = "last"


class GroupCreate(AdminForm):
    name: Value = ""
    copy_from: Value = ""


class GroupRename(AdminForm):
    new_name: Value = ""


@cache
def _levels_form(name: str, identifiers: tuple[str, ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {identifier: (Value | None, None) for identifier in identifiers}
    return create_model(f"{name.capitalize()}Levels", __base__=AdminForm, back=(Value, ""),
                        **fields)


def levels_form(kind: GroupKind) -> type[BaseModel]:
    """The levels of a group of `kind`: one field per privilege (those the form carries)."""
    return _levels_form(kind.name, tuple(kind.levels))


class AccountCreate(AdminForm):
    name: Value = ""
    contact_name: Value = ""
    email: Value = ""


class WebuserCreate(AdminForm):
    username: Value = ""
    full_name: Value = ""
    email: Value = ""
    group: Value = ""
    password: Value = ""  # "generate": a generated one, shown once; anything else: none


class Member(AdminForm):
    """A post about one web user of the account in the URL."""

    username: Value = ""
    group: Value = ""
    active: Value = ""


class EmployeeCreate(AdminForm):
    username: Value = ""
    full_name: Value = ""
    email: Value = ""
    group: Value = ""
    hourly_rate: Value = ""
    web_access: Value = ""
    password: Value = ""


class License(AdminForm):
    seats: Value = ""


class EmployeeActive(AdminForm):
    active: Value = ""
    back: Value = ""


class EmployeeWebAccess(AdminForm):
    web_access: Value = ""


class CaughtReply(AdminForm):
    """A reply to a caught mail (demo mode): its text, and whether to quote the mail."""

    text: Text(100_000, multiline=True, allow_empty=True) = ""
    quote: Value = ""


class EmployeeGroup(AdminForm):
    group: Value = ""


class EmployeeAccess(AdminForm):
    scope: Value = ""
    accounts: Annotated[list[Value], Field(max_length=1000)] = []


EmployeeMail: type[BaseModel] = create_model(
    "EmployeeMail", __base__=AdminForm, **{key: (Value, "") for key in MAIL_SETTINGS})


class EmployeeRate(AdminForm):
    hourly_rate: Value = ""


class Back(AdminForm):
    """A button that only says where to go back to."""

    back: Value = ""


class AdminQuery(Query):
    REPEATED: ClassVar[str] = "last"


class AuditQuery(AdminQuery):
    actor: Text(200, allow_empty=True) = ""
    action: Text(200, allow_empty=True) = ""
    target: Text(200, allow_empty=True) = ""
    from_: Text(200, allow_empty=True) = Field("", alias="from")
    to: Text(200, allow_empty=True) = ""
    page: LenientId = None


class ExplainQuery(AdminQuery):
    user: Text(200, allow_empty=True) | None = None
    ticket: Text(200, allow_empty=True) | None = None


class OutboxQuery(AdminQuery):
    status: Text(40, allow_empty=True) = ""


class TicketLookup(AdminQuery):
    id: Text(40, allow_empty=True) = ""
