"""Replies by mail the daemon refuses: each with a 5xx at its step of the SMTP dialogue, a row
in the audit table naming the reason, a count on /metrics, and nothing else stored."""

from __future__ import annotations

import re

import pytest

from daemon.app import build_app
from daemon.db.embedded import free_port
from daemon.mail.reply_token import MAC_BYTES
from tests.support.config import with_settings
from tests.support.mail import forget_mail
from tests.support.replies import (
    REPLY_ADDRESS,
    alert_reply_to,
    dialogue,
    reply,
    stored_counts,
)
from web.routes import setup_web


@pytest.fixture
async def daemon(dsn, config, seed, conn, aiohttp_client):
    await forget_mail(conn)
    cfg = with_settings(config, inbound={"enabled": True, "port": free_port(),
                                         "reply_address": REPLY_ADDRESS},
                        http={"upload_max_mb": 1})
    client = await aiohttp_client(build_app(cfg, dsn, setup_web=setup_web))
    client.port_smtp = cfg.inbound.port
    return client


@pytest.fixture
async def address(daemon, conn, seed, smtp_sink) -> str:
    """sub1's reply address for t_acme_sub1, from a real alert."""
    found, _ = await alert_reply_to(conn, smtp_sink, seed["t_acme_sub1"], seed["sub1"])
    return found


async def refusal(conn, reason: str) -> dict:
    row = await conn.fetchrow(
        "SELECT * FROM audit_log WHERE action = 'inbound.refused' ORDER BY id DESC LIMIT 1")
    assert row is not None, "no refusal recorded"
    import json

    after = json.loads(row["after"])
    assert after["reason"] == reason, after
    return {**dict(row), "after": after}


def tampered(address: str) -> str:
    local, domain = address.split("@")
    base, token = local.split("+")
    flipped = token[:3] + ("a" if token[3] != "a" else "b") + token[4:]
    return f"{base}+{flipped}@{domain}"


async def expect(daemon, conn, rcpt: str, data, *, step: str, code: int, reason: str,
                 **kw) -> dict:
    before = await stored_counts(conn)
    answer = await dialogue(daemon.port_smtp, rcpt=rcpt, data=data, **kw)
    assert (answer.step, answer.code) == (step, code), answer
    assert await stored_counts(conn) == before, "a refused reply stored something"
    return await refusal(conn, reason)


async def test_unknown_and_tampered_addresses_are_refused_at_rcpt(daemon, conn, address) -> None:
    mail = reply(address, text="hello")
    for rcpt, reason in ((tampered(address), "bad_token"),
                         ("portald-reply+abcdefghijklmnopqrstuvwx@reply.portal.test", "bad_token"),
                         ("portald-reply@reply.portal.test", "not_reply_address"),
                         (address.replace("reply.portal.test", "elsewhere.test"), "not_reply_address"),
                         ("someone@reply.portal.test", "not_reply_address")):
        row = await expect(daemon, conn, rcpt, mail, step="RCPT", code=550, reason=reason)
        assert row["actor"] == "mail:unauthenticated" and row["ip"] == "127.0.0.1"
    metrics = await (await daemon.get("/metrics")).text()
    assert re.search(r'portald_inbound_replies_total\{reason="bad_token",result="refused"\} 2\.0', metrics)
    assert MAC_BYTES == 8


async def test_who_may_not_add_a_note_is_refused_at_rcpt(daemon, conn, seed, address) -> None:
    mail = reply(address, text="hello")
    # a subcontractor who lost the ticket
    await conn.execute("UPDATE tickets SET assigned_to = $2 WHERE id = $1", seed["t_acme_sub1"], seed["tech"])
    row = await expect(daemon, conn, address, mail, step="RCPT", code=550, reason="not_in_scope")
    assert row["actor"] == "employee:sub1" and row["target"] == f"ticket:{seed['t_acme_sub1']}"
    await conn.execute("UPDATE tickets SET assigned_to = $2 WHERE id = $1", seed["t_acme_sub1"], seed["sub1"])
    # an inactive employee
    await conn.execute("UPDATE employees SET active = false WHERE id = $1", seed["sub1"])
    await expect(daemon, conn, address, mail, step="RCPT", code=550, reason="inactive")
    await conn.execute("UPDATE employees SET active = true WHERE id = $1", seed["sub1"])
    # a group without add_notes
    group = await conn.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, add_notes)
           VALUES ('No notes', 'own', 'own', false) RETURNING id""")
    await conn.execute("UPDATE employees SET group_id = $2 WHERE id = $1", seed["sub1"], group)
    row = await expect(daemon, conn, address, mail, step="RCPT", code=550, reason="no_add_notes")
    assert "add_notes" in row["after"]["answer"]
    # and back in Subcontractors, the same address works
    await conn.execute("UPDATE employees SET group_id = $2 WHERE id = $1", seed["sub1"], seed["eg_sub"])
    assert (await dialogue(daemon.port_smtp, rcpt=address, data=mail)).accepted


async def test_what_changes_between_rcpt_and_data_is_seen_at_data(daemon, conn, seed, address,
                                                                  walls) -> None:
    """The rights are asked again when the message is in: a ticket lost meanwhile adds nothing,
    also by the database's row-level security alone (the reply is stored as the employee)."""
    import aiosmtplib

    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.port_smtp, local_hostname="client.test")
    await smtp.connect()
    try:
        await smtp.mail("sub1@msp.test")
        await smtp.rcpt(address)
        await conn.execute("UPDATE tickets SET assigned_to = $2 WHERE id = $1", seed["t_acme_sub1"],
                           seed["tech"])
        before = await stored_counts(conn)
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.data(reply(address, text="too late").as_bytes())
        assert refused.value.code == 550
    finally:
        smtp.close()
    assert await stored_counts(conn) == before
    await refusal(conn, "not_in_scope")


async def test_automatic_mail_is_refused_at_data(daemon, conn, address) -> None:
    for value in ("auto-replied", "auto-generated", "Auto-Notified; owner-email=x@y"):
        mail = reply(address, text="I am out of office.", headers=[("Auto-Submitted", value)])
        row = await expect(daemon, conn, address, mail, step="DATA", code=550, reason="auto_submitted")
        assert row["actor"] == "employee:sub1"
    # "no" is a person
    mail = reply(address, text="Back in the office.", headers=[("Auto-Submitted", "no")])
    assert (await dialogue(daemon.port_smtp, rcpt=address, data=mail)).accepted
    # bounces (the empty sender) are refused at once
    await expect(daemon, conn, address, reply(address, text="bounce"), step="MAIL", code=550,
                 reason="null_sender", sender="")


async def test_a_message_over_the_upload_limit_is_refused(daemon, conn, address) -> None:
    big = reply(address, text="Photos attached.", files=[("photo.jpg", "image/jpeg", b"\xff" * 900_000)])
    # declared too big up front (SIZE): refused at MAIL, nothing read
    await expect(daemon, conn, address, big, step="MAIL", code=552, reason="too_large",
                 size=len(big.as_bytes()))
    # not declared: read, and refused at the end of DATA
    row = await expect(daemon, conn, address, big, step="DATA", code=552, reason="too_large")
    assert row["actor"] == "employee:sub1" and "1 MB" in row["after"]["answer"]


async def test_files_need_the_upload_right_and_nothing_is_stored_without_it(daemon, conn, seed,
                                                                           address) -> None:
    group = await conn.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, upload_attachments)
           VALUES ('No files', 'own', 'own', false) RETURNING id""")
    await conn.execute("UPDATE employees SET group_id = $2 WHERE id = $1", seed["sub1"], group)
    mail = reply(address, text="See the file.", files=[("a.txt", "text/plain", b"a")])
    row = await expect(daemon, conn, address, mail, step="DATA", code=550, reason="no_upload")
    assert "upload_attachments" in row["after"]["answer"]
    # without the file the note is fine
    assert (await dialogue(daemon.port_smtp, rcpt=address, data=reply(address, text="No file."))).accepted


async def test_a_reply_with_nothing_new_is_refused(daemon, conn, address) -> None:
    mail = reply(address, text="On Mon, 3 Feb 2025 at 10:00, portald <p@portal.test> wrote:\n> old\n")
    await expect(daemon, conn, address, mail, step="DATA", code=550, reason="empty")
