"""The audit table: who changed what, with the state before and after."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def record(conn: asyncpg.Connection, *, actor: str, action: str, target: str,
                 before: Any = None, after: Any = None, ip: str = "") -> None:
    await conn.execute(
        """INSERT INTO audit_log (actor, action, target, before, after, ip)
           VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)""",
        actor, action, target,
        None if before is None else json.dumps(before, default=str),
        None if after is None else json.dumps(after, default=str),
        ip,
    )
