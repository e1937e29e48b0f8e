"""Whatever text reaches a mail header (a ticket's description in the subject, an employee's
name in To), RFC 2047 encoded words and blank lines included, stays text: checked on the bytes
the SMTP server receives, on any Python patch level (the email package's own folder re-emits
the CR/LF an encoded word hides, CVE-2024-6923)."""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils

import pytest

from daemon.mail.values import summary
from tests.support.mail import (
    forget_mail,
    new_ticket,
    running_worker,
    set_mail_settings,
    wait_until,
)
from tests.support.seed import seed

B_WORD = "=?utf-8?b?DQpSZXBseS1UbzogYm9zc0BldmlsLmV4YW1wbGUNClgtSW5qZWN0ZWQ6IHllcw==?="
Q_WORD = "=?utf-8?q?=0D=0AReply-To:_boss@evil.example=0D=0AX-Injected:_yes?="
BLANK_LINE = "=?utf-8?b?DQoNCmJvZHkgd3JpdHRlbiBieSB0aGUgc2VuZGVy?="  # CRLF CRLF, then a body
PAYLOADS = [B_WORD, Q_WORD, BLANK_LINE, f"Ünïcode {Q_WORD} and {BLANK_LINE}"]
HEADERS = {"subject", "from", "to", "date", "message-id", "in-reply-to", "references",
           "auto-submitted", "precedence", "x-auto-response-suppress", "mime-version",
           "content-type"}


async def _true(value: bool) -> bool:
    return value


def decoded_display_name(raw: bytes) -> str:
    # RFC 2047 joins adjacent encoded words; the email package's address parser does not
    value = email.message_from_bytes(raw, policy=email.policy.compat32)["To"]
    name, _address = email.utils.parseaddr(" ".join(value.split()))
    return str(email.header.make_header(email.header.decode_header(name)))


def assert_only_our_headers(raw: bytes) -> None:
    block = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 and line.isascii() for line in block.split(b"\r\n")), block
    starts = {line.split(b":", 1)[0].lower() for line in block.split(b"\r\n") if line[:1] != b" "}
    assert starts == {h.encode() for h in HEADERS}, block
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert {k.lower() for k in parsed} == HEADERS
    assert parsed.get_content_type() == "multipart/alternative"
    assert "body written by the sender" not in parsed.get_body(("plain",)).get_content()[:40]


async def test_a_customer_cannot_write_headers_of_the_ticket_created_alert(
        users, demo_db, demo_config, demo_dsn, smtp_sink) -> None:
    await forget_mail(demo_db)
    admin = await demo_db.fetchval("SELECT id FROM employees WHERE username = 'admin'")
    await set_mail_settings(demo_db, admin, alert_created=True)
    full = await users.login("full@acme")
    for payload in PAYLOADS:
        reply = await full.post("/api/v1/tickets", {"description": f"{payload}\nplease help"})
        assert reply.status == 201, reply
    def to_admin() -> list:
        return [m for m in smtp_sink.received if m.rcpt_tos == [admin_address]]

    admin_address = await demo_db.fetchval("SELECT email FROM employees WHERE id = $1", admin)
    async with running_worker(demo_config, demo_dsn):
        assert await wait_until(lambda: _true(len(to_admin()) >= len(PAYLOADS)))
    mine = to_admin()
    assert len(mine) == len(PAYLOADS)
    subjects = set()
    for mail in mine:
        assert_only_our_headers(mail.raw)
        subjects.add(mail.message["Subject"].split(": ", 1)[1])
    assert subjects == {summary(p) for p in PAYLOADS}  # shown literally, as typed


@pytest.mark.parametrize("name", [B_WORD, Q_WORD, BLANK_LINE, "Tech\r\n\r\nBcc: victim@evil.test"])
async def test_an_employees_name_cannot_write_headers(conn, config, dsn, smtp_sink, name: str) -> None:
    s = await seed(conn, tickets=False)
    await conn.execute("UPDATE employees SET full_name = $1 WHERE id = $2", name, s["tech"])
    await new_ticket(conn, s["acme"], f"{Q_WORD} and {B_WORD}", assigned_to=s["tech"])
    async with running_worker(config, dsn):
        [got] = await smtp_sink.wait_for_async(1)
    assert_only_our_headers(got.raw)
    assert got.rcpt_tos == ["tech@msp.test"]
    assert decoded_display_name(got.raw) == " ".join(name.split())
    assert got.message["Subject"].endswith(f"Assigned to you: {summary(Q_WORD + ' and ' + B_WORD)}")
