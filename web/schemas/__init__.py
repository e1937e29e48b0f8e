"""Every request body and query string of the API and the forms, defined once as a pydantic
model: web/input.py validates with them (strictly for JSON, laxly for forms), and the OpenAPI
document (web/openapi.py) publishes their JSON Schemas as its components. A JSON body and an
HTML form of the same action are the same model. Types, lengths and control characters are
checked here, before anything is authorised (web/ticket_actions.py does that, with the ticket
in hand).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.queries import tickets as q
from web.errors import ApiError
from web.input import MAX_ID, invalid, parse_id
from web.schemas.totp import TotpCode
from web.schemas.types import Amount, Body, Id, Query, Secret, Text

__all__ = ["Amount", "Body", "Id", "Query", "Secret", "Text"]

MAX_DESCRIPTION_CHARS = 20000
MAX_NOTE_CHARS = 20000
MAX_CHARGE_DESCRIPTION_CHARS = 2000
MAX_SUBJECT_CHARS = 1000
MAX_EMAIL_BODY_CHARS = 200_000
MAX_ADDRESS_CHARS = 2000
MAX_SEARCH_CHARS = 200
MAX_LIST_ITEMS = 200
DEFAULT_PAGE = 50
MAX_TICKET_PAGE = q.MAX_PAGE  # (a field of TicketQuery is named q)
MAX_PAGE = 200
MAX_OFFSET = 10_000_000  # far beyond any real list; keeps the number a plain bigint

# Bounds of a charge: beyond them a value is a typo, not work done.
MAX_HOURS = Decimal("1000")
MAX_RATE = Decimal("10000")
MAX_AMOUNT = Decimal("1000000")
MAX_QUANTITY = Decimal("100000")
MAX_UNIT_PRICE = Decimal("1000000")
CHARGE_FIELDS = {"labor": ("hours", "rate"), "expense": ("amount",), "part": ("quantity", "unit_price")}

TICKET_FIELDS = ("description", "priority", "asset_id", "status", "assigned_to")

# -- session -------------------------------------------------------------------------------------


class Login(Body):
    username: Secret
    password: Secret


class PasswordChange(Body):
    current: Secret
    new: Secret


class PasswordForm(Body):
    """The change-password page: the new one twice."""

    current: Secret = ""
    new: Secret = ""
    repeat: Secret = ""
    username: Secret = ""  # hidden, for password managers


class LoginForm(Body):
    username: Secret = ""
    password: Secret = ""
    next: Text(2000, allow_empty=True) = ""
    csrf_token: Text(256, allow_empty=True) = ""


class MailSettingsChange(Body):
    """The settings to change; the others stay (a form sends every box: unticked is off)."""

    alert_assigned: bool = False
    alert_created: bool = False
    alert_reminder: bool = False
    alert_digest: bool = False
    recv_note: bool = False
    recv_status: bool = False
    recv_closed: bool = False
    recv_email: bool = False
    recv_charge: bool = False
    recv_own_changes: bool = False

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_off(cls, value: Any, info: ValidationInfo) -> Any:
        return False if value == "" and (info.context or {}).get("form") else value

    def sent(self) -> dict[str, bool]:
        return {k: getattr(self, k) for k in sorted(self.model_fields_set)}


# -- tickets -------------------------------------------------------------------------------------

Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["open", "in_progress", "waiting", "closed"]
assert set(get_args(Priority)) == set(q.PRIORITIES) and set(get_args(Status)) == set(q.STATUSES)


class TicketQuery(Query):
    """`GET /api/v1/tickets`: status (open · closed · a status · all), q, account_id, assigned
    (employees: me, the default, or any), limit (1…200, default 50), cursor."""

    status: Literal["open", "in_progress", "waiting", "closed", "all"] | None = Field(
        None, description="`open`: every status but closed; default all")
    q: Text(MAX_SEARCH_CHARS, allow_empty=True) = Field(
        "", description="text in the number, description or a history note the user may see")
    account_id: Id | None = Field(None, description="only this account's tickets")
    assigned: Literal["me", "any"] = Field(
        "me", description="employees: tickets assigned to them (default) or every ticket in "
                          "their scope")
    limit: Annotated[int, Field(ge=1, le=MAX_TICKET_PAGE)] = Field(
        DEFAULT_PAGE, description="page size; above 200 is refused (422)")
    cursor: Text(64, allow_empty=True) = Field("", description="`next_cursor` of the previous page")

    def filter(self, *, employee: bool) -> q.TicketFilter:
        # SPEC §3: employees list the tickets assigned to them unless they ask for more
        return q.TicketFilter(status=None if self.status in (None, "all") else self.status,
                              q=self.q or None, account_id=self.account_id,
                              assigned_to_me=employee and self.assigned == "me", limit=self.limit,
                              after_id=decode_cursor(self.cursor) if self.cursor else None)


class PageQuery(Query):
    """Paging of the other lists: limit (1…200, default 50), offset."""

    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = Field(
        DEFAULT_PAGE, description="page size; above 200 is refused (422)")
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = Field(0, description="items to skip")


def _lenient_id(value: Any) -> int | None:
    return parse_id(value) if isinstance(value, str) else None


def _truncated(limit: int) -> Any:
    return BeforeValidator(lambda v: v[:limit] if isinstance(v, str) else v)


# a filter of a page's link: a bad one is simply ignored
LenientId = Annotated[int | None, BeforeValidator(_lenient_id)]


class TicketListPage(Query):
    """The ticket list page's query string, read leniently: an unknown value falls back to
    the default (status and mine are checked against the user's choices by the page); only
    a search text that cannot be searched is refused."""

    REPEATED: ClassVar[str] = "last"
    status: Text(40, allow_empty=True) = "open"
    q: Annotated[Text(MAX_SEARCH_CHARS, allow_empty=True), _truncated(MAX_SEARCH_CHARS)] = ""
    account: LenientId = None
    mine: Text(10, allow_empty=True) = "1"
    cursor: LenientId = None


def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid("cursor", "is not a cursor this server gave out") from None
    if not raw.startswith("t") or not raw[1:].isascii() or not raw[1:].isdigit() \
            or len(raw) > 20 or not 0 < int(raw[1:]) <= MAX_ID:
        raise invalid("cursor", "is not a cursor this server gave out")
    return int(raw[1:])


class NewTicket(Body):
    description: Text(MAX_DESCRIPTION_CHARS, multiline=True)
    account_id: Id | None = None
    priority: Priority | None = None
    asset_id: Id | None = None
    assigned_to: Id | None = None


class TicketChange(Body):
    """The fields a PATCH (or form) sends; a field not sent stays, null clears it."""

    description: Text(MAX_DESCRIPTION_CHARS, multiline=True) = None
    priority: Priority = None
    asset_id: Id | None = None
    status: Status = None
    assigned_to: Id | None = None

    @model_validator(mode="after")
    def _something(self) -> TicketChange:
        if not self.model_fields_set:
            raise ApiError(422, f"nothing to change: send at least one of {', '.join(TICKET_FIELDS)}")
        return self

    def sent(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TICKET_FIELDS if k in self.model_fields_set}


class Close(Body):
    note: Text(MAX_NOTE_CHARS, multiline=True, allow_empty=True) | None = None


class NewNote(Body):
    body: Text(MAX_NOTE_CHARS, multiline=True)


@dataclass(frozen=True)
class Charge:
    """A charge to log: quantity × unit_price (None: labor at the employee's own rate)."""

    kind: str
    quantity: Decimal
    unit_price: Decimal | None
    description: str = ""


class NewCharge(Body):
    """labor: hours × rate (default: the employee's hourly rate); expense: one amount;
    part: quantity × unit_price."""

    kind: Literal["labor", "expense", "part"]
    description: Text(MAX_CHARGE_DESCRIPTION_CHARS, allow_empty=True) = ""
    hours: Amount(above=Decimal(0), maximum=MAX_HOURS) | None = None
    rate: Amount(minimum=Decimal(0), maximum=MAX_RATE) | None = None
    amount: Amount(above=Decimal(0), maximum=MAX_AMOUNT) | None = None
    quantity: Amount(above=Decimal(0), maximum=MAX_QUANTITY) | None = None
    unit_price: Amount(minimum=Decimal(0), maximum=MAX_UNIT_PRICE) | None = None

    @model_validator(mode="before")
    @classmethod
    def _fields_of_the_kind(cls, data: Any) -> Any:
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind in CHARGE_FIELDS:
            for other in (n for names in CHARGE_FIELDS.values() for n in names):
                if other in data and other not in CHARGE_FIELDS[kind]:
                    raise invalid(other, f"is not a field of {kind} charges "
                                         f"(they take {', '.join(CHARGE_FIELDS[kind])})")
            for required in CHARGE_FIELDS[kind]:
                if required != "rate" and data.get(required) is None:
                    raise invalid(required, "is required")
        return data

    def charge(self) -> Charge:
        if self.kind == "labor":
            quantity, unit_price = self.hours, self.rate
        elif self.kind == "expense":
            quantity, unit_price = Decimal("1.00"), self.amount
        else:
            quantity, unit_price = self.quantity, self.unit_price
        assert quantity is not None
        return Charge(kind=self.kind, quantity=quantity, unit_price=unit_price,
                      description=self.description)


class NewEmail(Body):
    # from/to end up in mail headers: the one-line text refuses CR and LF
    subject: Text(MAX_SUBJECT_CHARS)
    body: Text(MAX_EMAIL_BODY_CHARS, multiline=True)
    from_addr: Text(MAX_ADDRESS_CHARS, allow_empty=True) = Field("", alias="from")
    to_addr: Text(MAX_ADDRESS_CHARS, allow_empty=True) = Field("", alias="to")
    public: bool = False


class RecipientsChange(Body):
    employee_ids: Annotated[list[Id], Field(max_length=MAX_LIST_ITEMS)]

    def ids(self) -> list[int]:
        return list(dict.fromkeys(self.employee_ids))  # distinct, in the order given


class UploadFields(Body):
    """The text fields beside a multipart upload's `file`."""

    public: bool | None = None


# the models the OpenAPI document publishes as request components, by component name
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "Login": Login, "PasswordChange": PasswordChange, "MailSettingsChange": MailSettingsChange,
    "NewTicket": NewTicket, "TicketChange": TicketChange, "Close": Close, "NewNote": NewNote,
    "NewCharge": NewCharge, "NewEmail": NewEmail, "RecipientsChange": RecipientsChange,
    "TotpCode": TotpCode,
}
