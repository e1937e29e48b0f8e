"""How values are written for people and for JSON: one function per kind of value, shared by
the pages, the mails, the JSON API and the CLI, so that a value reads the same everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson


def plain(value: Any) -> Any:
    """Records, decimals and times as JSON-friendly values: a decimal as a string with two
    places (every amount, rate and quantity the schema stores has two), a time in ISO 8601."""
    if isinstance(value, asyncpg.Record | Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _json_default(value: Any) -> Any:
    # orjson writes times itself, in the same ISO 8601 form as `plain`; the rest is `plain`'s
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, asyncpg.Record):
        return dict(value.items())
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def json_bytes(value: Any) -> bytes:
    """A JSON document of values `plain` takes (records, decimals, times), written by orjson:
    each value is converted once, in C, instead of by `plain` and then `json.dumps`."""
    return orjson.dumps(value, default=_json_default)


def money(value: Decimal | int | float | None) -> str:
    """An amount for reading: thousands separated, two places."""
    return "" if value is None else f"{Decimal(value):,.2f}"


def amount_input(value: Decimal | int | float | None) -> str:
    """A number as a form field's value: no thousands separator, so it reads back."""
    return "" if value is None else f"{Decimal(value):.2f}"


def when(value: datetime | date | str | None, *, seconds: bool = False, zone: bool = False) -> str:
    """A time in UTC to the minute (`seconds`: to the second, for logs where events come close
    together), followed by "UTC" with `zone` (where nothing else on the page says it). A date
    is written as itself; an ISO text (times in JSON results) is read first, and left as it is
    when it is not a time."""
    if isinstance(value, datetime):
        if not seconds and not zone:
            return _to_the_minute(value)
        return _time_text(value, seconds, zone)
    if isinstance(value, str):
        try:
            return _time_text(datetime.fromisoformat(value), seconds, zone)
        except ValueError:
            return value
    if value is None:
        return ""
    return value.isoformat()


# The texts of the times written to the minute, by instant (the timestamp: cheaper to get
# than a datetime's hash). A list page writes fifty, the same ones on every view of it, and
# writing one cost more than the rest of its row.
_MINUTE_TEXTS: dict[float, str] = {}
_MINUTE_TEXTS_KEPT = 8192


def _to_the_minute(value: datetime) -> str:
    key = value.timestamp()
    text = _MINUTE_TEXTS.get(key)
    if text is None:
        if len(_MINUTE_TEXTS) >= _MINUTE_TEXTS_KEPT:
            _MINUTE_TEXTS.clear()
        text = _MINUTE_TEXTS[key] = _time_text(value, False, False)
    return text


def _time_text(value: datetime, seconds: bool, zone: bool) -> str:
    # times from the database are in UTC already: only others are converted
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    text = value.isoformat(" ", "seconds" if seconds else "minutes")
    text = text[:19] if seconds else text[:16]
    return f"{text} UTC" if zone else text


def file_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
