"""Many machines (SPEC §6): three `portald run` daemons on one PostgreSQL behind HAProxy.

Logged-in users (customers and employees of the demo data) keep a steady load of HTML pages,
JSON reads and ticket changes (assignments and notes, each making mail) going through the
balancer; one daemon is SIGKILLed while it holds a lease on mail it is sending, preferably
when the SMTP server has accepted some of that mail and the daemon has not yet marked it
sent; then it is started again. What must hold:

- No request fails but those in flight on the killed daemon. "In flight" means: the client
  had sent it before the kill and got its answer (or its failure) after; HAProxy's log says it
  was last sent to the killed daemon and that the server side ended it (termination state
  S…). Only POST, PATCH and PUT may fail that way: such a request may have been carried out
  before the daemon died, so the balancer must not replay it (see `haproxy_config`). A GET
  never fails: a GET that hit the dead daemon is retried on another one, and a request whose
  connection could not be opened was never sent and is retried whatever its method. So the
  failures are at most the changes in flight at the kill (one per writer). (HAProxy could not
  retry a GET whose answer it had begun to forward; the portal's answers are a few kB, handed
  to the kernel whole, so a daemon killed has either sent an answer or not begun it.)
- Every session keeps working with the same cookie before, during and after, whichever daemon
  serves it, the restarted one included, and always as the same user.
- Every mail is delivered exactly once, except mail that the killed daemon had claimed (its
  lease) and handed to the SMTP server but not yet marked sent when it died: that is sent once
  more, by another daemon, after the lease ran out and not before. A daemon claims mail in
  batches of [mail] batch_size, one batch per sender lane ([smtp] connections, 4 by default),
  so "at most one batch of the killed daemon" is at most its claimed batches: exactly the
  rows it held leased when it died.
- The killed daemon's leased mails go out once its lease has run out: by the lease's end plus
  one poll interval (and a little for the sending itself).
- The digest (a scheduled job), caught up at start by every daemon and again by the one
  restarted, is enqueued once.

Settings lowered for the test's time: [smtp] timeout_s = 2, so that the lease
(daemon/outbox.py: max(LEASE_MIN_S = 5 s, 2 x [smtp] timeout_s)) is 5 s instead of the 60 s
of the default timeout; [mail] poll_interval_s = 1 (its minimum); [mail] batch_size = 10.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from tests.support.scaleout import (
    DEMO_PASSWORD,
    SENDER_LANES,
    Cluster,
    Daemon,
    Load,
    Result,
    Sink,
    User,
    find_haproxy,
)

SMTP_TIMEOUT_S = 2
LEASE_S = 5.0  # max(LEASE_MIN_S, LEASE_PER_SMTP_TIMEOUT * SMTP_TIMEOUT_S) in daemon/outbox.py
POLL_INTERVAL_S = 1
BATCH_SIZE = 10
SINK_DELAY_S = 0.03  # per mail: a batch lasts long enough to be caught while being sent
SEND_SLACK_S = 1.0  # beyond the lease's end + one poll interval: claiming, rendering, sending
DAEMON_SETTINGS = f"""timeout_s = {SMTP_TIMEOUT_S}
[mail]
batch_size = {BATCH_SIZE}
poll_interval_s = {POLL_INTERVAL_S}
"""

BEFORE_S = 3.0  # load before the kill
AFTER_S = 3.0  # load after the killed daemon is back (at least)
READ_PAUSE_S = 0.02
WRITE_PAUSE_S = 0.1
BURST = 8  # notes at once, while waiting for the moment to kill
CATCH_SENT_S = 8.0  # how long to wait for leased mail already accepted, before any lease will do
DRAIN_TIMEOUT_S = 30

NOTES = itertools.count(1)  # each note's text is its own: the database tells if it was made
READERS = ("full@acme", "partial@acme", "full@globex", "admin", "tech", "sub1", "sub2")
NAMES = ("d1", "d2", "d3")
VICTIM = "d2"

HAPROXY = find_haproxy()
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="needs HAProxy (Debian: apt-get install haproxy; .ci/run installs it)")


def phase_of(r: Result, t_kill: float, t_back: float) -> str:
    return "before" if r.ended < t_kill else "during" if r.started < t_back else "after"


async def reader(load: Load, user: User, tickets: list[int]) -> None:
    """Pages and JSON, round and round; /api/v1/me checks who the session says we are."""
    targets = ["/tickets", "/api/v1/tickets", "/api/v1/me", *(f"/tickets/{t}" for t in tickets[:2])]
    i = 0
    while not load.stopping.is_set():
        path = targets[i % len(targets)]
        result, body = await load.request(user, "GET", path)
        if result.ok and path == "/api/v1/me" and (
                not isinstance(body, dict) or body.get("username") != user.username):
            result.ok, result.error = False, f"session answered as {body!r}"
        i += 1
        await asyncio.sleep(READ_PAUSE_S)


async def assigner(load: Load, user: User, moves: list[tuple[int, int, int]]) -> None:
    """PATCH assigned_to back and forth (ticket, one employee, another): alerts."""
    i = 0
    while not load.stopping.is_set():
        ticket, a, b = moves[i % len(moves)]
        await load.request(user, "PATCH", f"/api/v1/tickets/{ticket}",
                           json={"assigned_to": a if (i // len(moves)) % 2 else b})
        i += 1
        await asyncio.sleep(WRITE_PAUSE_S)


async def noter(load: Load, user: User, tickets: list[int]) -> None:
    """History notes: each a mail to each of the ticket's recipients but the author."""
    i = 0
    while not load.stopping.is_set():
        await load.request(user, "POST", f"/api/v1/tickets/{tickets[i % len(tickets)]}/notes",
                           json={"body": f"Note {next(NOTES)} from {user.username} under load"}, expect=(201,))
        i += 1
        await asyncio.sleep(WRITE_PAUSE_S)


LEASED_SQL = """
    SELECT id, message_id, extract(epoch FROM locked_until - now())::float8 AS left_s
      FROM outbox WHERE status = 'queued' AND locked_by LIKE $1 AND locked_until > now()"""


async def kill_holding_leases(db: asyncpg.Connection, sink: Sink, victim: Daemon,
                              burst) -> tuple[str, dict, float]:
    """SIGKILL `victim` at a moment it holds leased mail, preferably mail of which the SMTP server
    has accepted some already and not all (sent, not yet marked: what a crash sends twice).

    The moment is found by looking (a burst of notes every half second makes the mail), then
    made sure of by freezing the daemon (SIGSTOP) and looking again once its last statements
    and SMTP transactions are through: if it still holds such leases it is killed frozen, else
    it goes on (SIGCONT) and we look again. Returns what it held, its leased rows, and the
    longest time left on a lease seen meanwhile (a lease just taken: the lease's length)."""
    pattern = f"%:{victim.pid}:%"
    started = time.monotonic()
    next_burst = longest = 0.0

    async def look() -> tuple[dict, bool]:
        nonlocal longest
        leased = {r["id"]: r for r in await db.fetch(LEASED_SQL, pattern)}
        longest = max([longest, *(r["left_s"] for r in leased.values())])
        accepted = sink.message_ids(victim.name)
        mids = {r["message_id"] for r in leased.values()}
        fallback = time.monotonic() - started > CATCH_SENT_S
        return leased, bool(mids - accepted) and (bool(mids & accepted) or fallback)

    while time.monotonic() - started < CATCH_SENT_S + 10:
        if time.monotonic() >= next_burst:
            burst()
            next_burst = time.monotonic() + 0.5
        _, good = await look()
        if good:
            victim.signal(signal.SIGSTOP)
            await asyncio.sleep(sink.delay_s + 3 * Sink.REPORT_EVERY_S + 0.05)
            leased, good = await look()
            if good:
                victim.kill()
                sent = sink.message_ids(victim.name) & {r["message_id"] for r in leased.values()}
                return (f"holding {len(leased)} leased mail(s), {len(sent)} of them accepted by the "
                        "SMTP server and not marked sent"), leased, longest
            victim.signal(signal.SIGCONT)
        await asyncio.sleep(0.003)
    raise AssertionError(f"{victim.name} never held a lease: the kill would prove nothing about mail")


async def test_three_daemons_behind_haproxy_survive_a_sigkill(demo_dsn: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    digest_time = datetime.now().strftime("%H:%M")  # each daemon catches today's digest up at start
    day = datetime.now().date()
    db = await asyncpg.connect(demo_dsn)
    load: Load | None = None
    users: dict[str, User] = {}
    try:
        async with Cluster(HAPROXY, tmp_path, demo_dsn, NAMES, sink_delay_s=SINK_DELAY_S,
                           extra=DAEMON_SETTINGS + f'[scheduler]\ndigest_time = "{digest_time}"\n'
                           ) as cluster:
            balancer, sink, victim = cluster.balancer, cluster.sink, cluster.daemons[VICTIM]
            started_s = time.monotonic() - t0

            # -- who works, on what ---------------------------------------------------------------
            load = Load(balancer.url)
            for username in READERS:
                users[username] = await load.login(username)
            cookies = {u: [c.value for c in users[u].session.cookie_jar] for u in users}
            emp = dict(await db.fetch("SELECT username, id FROM employees"))
            main = dict(await db.fetch(  # each account's ticket with recipients (daemon/dev/demo_data.py)
                """SELECT a.name, min(t.id) FROM tickets t JOIN accounts a ON a.id = t.account_id
                    WHERE EXISTS (SELECT 1 FROM ticket_recipients r WHERE r.ticket_id = t.id)
                      AND t.status <> 'closed' GROUP BY a.name"""))
            moves = [(main["Acme"], emp["sub1"], emp["tech"]),
                     (main["Globex"], emp["sub2"], emp["admin"]),
                     (main["Initech"], emp["sub2"], emp["admin"])]
            tasks = []
            for username, user in users.items():
                _, page = await load.request(user, "GET", "/api/v1/tickets")
                # detail pages of tickets that the assignments do not move out of the reader's sight
                mine = [t["id"] for t in page["items"] if t["id"] not in main.values()]  # type: ignore[index]
                tasks.append(asyncio.create_task(reader(load, user, mine), name=f"read-{username}"))
            tasks += [asyncio.create_task(assigner(load, users["tech"], moves)),
                      asyncio.create_task(noter(load, users["admin"], list(main.values()))),
                      asyncio.create_task(noter(load, users["full@acme"], [main["Acme"]]))]
            bursts: list[asyncio.Task] = []

            def burst() -> None:
                bursts.extend(asyncio.create_task(load.request(
                    users["admin"], "POST", f"/api/v1/tickets/{t}/notes", expect=(201,),
                    json={"body": f"Note {next(NOTES)}, one of a burst"}))
                    for t in random.choices(list(main.values()), k=BURST))

            # -- before, the kill, during, back, after --------------------------------------------
            await asyncio.sleep(BEFORE_S)
            caught, leased, lease_seen = await kill_holding_leases(db, sink, victim, burst)
            t_kill = snap_at = time.monotonic()
            after_kill = {r["id"] for r in await db.fetch(LEASED_SQL, f"%:{victim.pid}:%")}
            t_down = await balancer.wait_status(VICTIM, "DOWN", timeout_s=10)
            lease_end = snap_at + max((r["left_s"] for r in leased.values()), default=0.0)
            await asyncio.sleep(max(2.0, lease_end + POLL_INTERVAL_S + SEND_SLACK_S - time.monotonic()))
            victim.start()
            await victim.wait_healthy()
            t_back = await balancer.wait_status(VICTIM, "UP")
            while time.monotonic() < t_back + AFTER_S + 10:
                await asyncio.sleep(0.25)
                served = {r.user for r in load.results
                          if r.started > t_back and r.ok and r.served_by == VICTIM}
                if time.monotonic() > t_back + AFTER_S and served >= set(users):
                    break
            load.stopping.set()
            await asyncio.gather(*tasks, *bursts)
            end_cookies = {u: [c.value for c in users[u].session.cookie_jar] for u in users}

            # -- the mail drains ------------------------------------------------------------------
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while time.monotonic() < deadline:
                left = await db.fetchval(
                    """SELECT (SELECT count(*) FROM outbox WHERE status = 'queued')
                            + (SELECT count(*) FROM mail_events WHERE NOT fanned_out)""")
                sent = {r[0] for r in await db.fetch("SELECT message_id FROM outbox WHERE status = 'sent'")}
                if not left and sent <= sink.message_ids():
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.1)  # any last duplicate: the sink reports every 20 ms
            rows = await db.fetch("SELECT id, message_id, status, last_code, last_error FROM outbox")
            notes = {r[0] for r in await db.fetch("SELECT body FROM history_notes")}
            digests = await db.fetchval("SELECT count(*) FROM mail_events WHERE event = 'digest'")
            digest_runs = await db.fetchval("SELECT count(*) FROM scheduler_runs WHERE job = 'digest'")
            wanted_digests = await db.fetchval(
                """SELECT count(*) FROM employee_mail_settings s JOIN employees e ON e.id = s.employee_id
                    WHERE s.alert_digest AND e.active""")
    finally:
        if load is not None:
            load.stopping.set()
            await load.close(users.values())
        await db.close()
    arrivals = sink.snapshot()
    logged = balancer.requests()

    # -- requests ---------------------------------------------------------------------------------
    results = load.results
    failed = [r for r in results if not r.ok]
    in_flight = [r for r in results if r.method != "GET" and r.started < t_kill < r.ended]
    unexplained = []
    for r in failed:
        line = logged.get(r.tid)
        why = None
        if r.method in ("GET", "HEAD"):
            why = "a GET failed (it must be retried on another daemon)"
        elif line is None:
            why = "not in the balancer's log"
        elif line.server != VICTIM or not line.termination.startswith("S"):
            why = "not cut by the killed daemon"
        elif not r.started < t_kill < r.ended:
            why = "not in flight at the kill"
        if why:
            unexplained.append(f"{r} [{why}] {line.raw if line else ''}")
    retried = [line for line in logged.values() if line.retries != "0"]
    # whether each change cut by the kill had been carried out (notes: their text is unique)
    carried_out = ["?" if r.method != "POST" else "yes" if r.sent["body"] in notes else "no"  # type: ignore[index]
                   for r in failed]
    ok_by_phase: dict[str, Counter] = defaultdict(Counter)
    served_by: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in results:
        if r.ok:
            phase = phase_of(r, t_kill, t_back)
            ok_by_phase[r.user][phase] += 1
            served_by[(r.user, phase)].add(r.served_by or "?")

    # -- mail -------------------------------------------------------------------------------------
    times: dict[str, list[float]] = defaultdict(list)
    for a in arrivals:
        times[a.message_id].append(a.at)
    row_of = {r["message_id"]: r for r in rows}
    lost = [r["id"] for r in rows if r["status"] == "sent" and not times.get(r["message_id"])]
    stuck = [r["id"] for r in rows if r["status"] == "queued"]
    refused = [dict(r) for r in rows if r["status"] == "failed" and r["last_code"] is not None]
    unknown = [m for m in times if m not in row_of]
    doubled = {row_of[m]["id"]: sorted((x for x in arrivals if x.message_id == m), key=lambda x: x.at)
               for m, t in times.items() if m in row_of and len(t) > 1}
    # twice only if leased by the killed daemon and handed over by it before it died (the sink
    # takes delay_s to accept), then sent once more by another daemon once the lease had run
    # out, not before (no live lease taken over)
    handed_over_by = t_kill + SINK_DELAY_S + 0.1
    bad_doubles = {i: [(a.sender, round(a.at - t_kill, 3)) for a in t] for i, t in doubled.items()
                   if i not in leased or len(t) > 2
                   or t[0].sender != VICTIM or t[0].at > handed_over_by
                   or t[1].at < snap_at + leased[i]["left_s"] - 0.1}
    late, early, out_again = {}, {}, []
    for oid, r in leased.items():
        after = [t for t in times.get(r["message_id"], []) if t > handed_over_by]
        if not after:
            continue  # accepted before the kill, and marked sent by a statement still under way
        lease_end = snap_at + r["left_s"]
        out_again.append(min(after) - lease_end)
        if min(after) > lease_end + POLL_INTERVAL_S + SEND_SLACK_S:
            late[oid] = (round(min(after) - t_kill, 2), round(r["left_s"], 2))
        if min(after) < lease_end - 0.1:
            early[oid] = (round(min(after) - t_kill, 2), round(r["left_s"], 2))

    again = ", ".join(f"{s:+.2f}" for s in sorted(out_again))
    left = ", ".join(sorted({f"{r['left_s']:.2f}" for r in leased.values()}))
    print(f"\nstarted in {started_s:.1f} s; {len(results)} requests ({sum(r.method != 'GET' for r in results)} "
          f"changes) through HAProxy; {len(failed)} failed of {len(in_flight)} changes in flight at "
          f"the kill (carried out: {', '.join(carried_out) or '-'}); {len(retried)} retried by the "
          f"balancer ({sum(x.method == 'GET' for x in retried)} GET)")
    print(f"killed {VICTIM} {caught}; DOWN in HAProxy "
          f"{(t_down - t_kill) * 1000:.0f} ms after the kill; UP again {t_back - t_kill:.1f} s after it")
    print(f"mail: {len(rows)} rows, {len(arrivals)} accepted by the sink, {len(doubled)} twice; the killed "
          f"daemon's leased mails (lease {lease_seen:.2f} s measured, {left} s of it left at the kill) out again "
          f"{again} s from their lease's end; digest events {digests} in {digest_runs} run(s); "
          f"wall {time.monotonic() - t0:.1f} s")

    assert not unexplained, "requests failed that were not in flight on the killed daemon:\n" + \
        "\n".join(unexplained)
    assert len(failed) <= len(in_flight)
    for u in users:
        assert all(ok_by_phase[u][p] for p in ("before", "during", "after")), (u, ok_by_phase[u])
        assert served_by[(u, "before")] == set(NAMES), (u, served_by[(u, "before")])
        assert VICTIM in served_by[(u, "after")], (u, served_by[(u, "after")])
        assert end_cookies[u] == cookies[u], f"{u}: the session cookie changed"
    assert after_kill == set(leased), "the killed daemon's leases changed after the kill"
    assert LEASE_S - 0.5 < lease_seen <= LEASE_S + 0.1, f"a lease of {lease_seen:.2f} s, not {LEASE_S} s"
    assert not lost, f"mails marked sent that the SMTP server never accepted: {lost}"
    assert not stuck, f"mails never sent: {stuck}"
    assert not refused, refused
    assert not unknown, f"mails accepted that are not in the outbox: {unknown}"
    assert not bad_doubles, f"mails delivered twice outside the killed daemon's leases: {bad_doubles}"
    assert len(doubled) <= BATCH_SIZE * SENDER_LANES
    assert not late, f"leased mails of the killed daemon late (s after the kill, lease left): {late}"
    assert not early, f"leased mails of the killed daemon sent under its live lease: {early}"
    if datetime.now().date() == day:  # across midnight there would be two days' digests
        assert (digests, digest_runs) == (wanted_digests, 1)
    for d in cluster.daemons.values():
        text = d.log_text()
        assert "Traceback" not in text and " ERROR " not in text, f"{d.name}:\n{d.log_tail()}"
    assert all(code == 0 for code in cluster.exits.values()), cluster.exits


async def test_a_strangers_failed_logins_do_not_lock_others_out_behind_the_balancer(
        demo_dsn: str, tmp_path: Path) -> None:
    # the throttle counts per address: behind the balancer that is the client's, from the
    # X-Forwarded-For the balancer (on 127.0.0.1) adds, not the balancer's own for everyone
    async with Cluster(HAPROXY, tmp_path, demo_dsn, ("d1",), extra=DAEMON_SETTINGS,
                       http_extra='trusted_proxies = ["127.0.0.1"]', log=False) as cluster:
        load = Load(cluster.balancer.url)
        stranger = await load.anonymous(source="127.0.0.2")
        for i in range(10):  # [http] login_attempts_per_15min = 10
            result, _ = await load.request(stranger, "POST", "/api/v1/login",
                                           json={"username": f"nobody{i}", "password": "guess"},
                                           expect=(401,))
            assert result.ok, result
        someone = await load.anonymous(source="127.0.0.3")
        try:  # the right password, someone else, elsewhere
            result, body = await load.request(someone, "POST", "/api/v1/login",
                                              json={"username": "tech", "password": DEMO_PASSWORD})
        finally:
            await load.close([stranger, someone])
        assert result.ok, (result.status, body)
