"""The value types of config.toml's keys: each turns what TOML, an environment variable or a
credential file holds into a value, or refuses it with a message that names what it expected."""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def refuse(problem: str) -> PydanticCustomError:
    # the text goes in the context: a value quoted in it must not be read as a placeholder
    return PydanticCustomError("portald_config", "{problem}", {"problem": problem})


def _whole_number(raw: Any) -> int:
    # TOML has integers; the environment and credential files have text
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise refuse(f"must be a whole number (got {raw!r})")


def _true_or_false(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise refuse(f"must be true or false (got {raw!r})")


def _text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    raise refuse(f"must be a string (got {raw!r})")


def _networks(raw: Any) -> tuple[str, ...]:
    # TOML gives a list; the environment and credential files a comma-separated line (or JSON)
    if isinstance(raw, str):
        text = raw.strip()
        raw = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
    if not isinstance(raw, list | tuple):
        raise refuse(f"must be a list of addresses or networks such as \"10.0.0.0/8\" (got {raw!r})")
    try:
        return tuple(str(ipaddress.ip_network(str(item).strip(), strict=False)) for item in raw)
    except ValueError as exc:
        raise refuse(f"not an IP address or network: {exc}") from None


MAX_WORKERS = 256


def _worker_count(raw: Any) -> int:
    """[http] workers: a whole number of processes, or "auto" for one per CPU this process
    may run on (its affinity, which a container or `taskset` may narrow)."""
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        count = _whole_number(raw)
    except PydanticCustomError:
        raise refuse(f'must be a whole number or "auto" (got {raw!r})') from None
    if not 1 <= count <= MAX_WORKERS:
        raise refuse(f'must be 1..{MAX_WORKERS} or "auto" (got {count})')
    return count


Int = Annotated[int, BeforeValidator(_whole_number)]
Workers = Annotated[int, BeforeValidator(_worker_count)]
# NoDecode: the environment's text goes to _networks as it is, not through JSON first
Networks = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_networks)]
Bool = Annotated[bool, BeforeValidator(_true_or_false)]
Str = Annotated[str, BeforeValidator(_text)]
