"""What the ticket API and the ticket forms take: each request body or query read from
`Fields` (web/validation.py) into a small frozen value, checked for types, lengths and control
characters before anything is authorised (web/ticket_actions.py does that, with the ticket in
hand). A JSON body and an HTML form of the same action read the same way."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from daemon.access.scope import Principal
from daemon.queries import tickets as q
from web.errors import ApiError
from web.validation import MAX_ID, Fields, invalid

MAX_DESCRIPTION_CHARS = 20000
MAX_NOTE_CHARS = 20000
MAX_CHARGE_DESCRIPTION_CHARS = 2000
MAX_SUBJECT_CHARS = 1000
MAX_EMAIL_BODY_CHARS = 200_000
MAX_ADDRESS_CHARS = 2000
MAX_SEARCH_CHARS = 200
DEFAULT_PAGE = 50

# Bounds of a charge: beyond them a value is a typo, not work done.
MAX_HOURS = Decimal("1000")
MAX_RATE = Decimal("10000")
MAX_AMOUNT = Decimal("1000000")
MAX_QUANTITY = Decimal("100000")
MAX_UNIT_PRICE = Decimal("1000000")
CHARGE_FIELDS = {"labor": ("hours", "rate"), "expense": ("amount",), "part": ("quantity", "unit_price")}

TICKET_FIELDS = ("description", "priority", "asset_id", "status", "assigned_to")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a field the request did not send (None means "set it to null")



def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid("cursor", "is not a cursor this server gave out") from None
    if not raw.startswith("t") or not raw[1:].isdigit() or not 0 < int(raw[1:]) <= MAX_ID:
        raise invalid("cursor", "is not a cursor this server gave out")
    return int(raw[1:])


def ticket_filter(fields: Fields, p: Principal) -> q.TicketFilter:
    """The list's query string: status (open · closed · a status · all), q, account_id,
    assigned (employees: me, the default, or any), limit (1…200, default 50), cursor."""
    status = fields.choice("status", ("open", "all", *q.STATUSES), required=False)
    text = fields.text("q", max_len=MAX_SEARCH_CHARS, required=False, allow_empty=True)
    account_id = fields.id("account_id", required=False)
    assigned = "any"
    if p.is_employee:
        # SPEC §3: employees list the tickets assigned to them unless they ask for more
        assigned = fields.choice("assigned", ("me", "any"), required=False, default="me") or "me"
    # above the maximum is refused (422), as on every other list of the API (web/pagination.py)
    limit = fields.integer("limit", required=False, minimum=1, maximum=q.MAX_PAGE,
                           default=DEFAULT_PAGE) or DEFAULT_PAGE
    cursor = fields.text("cursor", max_len=64, required=False, allow_empty=True)
    return q.TicketFilter(status=None if status in (None, "all") else status, q=text or None,
                          account_id=account_id, assigned_to_me=assigned == "me",
                          limit=limit,
                          after_id=decode_cursor(cursor) if cursor else None)


@dataclass(frozen=True)
class NewTicket:
    description: str
    account_id: int | None = None
    priority: str | None = None
    asset_id: int | None = None
    assigned_to: int | None = None

    @classmethod
    def from_fields(cls, f: Fields) -> NewTicket:
        new = cls(description=f.text("description", max_len=MAX_DESCRIPTION_CHARS, multiline=True),
                  account_id=f.id("account_id", required=False),
                  priority=f.choice("priority", q.PRIORITIES, required=False),
                  asset_id=f.id("asset_id", required=False, nullable=True),
                  assigned_to=f.id("assigned_to", required=False, nullable=True))
        f.finish()
        return new


@dataclass(frozen=True)
class TicketChanges:
    """The fields a PATCH (or form) sends; UNSET: not sent, None: clear it."""

    description: Any = UNSET
    priority: Any = UNSET
    asset_id: Any = UNSET
    status: Any = UNSET
    assigned_to: Any = UNSET

    @classmethod
    def from_fields(cls, f: Fields) -> TicketChanges:
        values: dict[str, Any] = {}
        if f.has("description"):
            values["description"] = f.text("description", max_len=MAX_DESCRIPTION_CHARS,
                                            multiline=True)
        if f.has("priority"):
            values["priority"] = f.choice("priority", q.PRIORITIES)
        if f.has("asset_id"):
            values["asset_id"] = f.id("asset_id", nullable=True)
        if f.has("status"):
            values["status"] = f.choice("status", q.STATUSES)
        if f.has("assigned_to"):
            values["assigned_to"] = f.id("assigned_to", nullable=True)
        f.finish()
        if not values:
            raise ApiError(422, f"nothing to change: send at least one of {', '.join(TICKET_FIELDS)}")
        return cls(**values)

    def sent(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TICKET_FIELDS if getattr(self, k) is not UNSET}


def closing_note(f: Fields) -> str | None:
    """The optional `note` of a close request."""
    note = f.text("note", max_len=MAX_NOTE_CHARS, multiline=True, required=False, allow_empty=True)
    f.finish()
    return note or None


def note_body(f: Fields) -> str:
    body = f.text("body", max_len=MAX_NOTE_CHARS, multiline=True)
    f.finish()
    return body


@dataclass(frozen=True)
class NewCharge:
    """labor: hours × rate (default: the employee's hourly rate); expense: one amount;
    part: quantity × unit_price."""

    kind: str
    quantity: Decimal
    unit_price: Decimal | None  # None: labor at the employee's own rate
    description: str = ""

    @classmethod
    def from_fields(cls, f: Fields) -> NewCharge:
        kind = f.choice("kind", q.CHARGE_KINDS)
        assert kind is not None
        for other, names in CHARGE_FIELDS.items():
            for name in names:
                if other != kind and f.has(name) and name not in CHARGE_FIELDS[kind]:
                    raise invalid(name, f"is not a field of {kind} charges "
                                        f"(they take {', '.join(CHARGE_FIELDS[kind])})")
        description = f.text("description", max_len=MAX_CHARGE_DESCRIPTION_CHARS,
                             required=False, allow_empty=True)
        if kind == "labor":
            quantity = f.decimal("hours", above=Decimal(0), maximum=MAX_HOURS)
            unit_price = f.decimal("rate", required=False, minimum=Decimal(0), maximum=MAX_RATE)
        elif kind == "expense":
            quantity = Decimal("1.00")
            unit_price = f.decimal("amount", above=Decimal(0), maximum=MAX_AMOUNT)
        else:
            quantity = f.decimal("quantity", above=Decimal(0), maximum=MAX_QUANTITY)
            unit_price = f.decimal("unit_price", minimum=Decimal(0), maximum=MAX_UNIT_PRICE)
        f.finish()
        assert quantity is not None
        return cls(kind=kind, quantity=quantity, unit_price=unit_price, description=description)


@dataclass(frozen=True)
class NewEmail:
    subject: str
    body: str
    from_addr: str = ""
    to_addr: str = ""
    public: bool = False

    @classmethod
    def from_fields(cls, f: Fields) -> NewEmail:
        # from/to end up in mail headers: the single-line reader refuses CR and LF
        new = cls(subject=f.text("subject", max_len=MAX_SUBJECT_CHARS),
                  body=f.text("body", max_len=MAX_EMAIL_BODY_CHARS, multiline=True),
                  from_addr=f.text("from", max_len=MAX_ADDRESS_CHARS, required=False, allow_empty=True),
                  to_addr=f.text("to", max_len=MAX_ADDRESS_CHARS, required=False, allow_empty=True),
                  public=f.boolean("public", default=False))
        f.finish()
        return new


def recipient_ids(f: Fields) -> list[int]:
    ids = f.id_list("employee_ids")
    f.finish()
    return ids
