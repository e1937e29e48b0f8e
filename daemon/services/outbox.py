"""The mail outbox as an administrator handles it: list it, re-queue a failed mail."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import asyncpg

from daemon.formatting import plain
from daemon.queries import audit as audit_q
from daemon.queries import outbox as outbox_q
from daemon.services.common import AdminError, change

OUTBOX_STATUSES: tuple[str, ...] = ("queued", "sent", "failed")
OUTBOX_LIST_LIMIT = 100


def _outbox_dict(row: asyncpg.Record) -> dict[str, Any]:
    result = plain(dict(row))
    # asyncpg hands jsonb over as text; show it as the object it is
    if isinstance(result.get("payload"), str):
        with contextlib.suppress(ValueError):
            result["payload"] = json.loads(result["payload"])
    return result


async def list_outbox(conn: asyncpg.Connection, *, status: str | None = None,
                      limit: int = OUTBOX_LIST_LIMIT) -> list[dict[str, Any]]:
    if status is not None and status not in OUTBOX_STATUSES:
        raise AdminError(f'unknown outbox status "{status}" (statuses: {", ".join(OUTBOX_STATUSES)})')
    if limit < 1:
        raise AdminError("the limit must be at least 1")
    return [_outbox_dict(r) for r in await outbox_q.list_rows(conn, status=status, limit=limit)]


async def retry_outbox(conn: asyncpg.Connection, *, actor: str, outbox_id: int) -> dict[str, Any]:
    async with change(conn):
        row = await outbox_q.get_for_update(conn, outbox_id)
        if row is None:
            raise AdminError(f"unknown outbox mail {outbox_id}")
        if row["status"] != "failed":
            raise AdminError(f"outbox mail {outbox_id} is {row['status']}, not failed; only failed "
                             "mail can be retried")
        updated = await outbox_q.requeue(conn, outbox_id)
        await audit_q.record(conn, actor=actor, action="outbox.retry", target=f"outbox:{outbox_id}",
                             before={"status": row["status"],
                                     "next_attempt_at": plain(row["next_attempt_at"])},
                             after={"status": updated["status"],
                                    "next_attempt_at": plain(updated["next_attempt_at"])})
    return _outbox_dict(updated)
