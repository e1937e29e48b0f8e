"""The fast message writer produces exactly what the standard library's email package does,
for awkward names, subjects, bodies and addresses; and data never becomes a header."""

from __future__ import annotations

import datetime
import email
import email.policy
import random

import pytest

from daemon.access.scope import Principal
from daemon.mail import mime
from daemon.mail.identity import MailIdentity, new_message_id

PIECES = ["Bob", "Bób Émile", "O'Brien", "Smith, John", '"Quoted"', "x" * 90, "", " lead", "trail ",
          "=?utf-8?q?hi?=", "Tech\r\nBcc: victim@evil.test", "日本語の名前", "(comment)", "<angle>",
          "tab\there", "émoji 🎉", "multiple words in a rather long display name for folding purposes yes"]
TEXTS = ["drain 5\nwith a second line", "Printer on fire", "é" * 100, "日本語" * 40, "x" * 200,
         "=?utf-8?b?Zm9v?= subject", "Hello\r\nBcc: victim@evil.test\nX-Injected: yes\u2028<script>x</script>",
         "\n\n  leading blank", "a\rb\rc", "From me\n.dot\n..two", "trailing   \nspaces\t\n",
         "\f form feed \x00 nul", "word " * 30, "line\n" * 30, "", "   "]
ADDRESSES = ["first.last@sub.example.com", "a+b=c@x-y.io", "o'neil@x.y", "bob@msp.example", "ü@ex.com",
             '"q"@x.y', "bob@MSP.Example"]
MESSAGE_IDS = ["<portald.abc@portal.example>", "<weird id@x>", "<" + "a" * 90 + "@x>", "<a@b>\r\nX: y"]
EVENTS = ["note", "assigned", "status", "charge", "email", "digest", "test", "reminder", "created", "closed"]
ZONES = [datetime.UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
         datetime.timezone(datetime.timedelta(hours=-8))]


def _case(rnd: random.Random, i: int) -> tuple[dict, dict]:
    now = datetime.datetime(2026, rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23),
                            rnd.randint(0, 59), tzinfo=rnd.choice(ZONES))
    host = rnd.choice(["portal.example", "localhost", "a-b.example.org"])
    identity = MailIdentity(
        public_url=f"http://{host}", from_addr="p@x.y",
        from_header=rnd.choice(["portald <portald@portal.example>", "Pörtal Dæmon <p@x.y>", "p@x.y"]),
        host=host)
    recipient = Principal(kind="employee", id=2, username="bob", display_name=rnd.choice(PIECES) or "Bob",
                          group_name="Standard", privileges={}, all_accounts=True)
    event = rnd.choice(EVENTS)
    ticket_id = None if event in ("digest", "test") else rnd.randint(1, 10**6)
    row = {"id": i, "event": event, "ticket_id": ticket_id, "employee_id": 2, "subject_id": i,
           "payload": rnd.choice(['{"from": "open", "to": "waiting"}', '{"hours": 5}', "{}"]),
           "message_id": rnd.choice(MESSAGE_IDS) if rnd.random() < 0.3 else new_message_id(host),
           "attempts": 0, "created_at": now}
    ticket = None if ticket_id is None else {
        "id": ticket_id, "number": "T-1005", "description": rnd.choice(TEXTS), "status": "open",
        "priority": "normal", "created_at": now, "updated_at": now, "account_name": rnd.choice(PIECES),
        "assignee_name": rnd.choice([None, "Alice"])}
    child = None if ticket is None else {
        "id": i, "ticket_id": ticket_id, "body": rnd.choice(TEXTS) + rnd.choice(TEXTS), "created_at": now,
        "author_name": rnd.choice(PIECES), "kind": "labor", "description": rnd.choice(TEXTS),
        "quantity": 2, "unit_price": 3.5, "amount": 7.0, "from_addr": rnd.choice(ADDRESSES),
        "to_addr": "y@z", "subject": rnd.choice(TEXTS), "is_public": True}
    digest = [] if event != "digest" else [
        {"id": 1, "number": "T-1", "description": rnd.choice(TEXTS), "status": "open", "priority": "high",
         "created_at": now, "updated_at": now, "account_name": "Acme", "assignee_name": None}] * rnd.randint(1, 3)
    return row, {"identity": identity, "recipient": recipient, "address": rnd.choice(ADDRESSES),
                 "ticket": ticket, "child": child, "digest": digest}


@pytest.fixture(autouse=True)
def fixed_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    # both writers draw a random MIME boundary; fix it so their bytes can be compared
    monkeypatch.setattr(mime, "_new_boundary", lambda: "=_portald_fixedboundary0123456789abcdef")


@pytest.mark.parametrize("seed", range(4))
def test_message_bytes_equal_the_email_package(seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(150):
        row, kw = _case(rnd, i)
        expected = mime.build_message(row, **kw).as_bytes(policy=mime.MESSAGE_POLICY)
        assert mime.message_bytes(row, **kw) == expected, (row, kw)


def test_data_never_becomes_a_header() -> None:
    rnd = random.Random(99)
    for i in range(300):
        row, kw = _case(rnd, i)
        parsed = email.message_from_bytes(mime.message_bytes(row, **kw), policy=email.policy.default)
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None and parsed["X"] is None
        assert parsed["Auto-Submitted"] == "auto-generated"
