"""Changes made through the portal produce their mail, and leave their author out of it."""

from __future__ import annotations

from tests.support.mail import fan_out_all


async def test_the_author_of_a_portal_change_gets_no_mail_about_it(users, demo_db, demo_config) -> None:
    ids = {r["username"]: r["id"] for r in await demo_db.fetch("SELECT id, username FROM employees")}
    ticket = await demo_db.fetchval(
        "SELECT id FROM tickets WHERE status <> 'closed' AND account_id = "
        "(SELECT id FROM accounts WHERE name = 'Acme') ORDER BY id LIMIT 1")
    await demo_db.execute("DELETE FROM ticket_recipients WHERE ticket_id = $1", ticket)
    await demo_db.execute(
        "INSERT INTO ticket_recipients (ticket_id, employee_id) VALUES ($1, $2), ($1, $3)",
        ticket, ids["tech"], ids["admin"])
    await demo_db.execute(
        "UPDATE employee_mail_settings SET recv_status = true, recv_note = true, recv_own_changes = false "
        "WHERE employee_id = ANY($1::bigint[])", [ids["tech"], ids["admin"]])
    await demo_db.execute("DELETE FROM outbox")
    await demo_db.execute("UPDATE mail_events SET fanned_out = true")

    tech = await users.login("tech")
    assert (await tech.patch(f"/api/v1/tickets/{ticket}", {"status": "waiting"})).status == 200
    assert (await tech.post(f"/api/v1/tickets/{ticket}/notes", {"body": "Parts ordered"})).status == 201

    actors = await demo_db.fetch("SELECT event, actor_employee_id FROM mail_events WHERE NOT fanned_out")
    assert {(r["event"], r["actor_employee_id"]) for r in actors} == {("status", ids["tech"]),
                                                                       ("note", ids["tech"])}
    assert await fan_out_all(demo_db, demo_config) == [("note", "admin"), ("status", "admin")]
