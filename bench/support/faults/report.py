"""The figures of the fault bench, drawn after the run from three records: the database (outbox
rows, the events that caused them and their commit timestamps), the SMTP sink (every
acceptance with its time and Message-ID) and the load's log of portal requests.

Attribution. A mail belongs to the phase in which its change was committed. A mail accepted
more than once is charged to the first fault that followed its first acceptance (the fault
that lost the record of it). A request belongs to the phase in which it started.
"""

from __future__ import annotations

import bisect
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.support.faults.load import (
    DROPPED,
    HTTP_ERROR,
    OK,
    REFUSED,
    TIMEOUT,
    UNAVAILABLE,
    Request,
)

NORMAL_DELAY_S = 2.0  # a mail slower than this (commit → accepted) is not "at the normal rate"
EXAMPLES = 3  # error examples printed per phase

MAILS_SQL = """
    SELECT o.id, o.message_id, o.status, o.last_error,
           extract(epoch FROM coalesce(pg_xact_commit_timestamp(b.xmin), e.created_at))::float8
               AS committed,
           pg_xact_commit_timestamp(b.xmin) IS NOT NULL AS exact
      FROM outbox o
      JOIN mail_events e ON e.id = (o.payload->>'event_id')::bigint
      LEFT JOIN bench_event_commits b ON b.event_id = e.id
     WHERE e.id > $1"""

EVENTS_SQL = """
    SELECT e.id, e.event, e.ticket_id, e.actor_employee_id, (e.payload->>'to')::bigint AS to_id,
           e.fanned_out, e.error, count(o.id) AS mails
      FROM mail_events e
      LEFT JOIN outbox o ON (o.payload->>'event_id')::bigint = e.id
     WHERE e.id > $1
     GROUP BY e.id"""


@dataclass
class Phase:
    name: str
    kind: str  # baseline · kill · smtp · pg · terminate
    start: float
    end: float = 0.0
    fault_at: float | None = None
    fault_done: float | None = None  # the fault's action completed (killed, stopped, restarted)
    ready_at: float | None = None  # /readyz answered 200 again
    burst_at: float | None = None
    leased: dict[int, float] = field(default_factory=dict)  # outbox id → lease end, at a kill
    queued_at_fault: int = 0  # outbox rows queued, at a kill
    pending_at_fault: int = 0  # events not yet expanded into outbox rows, at a kill
    notes: list[str] = field(default_factory=list)


@dataclass
class Mail:
    outbox_id: int
    message_id: str
    status: str
    committed: float
    exact: bool  # commit timestamp (else the transaction's start)
    last_error: str | None
    accepts: list[float] = field(default_factory=list)

    @property
    def first(self) -> float | None:
        return self.accepts[0] if self.accepts else None

    @property
    def delay(self) -> float | None:
        return None if not self.accepts else self.accepts[0] - self.committed


@dataclass
class Run:
    phases: list[Phase]
    mails: list[Mail]
    requests: list[Request]
    down: list[tuple[float, float]]  # the daemon was not running (killed or exited)
    fanout_short: list[str]  # events that did not produce the mails their recipients call for
    fanout_missing: int  # the mails those events are short of
    batch_size: int
    events: int = 0


# -- collecting ------------------------------------------------------------------------------


async def collect_mails(conn: asyncpg.Connection, first_event: int,
                        accepted: list[tuple[float, str, str]]) -> list[Mail]:
    by_mid: dict[str, list[float]] = {}
    for at, mid, _ in accepted:
        by_mid.setdefault(mid, []).append(at)
    mails = []
    for r in await conn.fetch(MAILS_SQL, first_event):
        mails.append(Mail(r["id"], r["message_id"], r["status"], r["committed"], r["exact"],
                          r["last_error"], sorted(by_mid.get(r["message_id"], []))))
    return sorted(mails, key=lambda m: m.committed)


async def check_fanout(conn: asyncpg.Connection, first_event: int,
                       recipients: dict[int, set[int]]) -> tuple[int, list[str], int]:
    """Every event since the load began against what its recipients call for: a note mails
    the ticket's recipients, an assignment the new assignee, the actor left out (nobody here
    asked for mail of their own changes)."""
    short, missing = [], 0
    rows = await conn.fetch(EVENTS_SQL, first_event)
    for ev in rows:
        if ev["event"] == "note":
            who = set(recipients.get(ev["ticket_id"], set()))
        elif ev["event"] == "assigned":
            who = {ev["to_id"]} if ev["to_id"] is not None else set()
        else:
            short.append(f"event {ev['id']}: unexpected kind {ev['event']!r}")
            continue
        who.discard(ev["actor_employee_id"])
        if not ev["fanned_out"] or ev["error"]:
            short.append(f"event {ev['id']} ({ev['event']}): not expanded "
                         f"({ev['error'] or 'still pending'})")
            missing += len(who)
        elif ev["mails"] != len(who):
            short.append(f"event {ev['id']} ({ev['event']}): {ev['mails']} outbox rows, "
                         f"{len(who)} expected")
            missing += max(0, len(who) - ev["mails"])
    return len(rows), short, missing


# -- helpers ---------------------------------------------------------------------------------


def phase_index(phases: list[Phase], at: float) -> int:
    return max(0, bisect.bisect_right([p.start for p in phases], at) - 1)


def blamed_fault(phases: list[Phase], first_accept: float) -> int:
    """The first fault that completed after a mail's first acceptance."""
    for i, p in enumerate(phases):
        if p.fault_done is not None and p.fault_done >= first_accept:
            return i
    return len(phases) - 1


def overlaps(r: Request, down: list[tuple[float, float]]) -> bool:
    return any(r.start <= end and r.end >= start for start, end in down)


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


# -- per phase -------------------------------------------------------------------------------


def mail_figures(mails: list[Mail], twice: int) -> dict:
    delays = [m.delay for m in mails if m.delay is not None]
    delivered = sum(1 for m in mails if m.accepts)
    return {"expected": len(mails), "delivered": delivered, "lost": len(mails) - delivered,
            "twice": twice, "max": max(delays, default=None),
            "slow": sum(1 for d in delays if d > NORMAL_DELAY_S),
            "p50": statistics.median(delays) if delays else None}


def classify(r: Request, down: list[tuple[float, float]]) -> str:
    """ok · 503 · 5xx · status (any other unexpected) · refused · dropped-at-kill · error kinds."""
    if r.outcome in (OK, UNAVAILABLE):
        return r.outcome
    if r.outcome == HTTP_ERROR:
        return "5xx" if (r.status or 0) >= 500 else "status"
    if r.outcome in (REFUSED, DROPPED):
        return r.outcome if overlaps(r, down) else f"{r.outcome} (daemon up)"
    return r.outcome  # timeout, transport


ERROR_CLASSES = ("5xx", "status", TIMEOUT, "transport", f"{REFUSED} (daemon up)",
                 f"{DROPPED} (daemon up)")


def portal_figures(reqs: list[Request], down: list[tuple[float, float]]) -> tuple[Counter, list[Request]]:
    counts: Counter = Counter()
    errors = []
    for r in reqs:
        kind = classify(r, down)
        counts[kind] += 1
        if kind in ERROR_CLASSES:
            errors.append(r)
    counts["errors"] = len(errors)
    return counts, errors


def recovery(phase: Phase, mails: list[Mail], reqs: list[Request]) -> tuple[float | None, str]:
    """Seconds from the fault to the end of the last request that was not ok; and to the
    arrival of the last mail that was slower than NORMAL_DELAY_S ('never' if one is lost)."""
    if phase.fault_at is None:
        return None, "-"
    failed = [r.end for r in reqs if r.outcome != OK and r.end >= phase.fault_at]
    portal = max(failed) - phase.fault_at if failed else 0.0
    slow = [m for m in mails if m.delay is None or m.delay > NORMAL_DELAY_S]
    if any(m.first is None for m in slow):
        return portal, "never (mail lost)"
    last = max((m.first for m in slow), default=phase.fault_at)
    return portal, f"{max(0.0, last - phase.fault_at):.1f} s"


def leased_line(phase: Phase, by_id: dict[int, Mail]) -> str | None:
    if phase.kind != "kill" or phase.fault_at is None:
        return None
    state = (f"{phase.queued_at_fault} mails queued in all, {phase.pending_at_fault} events "
             f"not yet expanded")
    if not phase.leased:
        return f"    leased at the kill: none ({state})"
    # the daemon is dead once kill() returned (fault_done): what the sink accepted until then
    # may be the dead daemon's, whatever came later is the new daemon's
    dead = phase.fault_done or phase.fault_at
    lags, before, missing = [], 0, 0
    for oid, lease_end in phase.leased.items():
        m = by_id.get(oid)
        after = [a for a in (m.accepts if m else []) if a > dead]
        if m and any(a <= dead for a in m.accepts):
            before += 1
        if after:
            lags.append(after[0] - lease_end)
        else:
            missing += 1
    left = max(phase.leased.values()) - phase.fault_at
    text = f"    leased at the kill: {len(phase.leased)} mails (lease left <= {left:.1f} s; {state})"
    if lags:
        text += f"; sent {min(lags):+.1f} .. {max(lags):+.1f} s after their lease ran out"
    if before:
        text += f"; {before} had been accepted before the kill, unrecorded (sent again)"
    if missing:
        text += f"; {missing} never sent again after the kill"
    return text


def others_line(phase: Phase, mails: list[Mail]) -> str | None:
    if phase.kind != "kill" or phase.fault_at is None:
        return None
    rest = [m.delay for m in mails if m.outbox_id not in phase.leased and m.delay is not None]
    down = (phase.ready_at - phase.fault_at) if phase.ready_at else None
    return (f"    not leased at the kill: {len(rest)} mails, longest delay {fmt_s(max(rest, default=None))} "
            f"(daemon down {fmt_s(down)}: killed → ready)")


def print_phase(run: Run, i: int, by_id: dict[int, Mail], twice: Counter) -> None:
    p = run.phases[i]
    mails = [m for m in run.mails if phase_index(run.phases, m.committed) == i]
    reqs = [r for r in run.requests if phase_index(run.phases, r.start) == i]
    mf = mail_figures(mails, twice[i])
    pc, errors = portal_figures(reqs, run.down)
    print(f"{p.name} ({p.end - p.start:.1f} s)")
    for note in p.notes:
        print(f"    {note}")
    print(f"  mails: expected {mf['expected']}, delivered {mf['delivered']}, lost {mf['lost']}, "
          f"sent twice {mf['twice']}; longest delay {fmt_s(mf['max'])} (median {fmt_s(mf['p50'])}; "
          f"{mf['slow']} slower than {NORMAL_DELAY_S:g} s)")
    for line in (leased_line(p, by_id), others_line(p, mails)):
        if line:
            print(line)
    answered = pc[OK] + pc[UNAVAILABLE] + pc["5xx"] + pc["status"]
    print(f"  portal: {len(reqs)} requests, {answered} answered: {pc[OK]} ok, "
          f"{pc[UNAVAILABLE]} 503, {pc['5xx']} other 5xx, {pc['status']} other statuses; "
          f"not answered: {pc[REFUSED]} refused while the daemon was down, {pc[DROPPED]} dropped "
          f"in flight at the kill, {pc[TIMEOUT]} timeouts, {pc['transport']} other; "
          f"errors other than 503: {pc['errors']}")
    for r in errors[:EXAMPLES]:
        print(f"    error: {clock(r.start)} {r.who} {r.what}: {r.outcome} {r.detail[:200]}")
    portal_s, mail_s = recovery(p, mails, reqs)
    if p.fault_at is not None:
        ready = fmt_s(p.ready_at - p.fault_at) if p.ready_at else "-"
        print(f"  back to normal after the fault: portal {fmt_s(portal_s)} (last failed request), "
              f"/readyz {ready}, mail {mail_s} (last mail slower than {NORMAL_DELAY_S:.0f} s)")


# -- the whole run ---------------------------------------------------------------------------


def duplicates_by_phase(run: Run) -> Counter:
    twice: Counter = Counter()
    for m in run.mails:
        if len(m.accepts) > 1:
            twice[blamed_fault(run.phases, m.accepts[0])] += len(m.accepts) - 1
    return twice


def print_phases(run: Run) -> None:
    by_id = {m.outbox_id: m for m in run.mails}
    twice = duplicates_by_phase(run)
    for i in range(len(run.phases)):
        print_phase(run, i, by_id, twice)


def print_totals(run: Run) -> None:
    twice = duplicates_by_phase(run)
    lost = sum(1 for m in run.mails if not m.accepts) + run.fanout_missing
    dups = sum(twice.values())
    delays = [m.delay for m in run.mails if m.delay is not None]
    worst = max(delays, default=0.0)
    errors = portal_figures(run.requests, run.down)[1]
    inexact = sum(1 for m in run.mails if not m.exact)
    kills = [i for i, p in enumerate(run.phases) if p.kind == "kill"]
    per_kill = max((twice[i] for i in kills), default=0)
    not_at_kills = dups - sum(twice[i] for i in kills)
    print(f"fan-out check: {run.events} events since the load began, "
          + ("each produced the mails its recipients call for" if not run.fanout_short
             else f"{len(run.fanout_short)} did not: " + "; ".join(run.fanout_short[:5])))
    for m in [m for m in run.mails if not m.accepts][:5]:
        print(f"  lost: outbox {m.outbox_id} {m.message_id} status {m.status} "
              f"(committed {clock(m.committed)}; last error {m.last_error})")
    if inexact:
        print(f"  ({inexact} delays measured from the transaction's start: no commit timestamp)")
    delivered = sum(1 for m in run.mails if m.accepts)
    print(f"totals: mails expected {len(run.mails) + run.fanout_missing}, delivered {delivered}, "
          f"lost {lost}, sent twice {dups} (at most {per_kill} at one SIGKILL, {not_at_kills} "
          f"at other faults); longest delay {worst:.1f} s; portal requests {len(run.requests)}, "
          f"errors other than 503 {len(errors)}")
    verdict = [("lost 0", lost == 0),
               ("errors other than 503: 0", not errors),
               (f"duplicates at most one batch ({run.batch_size}) per SIGKILL",
                per_kill <= run.batch_size and not_at_kills == 0)]
    print("goal: " + "; ".join(f"{what}: {'met' if ok else 'MISSED'}" for what, ok in verdict))
    print(f"lost={lost} duplicates={dups} max_delay_s={worst:.1f} non_503_errors={len(errors)}")


def log_findings(path: Path, repo: Path, limit: int = 8) -> list[str]:
    """The daemon's ERROR lines (one line each, tracebacks folded with ' | '), grouped by
    message and final exception with numbers blanked: the first of each, shortened to its
    message, the deepest frame in the project's code and the exception."""
    groups: dict[str, list[str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        if " ERROR " not in line:
            continue
        parts = [p.strip() for p in line.split(" | ") if p.strip() and not set(p.strip()) <= set("^~")]
        own = [p for p in parts if p.startswith("File ") and str(repo) in p and "/.venv/" not in p]
        short = " … ".join(dict.fromkeys([parts[0], *own[-1:], parts[-1]]))
        short = short.replace(str(repo) + "/", "")
        key = re.sub(r"\d+", "N", parts[0].split(" ERROR ", 1)[-1][:80] + parts[-1][:80])
        groups.setdefault(key, []).append(short)
    return [f"  {len(lines)}x, first: {lines[0][:700]}"
            for lines in sorted(groups.values(), key=len, reverse=True)[:limit]]
