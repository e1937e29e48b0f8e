"""The building blocks of the request models: text that refuses control characters, secrets
taken as typed, ids, decimals, and the base classes of bodies, forms and query strings."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from web.input import MAX_ID

# Free text keeps newlines and tabs; every other C0 control, DEL, and lone surrogates (which
# JSON can smuggle in as "\ud800" and PostgreSQL cannot store) are refused.
_BAD_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
# One-line values (subjects, addresses) additionally refuse every kind of line break.
_BAD_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")
# What no string may hold at all, passwords included: PostgreSQL cannot store either.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,15})(\.[0-9]{1,15})?")


def refuse(problem: str) -> PydanticCustomError:
    # the text goes in the context: a value quoted in it must not be read as a placeholder
    return PydanticCustomError("portald", "{problem}", {"problem": problem})


def _text_checker(max_len: int, multiline: bool, allow_empty: bool) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise refuse("must be a string")
        if multiline:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        bad = (_BAD_MULTILINE if multiline else _BAD_SINGLE_LINE).search(value)
        if bad:
            what = "line breaks" if bad.group() in "\r\n\x85\u2028\u2029" else "control characters"
            raise refuse(f"must not contain {what}")
        value = value.strip()
        if not value and not allow_empty:
            raise refuse("must not be empty")
        if len(value) > max_len:
            raise refuse(f"must be at most {max_len} characters (got {len(value)})")
        return value
    return check


def Text(max_len: int, *, multiline: bool = False, allow_empty: bool = False) -> Any:  # noqa: N802
    """A string, stripped, within `max_len`; multiline text keeps newlines (CRLF → LF) and
    tabs, one-line text refuses every line break; no other control character either way."""
    return Annotated[str, BeforeValidator(_text_checker(max_len, multiline, allow_empty)),
                     Field(max_length=max_len, min_length=0 if allow_empty else 1)]


def _secret(value: Any) -> str:
    if not isinstance(value, str):
        raise refuse("must be a string")
    if _UNSTORABLE.search(value):
        raise refuse("must not contain NUL or lone surrogate characters")
    return value


# A user name or password as typed: never stripped; only what cannot be stored is refused
# (a name or password too long is simply wrong, web/login.py; the body limit bounds both).
Secret = Annotated[str, BeforeValidator(_secret)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _decimal_checker(places: int, minimum: Decimal | None, above: Decimal | None,
                     maximum: Decimal) -> Any:
    def check(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
            raise refuse("must be a decimal number")
        text = str(value).strip()
        match = _DECIMAL.fullmatch(text)
        if not match:
            raise refuse("must be a decimal number such as 12.50")
        number = Decimal(text)
        if len(match.group(2) or ".") - 1 > places:
            raise refuse(f"must have at most {places} decimals")
        if above is not None and number <= above:
            raise refuse(f"must be more than {above}")
        if minimum is not None and number < minimum:
            raise refuse(f"must be at least {minimum}")
        if number > maximum:
            raise refuse(f"must be at most {maximum}")
        return number.quantize(Decimal(1).scaleb(-places))
    return check


def Amount(*, maximum: Decimal, minimum: Decimal | None = None,  # noqa: N802
           above: Decimal | None = None) -> Any:
    """A decimal with at most 2 decimals, as a JSON number or string ("1.50")."""
    schema: dict[str, Any] = {"type": ["string", "number"],
                              "description": 'at most 2 decimals, e.g. "1.50"'}
    return Annotated[Decimal, BeforeValidator(_decimal_checker(2, minimum, above, maximum)),
                     WithJsonSchema(schema)]


class Body(BaseModel):
    """A request body or form: unknown fields are refused (a typo is an error, not a silent
    no-op). In a form an empty value of a field that may be null means null."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    REPEATED: ClassVar[str] = "refuse"  # a form field given twice: refused, or "last" wins

    @model_validator(mode="before")
    @classmethod
    def _blank_is_null(cls, data: Any, info: ValidationInfo) -> Any:
        if not (info.context or {}).get("form") or not isinstance(data, dict):
            return data
        nullable = {f.alias or n for n, f in cls.model_fields.items()
                    if type(None) in get_args(f.annotation) or f.annotation is type(None)}
        return {k: (None if v == "" and k in nullable else v) for k, v in data.items()}


class Query(Body):
    """A query string: extra parameters are ignored (links may carry more)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


