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
The access rule itself lives in daemon/scope.py only; this module just asks it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from daemon import mailer
from daemon.mailer import CHILD_TABLE_OF_EVENT, MailIdentity
from daemon.scope import Principal

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
OWN_ADDRESS_REASON = "dropped: the recipient address is the daemon's own From address (mail loop guard)"

CLAIM_EVENTS_SQL = """
    SELECT id, event, ticket_id, subject_id, employee_id, actor_employee_id, actor_webuser_id,
           payload, created_at
      FROM mail_events
     WHERE NOT fanned_out
     ORDER BY id
     LIMIT $1
       FOR UPDATE SKIP LOCKED"""

TICKET_RECIPIENTS_SQL = """
    SELECT ticket_id, employee_id FROM ticket_recipients WHERE ticket_id = ANY($1::bigint[])"""

CREATED_ALERT_SQL = "SELECT employee_id FROM employee_mail_settings WHERE alert_created"

SETTINGS_SQL = """
    SELECT s.*, e.email
      FROM employee_mail_settings s JOIN employees e ON e.id = s.employee_id
     WHERE s.employee_id = ANY($1::bigint[])"""

INSERT_OUTBOX_SQL = """
    INSERT INTO outbox (event, ticket_id, employee_id, subject_id, payload, message_id, status,
                        last_error)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::jsonb[],
                         $6::text[], $7::text[], $8::text[])"""

MARK_EVENTS_SQL = "UPDATE mail_events SET fanned_out = true WHERE id = ANY($1::bigint[])"

SKIP_EVENT_SQL = """
    UPDATE mail_events SET fanned_out = true, error = $1
     WHERE id = (SELECT id FROM mail_events WHERE NOT fanned_out
                  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id"""


@dataclass(frozen=True)
class FanOutResult:
    events: int = 0
    mails: int = 0  # outbox rows queued
    dropped: int = 0  # outbox rows recorded as failed (own From address)


def _candidates(ev: Mapping[str, Any], recipients: Mapping[int, list[int]],
                created_alerts: Sequence[int]) -> list[int]:
    event = ev["event"]
    if event == "assigned":
        to = mailer.payload_of(ev).get("to")
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
        events = await conn.fetch(CLAIM_EVENTS_SQL, limit)
        if not events:
            return FanOutResult()
        result = await _expand(conn, events, identity=identity)
        await conn.execute(MARK_EVENTS_SQL, [e["id"] for e in events])
    return result


async def _expand(conn: asyncpg.Connection, events: Sequence[asyncpg.Record], *,
                  identity: MailIdentity) -> FanOutResult:
    list_tickets = sorted({e["ticket_id"] for e in events if e["event"] in RECIPIENT_LIST_EVENTS})
    recipients: dict[int, list[int]] = {}
    if list_tickets:
        for r in await conn.fetch(TICKET_RECIPIENTS_SQL, list_tickets):
            recipients.setdefault(r["ticket_id"], []).append(r["employee_id"])
    created_alerts: list[int] = []
    if any(e["event"] == "created" for e in events):
        created_alerts = [r["employee_id"] for r in await conn.fetch(CREATED_ALERT_SQL)]

    wanted = [(ev, _candidates(ev, recipients, created_alerts)) for ev in events]
    everyone = sorted({emp for _, emps in wanted for emp in emps})
    settings = {r["employee_id"]: r for r in await conn.fetch(SETTINGS_SQL, everyone)} if everyone else {}
    principals = await mailer.load_employees(conn, everyone)

    pairs = [(ev, principals[emp]) for ev, emps in wanted for emp in dict.fromkeys(emps)
             if _wants_it(ev, settings.get(emp), principals.get(emp))]

    # What each principal may see: tickets for every ticket event, and the child row itself
    # for notes, charges and emails. One statement per table for the whole batch.
    ticket_wants: dict[int, tuple[Principal, list[int]]] = {}
    child_wants: dict[str, dict[int, tuple[Principal, list[int]]]] = {}
    for ev, p in pairs:
        if ev["ticket_id"] is None:
            continue
        ticket_wants.setdefault(p.id, (p, []))[1].append(ev["ticket_id"])
        table = CHILD_TABLE_OF_EVENT.get(ev["event"])
        if table:
            child_wants.setdefault(table, {}).setdefault(p.id, (p, []))[1].append(ev["subject_id"])
    visible_tickets = await mailer.load_visible(conn, "tickets", ticket_wants, ids_only=True)
    visible_children = {table: await mailer.load_visible(conn, table, wants, ids_only=True)
                        for table, wants in child_wants.items()}

    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [])
    mails = dropped = 0
    has_digest: dict[int, bool] = {}
    for ev, p in pairs:
        if ev["event"] == "digest":
            if p.id not in has_digest:
                has_digest[p.id] = bool(await mailer.digest_tickets(conn, p, limit=1))
            if not has_digest[p.id]:
                continue
        else:
            if (p.id, ev["ticket_id"]) not in visible_tickets:
                continue
            table = CHILD_TABLE_OF_EVENT.get(ev["event"])
            if table and (p.id, ev["subject_id"]) not in visible_children.get(table, {}):
                continue
        payload = mailer.payload_of(ev)
        payload["event_id"] = ev["id"]
        if ev["actor_employee_id"] is not None:
            payload["actor_employee_id"] = ev["actor_employee_id"]
        own = identity.is_own_address(settings[p.id]["email"])
        for col, value in zip(columns, (
                ev["event"], ev["ticket_id"], p.id, ev["subject_id"], json.dumps(payload),
                mailer.new_message_id(identity.host), "failed" if own else "queued",
                OWN_ADDRESS_REASON if own else None), strict=True):
            col.append(value)
        if own:
            dropped += 1
            log.warning("not mailing employee %d: their address is the daemon's own From address", p.id)
        else:
            mails += 1
    if mails or dropped:
        await conn.execute(INSERT_OUTBOX_SQL, *columns)
    return FanOutResult(events=len(events), mails=mails, dropped=dropped)

