"""Fixed statements kept as SQL files (daemon/queries/sql/*.sql), each under a
`-- name: NAME --` header, read once and looked up by name: SQL an editor highlights and a
reviewer reads as SQL. Statements built from parts (scope conditions, column lists) stay in the
Python modules beside these."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z0-9_]+) --$", re.MULTILINE)


@cache
def queries(filename: str) -> dict[str, str]:
    """The named statements of one file; a name given twice is a mistake caught at import."""
    text = resources.files("daemon.queries").joinpath("sql", filename).read_text()
    parts = _HEADER.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise RuntimeError(f"{filename}: the query {name} is defined twice")
        found[name] = body.strip().removesuffix(";")
    return found
