"""How the pages write numbers, times and sizes. Registered once as template globals in
`web.routes.setup_web`, so every page formats a value the same way."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


def money(value: Decimal | int | float | None) -> str:
    return "" if value is None else f"{Decimal(value):,.2f}"


def amount_input(value: Decimal | int | float | None) -> str:
    """A number as a form field's value: no thousands separator, so it reads back."""
    return "" if value is None else f"{Decimal(value):.2f}"


def when(value: datetime | date | None) -> str:
    """A time in UTC to the minute (isoformat is the fastest way there); a date as itself."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(" ", "minutes")[:16]
    return value.isoformat()


def when_utc(value: datetime | date | None) -> str:
    """As `when`, with the zone named after a time (pages that do not say it elsewhere)."""
    text = when(value)
    return f"{text} UTC" if isinstance(value, datetime) else text


def when_seconds(value: datetime | None) -> str:
    """A time in UTC to the second, for logs where events come close together."""
    return "" if value is None else value.astimezone(UTC).isoformat(" ", "seconds")[:19]


def file_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


TEMPLATE_GLOBALS: dict[str, Any] = {
    "money": money, "amount_input": amount_input, "when": when, "when_utc": when_utc,
    "file_size": file_size,
}
