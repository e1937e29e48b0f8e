"""Values taken from data into a mail: header text that cannot break a header, a ticket's
summary for a subject, and an event's payload."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

SUMMARY_MAX_CHARS = 80  # the description's first line in a subject
HEADER_MAX_CHARS = 200  # any other header value taken from data

# CR and LF would end a header; other controls and Unicode line breaks have no place either.
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def header_text(value: object, *, limit: int = HEADER_MAX_CHARS) -> str:
    """A single-line header value from data: line breaks and controls become spaces."""
    text = " ".join(_UNSAFE_IN_HEADER.sub(" ", str(value)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def summary(description: str) -> str:
    """The first non-blank line of a ticket's description, short enough for a subject."""
    for line in description.splitlines():
        if line.strip():
            return header_text(line, limit=SUMMARY_MAX_CHARS)
    return ""


def payload_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's jsonb payload as a dict (asyncpg hands jsonb over as text unless told)."""
    value = row["payload"]
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})
