"""What each recipient may see of what a mail is about: the ticket for every ticket event, and
the note, charge or email itself for those events. Asked of daemon/queries/mail.py, which
applies each recipient's own scope (daemon/access/scope.py, the one access rule); this module
only gathers the questions of a batch so that each table is asked once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from daemon.access.scope import Principal
from daemon.queries import mail as mail_q

# events about a child row of the ticket, and its table
CHILD_TABLE_OF_EVENT = {"note": "history_notes", "charge": "charges", "email": "ticket_emails"}

Wants = dict[int, tuple[Principal, list[int]]]


@dataclass
class Visible:
    """The rows a batch's recipients may see: `tickets[(principal id, ticket id)]` and
    `children[table][(principal id, row id)]`."""

    tickets: dict[tuple[int, int], asyncpg.Record] = field(default_factory=dict)
    children: dict[str, dict[tuple[int, int], asyncpg.Record]] = field(default_factory=dict)

    def ticket(self, p: Principal, ticket_id: int | None) -> asyncpg.Record | None:
        return self.tickets.get((p.id, ticket_id)) if ticket_id is not None else None

    def child(self, p: Principal, event: str, subject_id: int | None) -> asyncpg.Record | None:
        """The row an event is about, if it is about one and `p` may see it."""
        table = CHILD_TABLE_OF_EVENT.get(event)
        return self.children.get(table, {}).get((p.id, subject_id)) if table else None


async def visible_for(conn: asyncpg.Connection,
                      items: Iterable[tuple[Mapping[str, Any], Principal]], *,
                      ids_only: bool = False) -> Visible:
    """For (event or outbox row, recipient) pairs: what of their tickets and child rows each
    recipient may see. `ids_only`: whether, not what (the fan-out's question)."""
    ticket_wants: Wants = {}
    child_wants: dict[str, Wants] = {}
    for row, p in items:
        if row["ticket_id"] is None:
            continue
        ticket_wants.setdefault(p.id, (p, []))[1].append(row["ticket_id"])
        table = CHILD_TABLE_OF_EVENT.get(row["event"])
        if table and row["subject_id"] is not None:
            child_wants.setdefault(table, {}).setdefault(p.id, (p, []))[1].append(row["subject_id"])
    visible = Visible(tickets=await mail_q.visible_rows(conn, "tickets", ticket_wants,
                                                         ids_only=ids_only))
    for table, wants in child_wants.items():
        visible.children[table] = await mail_q.visible_rows(conn, table, wants, ids_only=ids_only)
    return visible
