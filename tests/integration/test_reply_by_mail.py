"""Reply by mail (SPEC §4) against the daemon's own inbound SMTP listener, with a real SMTP
client over a socket: what a reply becomes, and every refusal at its step of the dialogue."""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
import socket
from pathlib import Path

import pytest

from daemon.app import build_app
from daemon.cli import main
from daemon.db.embedded import free_port
from tests.support.config import portal_sections, with_settings, write_config
from tests.support.daemon import spawn_daemon, start_daemon, stop_daemon
from tests.support.mail import forget_mail, wait_until
from tests.support.replies import (
    REPLY_ADDRESS,
    alert_reply_to,
    dialogue,
    quoted,
    reply,
)
from web.routes import setup_web

TOKEN_ADDRESS = re.compile(r"^portald-reply\+([a-z2-7]+)@reply\.portal\.test$")


@pytest.fixture
def inbound_config(config):
    return with_settings(config, inbound={"enabled": True, "port": free_port(),
                                          "reply_address": REPLY_ADDRESS})


@pytest.fixture
async def daemon(dsn, inbound_config, seed, conn, aiohttp_client):
    """The whole daemon (portal, mail worker, inbound listener) on the seed data, no mail
    pending; `.port` is its inbound SMTP port."""
    await forget_mail(conn)
    client = await aiohttp_client(build_app(inbound_config, dsn, setup_web=setup_web))
    client.port_smtp = inbound_config.inbound.port
    return client


async def notes_of(conn, ticket_id: int) -> list[dict]:
    return [dict(r) for r in await conn.fetch(
        """SELECT id, body, author_employee_id, message_id FROM history_notes
            WHERE ticket_id = $1 ORDER BY id""", ticket_id)]


async def test_a_reply_to_an_alert_becomes_one_note_and_its_mail_threads_on(
        daemon, conn, seed, smtp_sink) -> None:
    ticket = seed["t_acme_sub1"]
    await conn.execute("INSERT INTO ticket_recipients VALUES ($1, $2)", ticket, seed["tech"])
    address, alert = await alert_reply_to(conn, smtp_sink, ticket, seed["sub1"])
    token = TOKEN_ADDRESS.match(address)
    assert token, address
    assert len(address.split("@")[0]) <= 64
    before = await notes_of(conn, ticket)
    mail = reply(address, text="Replaced the toner, it prints again.\n\n" + quoted(alert),
                 message_id="<reply-1@phone.test>",
                 headers=[("In-Reply-To", alert.message["Message-ID"])])
    answer = await dialogue(daemon.port_smtp, rcpt=address, data=mail)
    assert answer.accepted, answer
    after = await notes_of(conn, ticket)
    [note] = after[len(before):]
    assert note["body"] == "Replaced the toner, it prints again."
    assert note["author_employee_id"] == seed["sub1"] and note["message_id"] == "<reply-1@phone.test>"
    audit = await conn.fetchrow("SELECT * FROM audit_log WHERE action = 'inbound.accepted'")
    assert audit["actor"] == "employee:sub1" and audit["target"] == f"ticket:{ticket}"

    # the note's usual mail goes to the ticket's recipients, not back to its author
    def note_mails() -> list:
        return [m for m in smtp_sink.received if "New history note" in m.message["Subject"]]

    async def told() -> bool:
        return bool(note_mails())

    assert await wait_until(told)
    [mailed] = note_mails()
    assert mailed.rcpt_tos == ["tech@msp.test"]
    assert mailed.message["In-Reply-To"] == "<reply-1@phone.test>"
    assert mailed.message["References"].split() == [f"<ticket-{ticket}@portal.test>", "<reply-1@phone.test>"]
    assert "Replaced the toner" in mailed.message.get_body(("plain",)).get_content()


REPLIES = {
    "english, top posted": ("Done, see you tomorrow.\n\nOn Mon, 3 Feb 2025 at 10:00, portald "
                            "<portald@portal.test> wrote:\n> Ticket T-1 has been assigned to you.\n",
                            "Done, see you tomorrow."),
    "german": ("Erledigt.\n\nAm 03.02.2025 um 10:00 schrieb portald <portald@portal.test>:\n> Ticket\n",
               "Erledigt."),
    "french": ("C'est fait.\n\nLe lun. 3 févr. 2025 à 10:00, portald <portald@portal.test> a écrit :\n"
               "> Ticket\n", "C'est fait."),
    "outlook": ("Will do this afternoon.\n\nFrom: portald <portald@portal.test>\nSent: Monday, "
                "February 3, 2025 10:00\nTo: Sub One\nSubject: [T-1] Assigned to you\n\nTicket ...\n",
                "Will do this afternoon."),
    "signature": ("Cable replaced.\nSteps:\n- unplugged\n- replaced\n\n-- \nSub One\nSub Ltd, +1 555 0100\n",
                  "Cable replaced.\nSteps:\n- unplugged\n- replaced"),
    "bottom posted": ("> Ticket T-1 has been assigned to you.\n> Please have a look.\n\nLooked, it is fine.\n",
                      "Looked, it is fine."),
    "phone": ("On my way.\n\nSent from my iPhone\n", "On my way."),
}


async def test_quoted_text_and_signatures_are_removed(daemon, conn, seed, smtp_sink) -> None:
    ticket = seed["t_acme_sub1"]
    address, _ = await alert_reply_to(conn, smtp_sink, ticket, seed["sub1"])
    for n, (what, (text, expected)) in enumerate(REPLIES.items()):
        answer = await dialogue(daemon.port_smtp, rcpt=address, data=reply(
            address, text=text, message_id=f"<q{n}@phone.test>"))
        assert answer.accepted, (what, answer)
        body = await conn.fetchval("SELECT body FROM history_notes WHERE message_id = $1", f"<q{n}@phone.test>")
        assert body == expected, what


async def test_an_html_only_reply_becomes_plain_text(daemon, conn, seed, smtp_sink) -> None:
    ticket = seed["t_acme_sub1"]
    address, _ = await alert_reply_to(conn, smtp_sink, ticket, seed["sub1"])
    html = ("<html><head><style>p { color: red }</style><script>alert('x')</script></head><body>"
            "<div>Printer <b>fixed</b>.<br>Toner was empty.<img src='http://tracker.example/p.gif'></div>"
            "<div class='gmail_quote'>On Mon, 3 Feb 2025 at 10:00, portald &lt;portald@portal.test&gt; "
            "wrote:<br><blockquote>Ticket T-1 has been assigned to you.</blockquote></div></body></html>")
    answer = await dialogue(daemon.port_smtp, rcpt=address, data=reply(
        address, html=html, message_id="<html-1@phone.test>"))
    assert answer.accepted, answer
    body = await conn.fetchval("SELECT body FROM history_notes WHERE message_id = '<html-1@phone.test>'")
    assert body == "Printer fixed.\nToner was empty."
    # plain text wins over HTML when both are there
    await dialogue(daemon.port_smtp, rcpt=address, data=reply(
        address, text="The plain part.", html="<p>The HTML part.</p>", message_id="<both@phone.test>"))
    assert await conn.fetchval(
        "SELECT body FROM history_notes WHERE message_id = '<both@phone.test>'") == "The plain part."


async def test_files_are_stored_as_the_employees_attachments(daemon, conn, seed, smtp_sink) -> None:
    ticket = seed["t_acme_sub1"]
    address, _ = await alert_reply_to(conn, smtp_sink, ticket, seed["sub1"])
    logo = reply(address, text="Photo of the label attached.", message_id="<files@phone.test>",
                 files=[("../../etc/label\u202egnp.pdf", "application/pdf", b"%PDF-1.4 label"),
                        ("notes.txt", "text/plain", b"serial 12345\n")])
    # a picture embedded in the HTML signature is not a file of the ticket
    logo.get_payload()[0].add_related(b"\x89PNG logo", maintype="image", subtype="png", cid="<logo@sig>")
    answer = await dialogue(daemon.port_smtp, rcpt=address, data=logo)
    assert answer.accepted, answer
    rows = await conn.fetch(
        """SELECT a.filename, a.content_type, a.is_public, a.uploaded_by_employee, b.data
             FROM attachments a JOIN blobs b ON b.id = a.blob_id
            WHERE a.ticket_id = $1 AND a.uploaded_by_employee = $2 ORDER BY a.id""", ticket, seed["sub1"])
    files = {r["filename"]: r for r in rows if r["filename"] != "a_public_sub1.txt"}
    assert set(files) == {"labelgnp.pdf", "notes.txt"}
    assert bytes(files["labelgnp.pdf"]["data"]) == b"%PDF-1.4 label"
    assert files["labelgnp.pdf"]["content_type"] == "application/pdf"
    assert not any(r["is_public"] for r in files.values())
    body = await conn.fetchval("SELECT body FROM history_notes WHERE message_id = '<files@phone.test>'")
    assert body == "Photo of the label attached."


async def test_a_reply_delivered_twice_is_stored_once(daemon, conn, seed, smtp_sink) -> None:
    ticket = seed["t_acme_sub1"]
    address, _ = await alert_reply_to(conn, smtp_sink, ticket, seed["sub1"])
    mail = reply(address, text="Only once, please.", message_id="<twice@phone.test>")
    first = await dialogue(daemon.port_smtp, rcpt=address, data=mail)
    # an MTA that lost our 250 delivers again, with whatever case it likes in the address
    again = await dialogue(daemon.port_smtp, rcpt=address.upper(), data=mail)
    assert first.accepted and again.accepted and "already stored" in again.text
    assert await conn.fetchval(
        "SELECT count(*) FROM history_notes WHERE message_id = '<twice@phone.test>'") == 1


async def test_a_token_signed_by_another_instance_verifies(daemon, aiohttp_client, inbound_config,
                                                           dsn, conn, seed, smtp_sink) -> None:
    address, _ = await alert_reply_to(conn, smtp_sink, seed["t_acme_sub1"], seed["sub1"])
    other = with_settings(inbound_config, inbound={"port": free_port()})
    await aiohttp_client(build_app(other, dsn, setup_web=setup_web, background=False))
    answer = await dialogue(other.inbound.port, rcpt=address, data=reply(address, text="Via the other one."))
    assert answer.accepted, answer
    assert await conn.fetchval("SELECT count(*) FROM history_notes WHERE body = 'Via the other one.'") == 1


async def admin_cli(config, capsys, *argv: str) -> dict:
    """`portald admin … --json` as the CLI runs it (its own loop, in a thread)."""
    code = await asyncio.to_thread(main, ["admin", *argv, "--json", "--config", str(config.path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


async def test_rotation_keeps_old_addresses_for_the_grace_period_then_refuses_them(
        daemon, conn, seed, smtp_sink, inbound_config, capsys) -> None:
    ticket = seed["t_acme_sub1"]
    first, _ = await alert_reply_to(conn, smtp_sink, ticket, seed["sub1"])
    rotated = await admin_cli(inbound_config, capsys, "inbound", "rotate-key", "--grace-hours", "24")
    assert rotated["previous"] is not None and rotated["key"] != rotated["previous"]
    assert (await dialogue(daemon.port_smtp, rcpt=first, data=reply(first, text="old key, in grace"))).accepted
    second, _ = await alert_reply_to(conn, smtp_sink, ticket, seed["sub1"])
    assert second != first  # new mails are signed by the new key
    assert (await dialogue(daemon.port_smtp, rcpt=second, data=reply(second, text="new key"))).accepted
    # the 24 hours have passed
    await conn.execute("UPDATE reply_keys SET retires_at = now() - interval '1 second' WHERE id = $1",
                       rotated["previous"])
    answer = await dialogue(daemon.port_smtp, rcpt=first, data=reply(first, text="too late"))
    assert (answer.step, answer.code) == ("RCPT", 550) and "expired" in answer.text
    # no grace at all: the current key's addresses stop at once
    await admin_cli(inbound_config, capsys, "inbound", "rotate-key", "--grace-hours", "0")
    answer = await dialogue(daemon.port_smtp, rcpt=second, data=reply(second, text="also too late"))
    assert (answer.step, answer.code) == ("RCPT", 550)
    keys = await admin_cli(inbound_config, capsys, "inbound", "keys")
    assert [k["state"] for k in keys] == ["current", "expired", "expired"]
    assert all("secret" not in k for k in keys)
    assert await conn.fetchval("SELECT count(*) FROM history_notes WHERE body LIKE '%too late'") == 0
    reasons = [json.loads(r["after"])["reason"] for r in await conn.fetch(
        "SELECT after FROM audit_log WHERE action = 'inbound.refused' ORDER BY id")]
    assert reasons == ["key_expired", "key_expired"]


async def test_the_real_daemon_takes_a_reply_sent_with_smtplib(conn, dsn, seed, smtp_sink,
                                                              tmp_path: Path) -> None:
    await forget_mail(conn)
    sections = portal_sections(tmp_path, dsn, smtp_sink.port, http_port=free_port())
    sections["inbound"] = {"enabled": True, "port": free_port(), "reply_address": REPLY_ADDRESS}
    sections["log"] = {"level": "INFO"}
    log_path = tmp_path / "daemon.log"
    proc = spawn_daemon(write_config(tmp_path / "config.toml", sections), log_path)
    try:
        address, alert = await alert_reply_to(conn, smtp_sink, seed["t_acme_sub1"], seed["sub1"])
        message = reply(address, text="Fixed from my phone.\n\n" + quoted(alert))
        await asyncio.to_thread(_smtplib_send, sections["inbound"]["port"], address, message)
        body = await conn.fetchval("SELECT body FROM history_notes WHERE message_id = $1",
                                   message["Message-ID"])
        assert body == "Fixed from my phone."
    finally:
        assert stop_daemon(proc) == 0
    log = log_path.read_text()
    assert "listening for replies by mail on 127.0.0.1" in log
    assert re.search(r"reply by mail from employee:sub1 stored as note \d+", log)
    assert "Traceback" not in log


def _smtplib_send(port: int, address: str, message) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="phone.test", timeout=30) as smtp:
        refused = smtp.send_message(message, from_addr="sub1@msp.test", to_addrs=[address])
    assert refused == {}


async def test_a_taken_inbound_port_stops_the_start_with_a_clear_reason(dsn, smtp_sink, tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        sections = portal_sections(tmp_path, dsn, smtp_sink.port, http_port=free_port())
        sections["inbound"] = {"enabled": True, "port": port, "reply_address": REPLY_ADDRESS}
        proc = await start_daemon(write_config(tmp_path / "config.toml", sections))
        assert await asyncio.wait_for(proc.wait(), 30) == 1
        stderr = (await proc.stderr.read()).decode()
    finally:
        taken.close()
    assert f"cannot listen for replies on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr
