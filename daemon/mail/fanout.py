"""Fan-out: turns the events the database recorded (mail_events, written by triggers) into
outbox rows, one per recipient, in the transaction that marks the events done.

Who receives what:
- assigned → the new assignee (alert_assigned);
- created → every employee whose alert_created is on;
- note, status, closed, email, charge → the ticket's recipients, each by their own recv_*;
- reminder, digest → the employee the scheduler named (alert_reminder, alert_digest).
Then, for everyone: the actor is left out unless recv_own_changes; inactive employees and
anyone who may not see the ticket (scope.tickets) — or, for notes, charges and emails, that
row (scope.children: a subcontractor never learns of others' notes or charges) — get nothing.
The access rule itself lives in daemon/access/scope.py only; this module just asks it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from daemon.access.principals import load_employees
from daemon.access.scope import Principal
from daemon.mail.batch import OWN_ADDRESS_REASON
from daemon.mail.identity import MailIdentity, new_message_id
from daemon.mail.values import payload_of
from daemon.mail.visibility import CHILD_TABLE_OF_EVENT, Visible, visible_for
from daemon.queries import events as events_q
from daemon.queries import mail as mail_q

log = logging.getLogger("portald.fanout")

FANOUT_BATCH = 500  # events expanded per transaction

SETTING_OF_EVENT = {
    "assigned": "alert_assigned",
    "created": "alert_created",
    "reminder": "alert_reminder",
    "digest": "alert_digest",
    "note": "recv_note",
    "status": "recv_status",
    "closed": "recv_closed",
    "email": "recv_email",
    "charge": "recv_charge",
}
RECIPIENT_LIST_EVENTS = frozenset({"note", "status", "closed", "email", "charge"})

Pair = tuple[asyncpg.Record, Principal]


@dataclass(frozen=True)
class FanOutResult:
    events: int = 0
    mails: int = 0  # outbox rows queued
    dropped: int = 0  # outbox rows recorded as failed (own From address)


def _candidates(ev: Mapping[str, Any], recipients: Mapping[int, list[int]],
                created_alerts: Sequence[int]) -> list[int]:
    event = ev["event"]
    if event == "assigned":
        to = payload_of(ev).get("to")
        return [int(to)] if to is not None else []
    if event == "created":
        return list(created_alerts)
    if event in RECIPIENT_LIST_EVENTS:
        return recipients.get(ev["ticket_id"], [])
    if event in ("reminder", "digest"):
        return [ev["employee_id"]] if ev["employee_id"] is not None else []
    return []


def _wants_it(ev: Mapping[str, Any], settings: Mapping[str, Any] | None, p: Principal | None) -> bool:
    if settings is None or p is None or not p.active:
        return False
    if not settings[SETTING_OF_EVENT[ev["event"]]]:
        return False
    # the author of a change hears of it only if they asked to
    return ev["actor_employee_id"] != p.id or settings["recv_own_changes"]


async def fan_out(conn: asyncpg.Connection, *, identity: MailIdentity,
                  limit: int = FANOUT_BATCH) -> FanOutResult:
    """Expand up to `limit` pending events in one transaction. Several instances may run this
    at once: SKIP LOCKED hands each event to exactly one of them."""
    async with conn.transaction():
        events = await events_q.claim_events(conn, limit)
        if not events:
            return FanOutResult()
        pairs, settings = await _who_wants(conn, events)
        result = await _queue(conn, events, pairs, settings, identity=identity)
        await events_q.mark_fanned_out(conn, [e["id"] for e in events])
    return result


async def _who_wants(conn: asyncpg.Connection, events: Sequence[asyncpg.Record]
                     ) -> tuple[list[Pair], dict[int, asyncpg.Record]]:
    """(event, recipient) for every recipient whose settings ask for the event, and everyone's
    settings (with their address)."""
    list_tickets = sorted({e["ticket_id"] for e in events if e["event"] in RECIPIENT_LIST_EVENTS})
    recipients = await events_q.ticket_recipients(conn, list_tickets) if list_tickets else {}
    created_alerts: list[int] = []
    if any(e["event"] == "created" for e in events):
        created_alerts = await events_q.created_alert_employees(conn)
    wanted = [(ev, _candidates(ev, recipients, created_alerts)) for ev in events]
    everyone = sorted({emp for _, emps in wanted for emp in emps})
    settings = await events_q.mail_settings(conn, everyone) if everyone else {}
    principals = await load_employees(conn, everyone)
    pairs = [(ev, principals[emp]) for ev, emps in wanted for emp in dict.fromkeys(emps)
             if _wants_it(ev, settings.get(emp), principals.get(emp))]
    return pairs, settings


async def _queue(conn: asyncpg.Connection, events: Sequence[asyncpg.Record], pairs: list[Pair],
                 settings: Mapping[int, asyncpg.Record], *, identity: MailIdentity) -> FanOutResult:
    """One outbox row per pair whose recipient may see what the event is about."""
    visible = await visible_for(conn, pairs, ids_only=True)
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [])
    mails = dropped = 0
    has_digest: dict[int, bool] = {}
    for ev, p in pairs:
        if not await _may_know(conn, ev, p, visible, has_digest):
            continue
        payload = payload_of(ev)
        payload["event_id"] = ev["id"]
        if ev["actor_employee_id"] is not None:
            payload["actor_employee_id"] = ev["actor_employee_id"]
        own = identity.is_own_address(settings[p.id]["email"])
        for col, value in zip(columns, (
                ev["event"], ev["ticket_id"], p.id, ev["subject_id"], json.dumps(payload),
                new_message_id(identity.host), "failed" if own else "queued",
                OWN_ADDRESS_REASON if own else None), strict=True):
            col.append(value)
        if own:
            dropped += 1
            log.warning("not mailing employee %d: their address is the daemon's own From address", p.id)
        else:
            mails += 1
    if mails or dropped:
        await events_q.insert_outbox_rows(conn, columns)
    return FanOutResult(events=len(events), mails=mails, dropped=dropped)


async def _may_know(conn: asyncpg.Connection, ev: asyncpg.Record, p: Principal, visible: Visible,
                    has_digest: dict[int, bool]) -> bool:
    """Whether `p` may be told of `ev`: a digest only when it has tickets to list; a ticket
    event only about a ticket (and child row) in p's scope."""
    if ev["event"] == "digest":
        if p.id not in has_digest:
            has_digest[p.id] = bool(await mail_q.digest_tickets(conn, p, limit=1))
        return has_digest[p.id]
    if visible.ticket(p, ev["ticket_id"]) is None:
        return False
    return ev["event"] not in CHILD_TABLE_OF_EVENT or visible.child(p, ev["event"],
                                                                    ev["subject_id"]) is not None
