"""The audit table read back for the admin pages: filtered, newest first, a page at a time.
(Rows are written by daemon/queries/audit.py.)"""

from __future__ import annotations

from datetime import datetime

import asyncpg


def _like(text: str) -> str:
    """`text` as a literal inside an ILIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(conn: asyncpg.Connection, *, actor: str = "", action: str = "", target: str = "",
                 since: datetime | None = None, until: datetime | None = None,
                 limit: int = 50, offset: int = 0) -> list[asyncpg.Record]:
    """Rows whose actor and target contain the given text, whose action starts with `action`
    (so "group." finds every group change), at or after `since` and before `until`."""
    return await conn.fetch(
        """SELECT id, at, actor, action, target, before, after, ip
             FROM audit_log
            WHERE ($1 = '' OR actor ILIKE '%' || $1 || '%')
              AND ($2 = '' OR action ILIKE $2 || '%')
              AND ($3 = '' OR target ILIKE '%' || $3 || '%')
              AND ($4::timestamptz IS NULL OR at >= $4)
              AND ($5::timestamptz IS NULL OR at < $5)
            ORDER BY at DESC, id DESC
            LIMIT $6 OFFSET $7""",
        _like(actor), _like(action), _like(target), since, until, limit, offset)


async def actions(conn: asyncpg.Connection) -> list[str]:
    """The actions that occur, for the filter's suggestions."""
    return [r["action"] for r in await conn.fetch(
        "SELECT DISTINCT action FROM audit_log ORDER BY action")]
