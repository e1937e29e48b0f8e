"""The keys that sign reply addresses: list them, and rotate them (a new key signs from now
on; the previous one still verifies for a grace period, so that mails already sent can be
answered)."""

from __future__ import annotations

import math
import secrets
from typing import Any

import asyncpg

from daemon.formatting import plain
from daemon.queries import audit as audit_q
from daemon.queries import reply_keys as keys_q
from daemon.services.common import AdminError, change

DEFAULT_GRACE_HOURS = 168.0  # a week: long enough to answer last week's alerts
MAX_GRACE_HOURS = 24 * 366
SECRET_BYTES = 32


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [plain(dict(r)) for r in await keys_q.listing(conn)]


async def rotate_key(conn: asyncpg.Connection, *, actor: str,
                     grace_hours: float = DEFAULT_GRACE_HOURS) -> dict[str, Any]:
    """A new signing key; reply addresses signed by the previous one verify `grace_hours`
    more hours (0: not at all)."""
    if not math.isfinite(grace_hours) or not 0 <= grace_hours <= MAX_GRACE_HOURS:
        raise AdminError(f"invalid grace period {grace_hours!r}: give hours between 0 and "
                         f"{MAX_GRACE_HOURS}")
    async with change(conn):
        new_id, previous = await keys_q.rotate(conn, secret=secrets.token_bytes(SECRET_BYTES),
                                               grace_s=grace_hours * 3600)
        result = plain({"key": new_id, "previous": previous["id"] if previous else None,
                        "previous_valid_until": previous["retires_at"] if previous else None})
        # never the secrets: only which key replaced which
        await audit_q.record(conn, actor=actor, action="inbound.rotate_key", target=f"reply_key:{new_id}",
                             after={**result, "grace_hours": grace_hours})
    return result
