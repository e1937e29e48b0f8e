"""The one input layer: a request's JSON body, form, query string and path ids read into the
pydantic models of web/schemas/. JSON is validated strictly (a number is not a string),
forms and query strings laxly (they carry only text: "12", "on"). Every refusal is one
`ApiError`: 400/413/415 for a body that cannot be read at all, 422 naming the field otherwise
(`"<field>: <problem>"`, with `field` set, so the API client and the form beside the input
both know where).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from web.errors import ApiError, not_found

MAX_JSON_BYTES = 2 * 1024 * 1024
MAX_ID = 2**63 - 1
M = TypeVar("M", bound=BaseModel)

# pydantic's error types, said the way the rest of the portal says them
_PROBLEMS: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "none_required": "must be null",
}


def invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, f"{field}: {problem}", field=field)


def _problem(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "portald":
        return str(ctx.get("problem", error["msg"]))
    if kind in _PROBLEMS:
        return _PROBLEMS[kind]
    if kind == "literal_error":
        return f"must be one of {str(ctx.get('expected', '')).replace(' or ', ', ')}".replace("'", "")
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    return error["msg"][:1].lower() + error["msg"][1:]


def refusal(exc: ValidationError) -> ApiError:
    """The first problem of a validation error as a 422 naming its field."""
    error = exc.errors(include_url=False)[0]
    names = [str(part) for part in error["loc"] if isinstance(part, str)]
    field = names[0] if names else "body"
    return invalid(field, _problem(error))


def validate(model: type[M], data: Any, *, form: bool = False) -> M:
    """`data` as a `model`: strictly from JSON, laxly from a form or a query string."""
    try:
        return model.model_validate(data, strict=not form, context={"form": form})
    except ValidationError as exc:
        raise refusal(exc) from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply") from None


# -- bodies ------------------------------------------------------------------------------------


async def read_limited(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `max_bytes`, whether it
    announced its length or comes chunked."""
    too_large = ApiError(413, f"the request body is larger than {max(1, max_bytes // 1024)} KiB")
    if (request.content_length or 0) > max_bytes:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def json_body(request: web.Request, *, allow_empty: bool = False,
                    max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object. 415 unless sent as application/json in UTF-8; 400 when it is
    not valid JSON or not an object; 413 over `max_bytes`. `allow_empty`: no body reads as
    `{}` (actions whose every field is optional)."""
    if allow_empty and not request.body_exists:
        return {}
    if request.content_type != "application/json":
        raise ApiError(415, "send the request body as application/json")
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise ApiError(415, "send the request body as UTF-8")
    raw = await read_limited(request, max_bytes)
    if allow_empty and not raw.strip():
        return {}
    try:
        # Decimal keeps "12.345" exactly as sent, so the decimals check sees what was sent.
        body = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


async def read_json(request: web.Request, model: type[M], *, allow_empty: bool = False,
                    max_bytes: int = MAX_JSON_BYTES) -> M:
    return validate(model, await json_body(request, allow_empty=allow_empty, max_bytes=max_bytes))


def form_values(data: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """A posted form (or query string) as a dict for `model`: a field declared as a list takes
    every value of its name; any other takes its one value, or, when the model says so
    (`REPEATED = "last"`: a hidden "off" before a checkbox's "on"), the last one. Files are
    not text and are left to the upload reader."""
    getall = getattr(data, "getall", None)
    last = getattr(model, "REPEATED", "refuse") == "last"
    lists = {name for name, f in model.model_fields.items()
             if getattr(f.annotation, "__origin__", None) is list or "list[" in str(f.annotation)}
    aliases = {f.alias or name: name for name, f in model.model_fields.items()}
    out: dict[str, Any] = {}
    for key in dict.fromkeys(data.keys()):
        if key == "csrf_token" and key not in aliases:
            continue  # checked by the CSRF middleware
        values = [v for v in (getall(key) if getall else [data[key]]) if isinstance(v, str)]
        if aliases.get(key, key) in lists:
            out[key] = [v for v in values if v != ""]
        elif len(values) > 1 and not last:
            raise invalid(key, "given more than once")
        elif values:
            out[key] = values[-1]
    return out


async def posted(request: web.Request) -> Mapping[str, Any]:
    """The request's form fields (aiohttp's request.post(), cached): a body aiohttp cannot
    parse as the form it claims to be (a bad boundary, a part without its headers, a charset
    that does not exist) is the client's mistake, 400, not a 500."""
    try:
        return await request.post()
    except (ValueError, LookupError, AssertionError, HttpProcessingError):
        raise ApiError(400, "the form body is malformed") from None


def read_form_data(data: Mapping[str, Any], model: type[M]) -> M:
    return validate(model, form_values(data, model), form=True)


async def read_form(request: web.Request, model: type[M]) -> M:
    """An HTML form post (urlencoded or multipart text fields); its CSRF field is ignored."""
    return read_form_data(await posted(request), model)


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string, read like a form."""
    return read_form_data(request.query, model)


# -- path ids ----------------------------------------------------------------------------------


def path_id(request: web.Request, name: str = "id") -> int:
    """An id in the URL path: ASCII digits of a positive bigint, anything else simply not
    found (the route patterns take [0-9]+, and Unicode digits such as "٣" are not ids)."""
    return parse_id(request.match_info.get(name, "")) or _raise_not_found()


def parse_id(text: str | None) -> int | None:
    """A positive bigint written in ASCII digits, or None."""
    text = (text or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def _raise_not_found() -> int:
    raise not_found()
