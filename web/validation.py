"""Reading untrusted input into typed values: a JSON object, an HTML form, a query string.

`Fields` wraps one such mapping. Each reader takes a field name and either returns a clean value
or raises `ApiError(422, "<field>: <problem>", field=<field>)`, so every refusal names its field
for the API client and for the form that shows it next to the input. `finish()` refuses fields
nobody asked for: a typo ("desciption") is an error, not a silent no-op.

JSON is strict about types (a number is not a string); forms and query strings carry only
strings, so with `form=True` the readers parse them ("12", "1.50", "on").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from web.errors import ApiError, not_found

MAX_JSON_BYTES = 2 * 1024 * 1024
MAX_ID = 2**63 - 1
MAX_LIST_ITEMS = 200

# Free text keeps newlines and tabs; every other C0 control, DEL, and lone surrogates (which
# JSON can smuggle in as "\ud800" and PostgreSQL cannot store) are refused.
_BAD_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
# One-line values (subjects, addresses) additionally refuse every kind of line break.
_BAD_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,15})(\.[0-9]{1,15})?")
_FORM_TRUE = frozenset({"1", "true", "on", "yes"})
_FORM_FALSE = frozenset({"", "0", "false", "off", "no"})


def invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, f"{field}: {problem}", field=field)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class Fields:
    """Typed, named access to one request's fields (see the module docstring)."""

    def __init__(self, data: Mapping[str, Any], *, form: bool = False,
                 ignore: Iterable[str] = ("csrf_token",)) -> None:
        self._data = data
        self._form = form
        self._read: set[str] = set(ignore)

    # -- presence ---------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self._data

    def _raw(self, name: str) -> Any:
        self._read.add(name)
        getall = getattr(self._data, "getall", None)
        if getall is not None:
            values = getall(name, [])
            if len(values) > 1:
                raise invalid(name, "given more than once")
            return values[0] if values else None
        return self._data.get(name)

    def _absent(self, name: str, value: Any) -> bool:
        return value is None and name not in self._data

    def finish(self) -> None:
        """Refuse any field no reader asked for."""
        unknown = sorted(set(self._data.keys()) - self._read)
        if unknown:
            raise invalid(unknown[0], "unknown field")

    # -- readers ----------------------------------------------------------------------------

    def text(self, name: str, *, max_len: int, required: bool = True, multiline: bool = False,
             allow_empty: bool = False, default: str = "") -> str:
        """A string, stripped. Multiline text keeps newlines (CRLF becomes LF) and tabs."""
        value = self._raw(name)
        if self._absent(name, value):
            if required:
                raise invalid(name, "is required")
            return default
        if not isinstance(value, str):
            raise invalid(name, "must be a string")
        if multiline:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
            bad = _BAD_MULTILINE.search(value)
        else:
            bad = _BAD_SINGLE_LINE.search(value)
        if bad:
            what = "line breaks" if bad.group() in "\r\n\x85\u2028\u2029" else "control characters"
            raise invalid(name, f"must not contain {what}")
        value = value.strip()
        if not value and not allow_empty:
            raise invalid(name, "must not be empty")
        if len(value) > max_len:
            raise invalid(name, f"must be at most {max_len} characters (got {len(value)})")
        return value

    def integer(self, name: str, *, required: bool = True, nullable: bool = False,
                minimum: int | None = None, maximum: int | None = None,
                default: int | None = None) -> int | None:
        """An integer; `nullable` accepts JSON null (and an empty form value) as None."""
        value = self._raw(name)
        if self._absent(name, value):
            if required:
                raise invalid(name, "is required")
            return default
        if self._form and isinstance(value, str):
            text = value.strip()
            if text == "" and nullable:
                return None
            if not re.fullmatch(r"[+-]?[0-9]{1,19}", text):
                raise invalid(name, "must be an integer")
            value = int(text)
        if value is None:
            if nullable:
                return None
            raise invalid(name, "must not be null")
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "must be an integer")
        if minimum is not None and value < minimum:
            raise invalid(name, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise invalid(name, f"must be at most {maximum}")
        return value

    def id(self, name: str, *, required: bool = True, nullable: bool = False) -> int | None:
        """A database id: a positive integer that fits a bigint."""
        return self.integer(name, required=required, nullable=nullable, minimum=1, maximum=MAX_ID)

    def decimal(self, name: str, *, required: bool = True, places: int = 2,
                minimum: Decimal | None = None, maximum: Decimal | None = None,
                above: Decimal | None = None, default: Decimal | None = None) -> Decimal | None:
        """A decimal number (JSON number or string, form string) with at most `places`
        decimals; `above` is an exclusive lower bound, `minimum` an inclusive one."""
        value = self._raw(name)
        if self._absent(name, value):
            if required:
                raise invalid(name, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
            raise invalid(name, "must be a decimal number")
        text = str(value).strip()
        match = _DECIMAL.fullmatch(text)
        if not match:
            raise invalid(name, "must be a decimal number such as 12.50")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise invalid(name, "must be a decimal number such as 12.50") from None
        fraction = match.group(2) or "."
        if len(fraction) - 1 > places:
            raise invalid(name, f"must have at most {places} decimals")
        if above is not None and number <= above:
            raise invalid(name, f"must be more than {above}")
        if minimum is not None and number < minimum:
            raise invalid(name, f"must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise invalid(name, f"must be at most {maximum}")
        return number.quantize(Decimal(1).scaleb(-places))

    def boolean(self, name: str, *, required: bool = False, default: bool = False) -> bool:
        value = self._raw(name)
        if self._absent(name, value):
            if required:
                raise invalid(name, "is required")
            return default
        if self._form and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _FORM_TRUE:
                return True
            if lowered in _FORM_FALSE:
                return False
        if isinstance(value, bool):
            return value
        raise invalid(name, "must be true or false")

    def choice(self, name: str, options: Sequence[str], *, required: bool = True,
               default: str | None = None) -> str | None:
        value = self._raw(name)
        if self._absent(name, value) or (self._form and value == "" and not required):
            if required:
                raise invalid(name, "is required")
            return default
        if not isinstance(value, str) or value not in options:
            raise invalid(name, f"must be one of {', '.join(options)}")
        return value

    def id_list(self, name: str, *, max_items: int = MAX_LIST_ITEMS) -> list[int]:
        """A list of distinct ids, in the order given. Forms send the field repeatedly."""
        self._read.add(name)
        getall = getattr(self._data, "getall", None)
        if self._form and getall is not None:
            raw: Any = [v for v in getall(name, []) if v != ""]
        else:
            raw = self._data.get(name)
            if raw is None:
                raise invalid(name, "is required")
            if not isinstance(raw, list):
                raise invalid(name, "must be a list of ids")
        if len(raw) > max_items:
            raise invalid(name, f"must have at most {max_items} items")
        ids: list[int] = []
        for item in raw:
            if self._form and isinstance(item, str) and re.fullmatch(r"[0-9]{1,19}", item.strip()):
                item = int(item.strip())
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= MAX_ID:
                raise invalid(name, "must be a list of ids")
            if item not in ids:
                ids.append(item)
        return ids


# -- request bodies -----------------------------------------------------------------------------


async def _read_limited(request: web.Request, max_bytes: int) -> bytes:
    if (request.content_length or 0) > max_bytes:
        raise ApiError(413, f"the request body is larger than {max_bytes // 1024} KiB")
    chunks, size = [], 0
    # chunked bodies carry no length: count while reading
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"the request body is larger than {max_bytes // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_fields(request: web.Request, *, allow_empty: bool = False,
                      max_bytes: int = MAX_JSON_BYTES) -> Fields:
    """The request's JSON object. 415 unless it is sent as application/json; 400 when it is
    not valid JSON or not an object; 413 over `max_bytes`. `allow_empty`: no body at all
    reads as `{}` (actions whose every field is optional)."""
    if allow_empty and not request.body_exists:
        return Fields({})
    if request.content_type != "application/json":
        raise ApiError(415, "send the request body as application/json")
    raw = await _read_limited(request, max_bytes)
    if allow_empty and not raw.strip():
        return Fields({})
    try:
        # Decimal keeps "12.345" exactly as sent, so the decimals check sees what was sent.
        body = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return Fields(body)


async def form_fields(request: web.Request) -> Fields:
    """An HTML form post (urlencoded or multipart text fields); its CSRF field is ignored."""
    return Fields(await request.post(), form=True)


def query_fields(request: web.Request) -> Fields:
    """The query string, read like a form (never `finish()`ed: links may carry extras)."""
    return Fields(request.query, form=True)


def path_id(request: web.Request, name: str = "id") -> int:
    """An id in the URL path; anything but a positive bigint is simply not found."""
    raw = request.match_info.get(name, "")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise not_found()
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise not_found()
    return value
