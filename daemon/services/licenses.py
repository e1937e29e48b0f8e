"""Employee license seats: how many there are, how many are used, and setting the number."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.queries import audit as audit_q
from daemon.queries import licenses as licenses_q
from daemon.services.common import AdminError, change


def seats_dict(usage: asyncpg.Record) -> dict[str, Any]:
    return {"seats": usage["seats"], "in_use": usage["in_use"],
            "free": max(usage["seats"] - usage["in_use"], 0),
            "summary": f"{usage['in_use']} of {usage['seats']} seats in use"}


async def show_license(conn: asyncpg.Connection) -> dict[str, Any]:
    return seats_dict(await licenses_q.usage(conn))


async def set_license(conn: asyncpg.Connection, *, actor: str, seats: int) -> dict[str, Any]:
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 0 or seats > 2**31 - 1:
        raise AdminError(f'invalid number of seats "{seats}": give a whole number, 0 or more')
    async with change(conn):
        before = await licenses_q.usage(conn)
        if before["seats"] != seats:
            # fewer seats than are in use: the database refuses, naming both numbers
            await licenses_q.set_seats(conn, seats)
            await audit_q.record(conn, actor=actor, action="license.set", target="license",
                                 before={"seats": before["seats"]}, after={"seats": seats})
        return {**seats_dict(await licenses_q.usage(conn)), "changed": before["seats"] != seats}
