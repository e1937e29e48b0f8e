"""Events come from the database (triggers), whoever writes it; the fan-out turns each into
exactly the right mails for exactly the right people, through the one access rule."""

from __future__ import annotations

from daemon.mail import batch, fanout
from tests.support.mail import fan_out_all, forget_mail, identity, new_ticket, set_mail_settings
from tests.support.seed import seed


async def test_new_ticket_with_assignee_alerts_the_assignee_and_who_asked(conn, config) -> None:
    s = await seed(conn, tickets=False)
    await set_mail_settings(conn, s["tech"], alert_created=True)
    await set_mail_settings(conn, s["sub1"], alert_created=True)  # sees only own tickets
    await set_mail_settings(conn, s["sub2"], alert_created=True)  # Globex only: not this one
    await set_mail_settings(conn, s["gone"], alert_created=True)  # inactive
    await new_ticket(conn, s["acme"], assigned_to=s["sub1"])
    assert await fan_out_all(conn, config) == [
        ("assigned", "sub1"), ("created", "sub1"), ("created", "tech")]


async def test_created_goes_only_to_those_who_may_see_it(conn, config) -> None:
    s = await seed(conn, tickets=False)
    for emp in (s["admin"], s["tech"], s["sub1"], s["sub2"], s["gone"]):
        await set_mail_settings(conn, emp, alert_created=True)
    await new_ticket(conn, s["globex"])  # unassigned: subcontractors see none of it
    assert await fan_out_all(conn, config) == [("created", "admin"), ("created", "tech")]


async def test_reassignment_alerts_the_new_assignee_only(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], assigned_to=s["tech"])
    await forget_mail(conn)
    await conn.execute("UPDATE tickets SET assigned_to = $1 WHERE id = $2", s["admin"], ticket)
    assert await fan_out_all(conn, config) == [("assigned", "admin")]
    await forget_mail(conn)
    # unassigning tells nobody; an update that changes nothing relevant neither
    await conn.execute("UPDATE tickets SET assigned_to = NULL WHERE id = $1", ticket)
    await conn.execute("UPDATE tickets SET priority = 'high' WHERE id = $1", ticket)
    assert await fan_out_all(conn, config) == []


async def test_assigning_to_oneself_is_no_news_unless_asked(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"])
    await forget_mail(conn)
    async with conn.transaction():
        await conn.execute("SELECT set_config('portald.actor_employee_id', $1, true)", str(s["tech"]))
        await conn.execute("UPDATE tickets SET assigned_to = $1 WHERE id = $2", s["tech"], ticket)
    assert await fan_out_all(conn, config) == []
    await set_mail_settings(conn, s["tech"], recv_own_changes=True)
    async with conn.transaction():
        await conn.execute("SELECT set_config('portald.actor_employee_id', $1, true)", str(s["tech"]))
        await conn.execute("UPDATE tickets SET assigned_to = NULL WHERE id = $1", ticket)
        await conn.execute("UPDATE tickets SET assigned_to = $1 WHERE id = $2", s["tech"], ticket)
    assert await fan_out_all(conn, config) == [("assigned", "tech")]


async def test_alert_assigned_off_means_no_alert(conn, config) -> None:
    s = await seed(conn, tickets=False)
    await set_mail_settings(conn, s["tech"], alert_assigned=False)
    await new_ticket(conn, s["acme"], assigned_to=s["tech"])
    assert await fan_out_all(conn, config) == []


async def test_note_goes_to_recipients_by_their_settings_author_excluded(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], recipients=(s["admin"], s["tech"], s["gone"], s["sub2"]))
    await set_mail_settings(conn, s["admin"], recv_note=False)
    await forget_mail(conn)
    await conn.execute("INSERT INTO history_notes (ticket_id, author_employee_id, body) VALUES ($1, $2, 'x')",
                       ticket, s["tech"])
    # admin: recv_note off; tech: the author; gone: inactive; sub2: no access to Acme
    assert await fan_out_all(conn, config) == []
    await set_mail_settings(conn, s["admin"], recv_note=True)
    await set_mail_settings(conn, s["tech"], recv_own_changes=True)
    await conn.execute("INSERT INTO history_notes (ticket_id, author_employee_id, body) VALUES ($1, $2, 'y')",
                       ticket, s["tech"])
    assert await fan_out_all(conn, config) == [("note", "admin"), ("note", "tech")]


async def test_subcontractor_never_hears_of_others_notes_or_charges(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], assigned_to=s["sub1"], recipients=(s["sub1"], s["tech"]))
    for emp in (s["sub1"], s["tech"]):
        await set_mail_settings(conn, emp, recv_charge=True, recv_own_changes=True)
    await forget_mail(conn)
    await conn.execute("INSERT INTO history_notes (ticket_id, author_employee_id, body) VALUES ($1, $2, 'n')",
                       ticket, s["tech"])
    await conn.execute("""INSERT INTO charges (ticket_id, kind, quantity, unit_price, employee_id)
                          VALUES ($1, 'labor', 1.5, 80, $2)""", ticket, s["tech"])
    # the customer's own note: not the subcontractor's either
    await conn.execute("INSERT INTO history_notes (ticket_id, body) VALUES ($1, 'from the customer')", ticket)
    assert await fan_out_all(conn, config) == [
        ("charge", "tech"), ("note", "tech"), ("note", "tech")]
    await forget_mail(conn)
    await conn.execute("""INSERT INTO charges (ticket_id, kind, quantity, unit_price, employee_id)
                          VALUES ($1, 'part', 2, 10, $2)""", ticket, s["sub1"])
    assert await fan_out_all(conn, config) == [("charge", "sub1"), ("charge", "tech")]


async def test_subcontractor_loses_mail_with_the_ticket(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], assigned_to=s["sub1"], recipients=(s["sub1"],))
    await forget_mail(conn)
    await conn.execute("UPDATE tickets SET assigned_to = $1, status = 'waiting' WHERE id = $2", s["tech"], ticket)
    # sub1 is still a recipient, but the ticket is no longer his to see
    assert await fan_out_all(conn, config) == [("assigned", "tech")]


async def test_status_and_closed_are_told_apart(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], recipients=(s["admin"], s["tech"]))
    await set_mail_settings(conn, s["admin"], recv_closed=False)
    await set_mail_settings(conn, s["tech"], recv_status=False)
    await forget_mail(conn)
    await conn.execute("UPDATE tickets SET status = 'in_progress' WHERE id = $1", ticket)
    assert await fan_out_all(conn, config) == [("status", "admin")]
    await forget_mail(conn)
    await conn.execute("UPDATE tickets SET status = 'closed', closed_at = now() WHERE id = $1", ticket)
    assert await fan_out_all(conn, config) == [("closed", "tech")]
    payload = await conn.fetchval("SELECT payload FROM mail_events WHERE event = 'closed'")
    assert '"from": "in_progress"' in payload


async def test_public_email_filed_is_told_automatic_and_internal_ones_are_not(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], recipients=(s["admin"],))
    await forget_mail(conn)
    insert = """INSERT INTO ticket_emails (ticket_id, subject, is_public, auto_submitted, filed_by)
                VALUES ($1, $2, $3, $4, $5)"""
    await conn.execute(insert, ticket, "auto reply", True, "auto-replied", s["tech"])
    await conn.execute(insert, ticket, "bounce", True, "Auto-Generated", None)
    await conn.execute(insert, ticket, "internal", False, "no", s["tech"])
    assert await fan_out_all(conn, config) == []
    await conn.execute(insert, ticket, "customer wrote", True, "no", s["tech"])
    assert await fan_out_all(conn, config) == [("email", "admin")]


async def test_own_from_address_is_never_a_recipient(conn, config) -> None:
    s = await seed(conn, tickets=False)
    await conn.execute("UPDATE employees SET email = 'PORTALD@portal.test' WHERE id = $1", s["admin"])
    ticket = await new_ticket(conn, s["acme"], assigned_to=s["admin"])
    assert await fan_out_all(conn, config) == []
    row = await conn.fetchrow("SELECT status, last_error FROM outbox WHERE ticket_id = $1", ticket)
    assert row["status"] == "failed" and "own From address" in row["last_error"]


async def test_children_touch_the_ticket(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"])
    await conn.execute("UPDATE tickets SET updated_at = now() - interval '3 days' WHERE id = $1", ticket)
    old = await conn.fetchval("SELECT updated_at FROM tickets WHERE id = $1", ticket)
    await conn.execute("INSERT INTO history_notes (ticket_id, body) VALUES ($1, 'ping')", ticket)
    assert await conn.fetchval("SELECT updated_at FROM tickets WHERE id = $1", ticket) > old
    await conn.execute("UPDATE tickets SET updated_at = now() - interval '3 days' WHERE id = $1", ticket)
    await conn.execute("UPDATE tickets SET priority = 'urgent' WHERE id = $1", ticket)
    assert await conn.fetchval("SELECT updated_at > now() - interval '1 minute' FROM tickets WHERE id = $1", ticket)


async def test_events_notify(conn, config) -> None:
    s = await seed(conn, tickets=False)
    got: list[str] = []
    listener = await __import__("asyncpg").connect(config.database.dsn)
    await listener.add_listener("portald_mail", lambda *a: got.append(a[3]))
    try:
        await new_ticket(conn, s["acme"], assigned_to=s["tech"])
        await fan_out_all(conn, config)
        for _ in range(50):
            if {"events", "outbox"} <= set(got):
                break
            await __import__("asyncio").sleep(0.02)
    finally:
        await listener.close()
    assert {"events", "outbox"} <= set(got)


async def test_bulk_insert_records_every_event_and_fans_out_fully(conn, config) -> None:
    # one statement inserting 2,000 notes: an event each, and a mail per recipient of each
    # (how long it takes is bench/mail.py's business, not a test's)
    s = await seed(conn, tickets=False)
    tickets = [await new_ticket(conn, s["acme"], recipients=(s["admin"], s["tech"])) for _ in range(20)]
    await forget_mail(conn)
    await conn.execute("""INSERT INTO history_notes (ticket_id, author_employee_id, body)
                          SELECT t, $2, 'bulk ' || g FROM unnest($1::bigint[]) t, generate_series(1, 100) g""",
                       tickets, s["sub1"])
    assert await conn.fetchval("SELECT count(*) FROM mail_events WHERE NOT fanned_out") == 2000
    mails = await fan_out_all(conn, config)
    assert len(mails) == 4000
    assert await conn.fetchval("SELECT count(*) FROM mail_events WHERE NOT fanned_out") == 0


async def test_rendered_content_is_what_the_recipient_may_see(conn, config) -> None:
    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], "Line one\nsecret second line", assigned_to=s["sub1"],
                              recipients=(s["sub1"],))
    await set_mail_settings(conn, s["sub1"], recv_own_changes=True)
    await forget_mail(conn)
    await conn.execute("INSERT INTO history_notes (ticket_id, author_employee_id, body) VALUES ($1, $2, 'mine')",
                       ticket, s["sub1"])
    await fan_out_all(conn, config)
    rows = await conn.fetch("SELECT * FROM outbox WHERE status = 'queued'")
    assert len(rows) == 1
    # between fan-out and sending, the ticket moves away from the subcontractor
    await conn.execute("UPDATE tickets SET assigned_to = $1 WHERE id = $2", s["tech"], ticket)
    [item] = await batch.prepare_batch(conn, rows, identity=identity(config))
    assert isinstance(item, batch.Dropped) and "may not see" in item.reason


async def test_fan_out_is_shared_between_instances(conn, config, dsn) -> None:
    import asyncio

    import asyncpg

    s = await seed(conn, tickets=False)
    tickets = [await new_ticket(conn, s["acme"], recipients=(s["admin"],)) for _ in range(10)]
    await forget_mail(conn)
    await conn.execute("""INSERT INTO history_notes (ticket_id, body)
                          SELECT t, 'n' FROM unnest($1::bigint[]) t, generate_series(1, 300) g""", tickets)
    others = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        async def drain(c):
            while (await fanout.fan_out(c, identity=identity(config), limit=100)).events:
                pass
        await asyncio.gather(*(drain(c) for c in others))
    finally:
        for c in others:
            await c.close()
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 3000
    assert await conn.fetchval("SELECT count(DISTINCT (payload->>'event_id')) FROM outbox") == 3000


async def test_every_event_renders_with_its_own_content(conn, config) -> None:
    import email
    import email.policy

    from daemon.queries.scheduler import enqueue_reminders

    s = await seed(conn, tickets=False)
    ticket = await new_ticket(conn, s["acme"], "Mail server down\nsince 9:00", assigned_to=s["admin"],
                              recipients=(s["admin"],), created_by=s["tech"])
    await set_mail_settings(conn, s["admin"], alert_created=True, recv_charge=True)
    await conn.execute("INSERT INTO history_notes (ticket_id, author_employee_id, body) VALUES ($1, $2, $3)",
                       ticket, s["tech"], "Rebooted <the> server & checked logs")
    await conn.execute("""INSERT INTO charges (ticket_id, kind, description, quantity, unit_price, employee_id)
                          VALUES ($1, 'labor', 'Remote session', 1.5, 80, $2)""", ticket, s["tech"])
    await conn.execute("""INSERT INTO ticket_emails (ticket_id, from_addr, to_addr, subject, body, is_public, filed_by)
                          VALUES ($1, 'boss@acme.test', 'help@msp.test', 'Any news?', 'Please call me.', true, $2)""",
                       ticket, s["tech"])
    await conn.execute("UPDATE tickets SET status = 'waiting' WHERE id = $1", ticket)
    await conn.execute("UPDATE tickets SET status = 'closed', closed_at = now() WHERE id = $1", ticket)
    await conn.execute("UPDATE tickets SET status = 'open', closed_at = NULL, "
                       "updated_at = now() - interval '5 hours' WHERE id = $1", ticket)
    await enqueue_reminders(conn, reminder_hours=4)
    mails = await fan_out_all(conn, config)
    assert sorted({event for event, _ in mails}) == [
        "assigned", "charge", "closed", "created", "email", "note", "reminder", "status"]
    number = await conn.fetchval("SELECT number FROM tickets WHERE id = $1", ticket)
    rows = await conn.fetch("SELECT * FROM outbox WHERE status = 'queued' ORDER BY id")
    rendered = await batch.prepare_batch(conn, rows, identity=identity(config))
    expected = {
        "assigned": ("Assigned to you", "has been assigned to you"),
        "created": ("New ticket", "A new ticket was raised"),
        "note": ("New history note", "Rebooted <the> server & checked logs"),
        "charge": ("Charge logged", "Remote session"),
        "email": ("Email filed", "Please call me."),
        "closed": ("Closed", "has been closed"),
        "reminder": ("Reminder: untouched for 4 h", "has not changed for 4 hours"),
    }
    seen = set()
    for row, item in zip(rows, rendered, strict=True):
        assert isinstance(item, batch.Prepared), item
        msg = email.message_from_bytes(item.data, policy=email.policy.default)
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert msg["Subject"].startswith(f"[{number}] ") and msg["Subject"].endswith(": Mail server down")
        if row["event"] in expected:
            subject, snippet = expected[row["event"]]
            assert subject in msg["Subject"] and snippet in text, (row["event"], text)
        seen.add(row["event"])
        assert "Rebooted <the>" not in html  # escaped wherever it appears
    assert {"status"} <= seen
    statuses = [m for r, m in zip(rows, rendered, strict=True) if r["event"] == "status"]
    subjects = {email.message_from_bytes(m.data, policy=email.policy.default)["Subject"] for m in statuses}
    assert any("Status changed to waiting" in x for x in subjects)
    assert any("Status changed to open" in x for x in subjects)
