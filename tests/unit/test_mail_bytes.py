"""The message writer: bodies exactly as the standard library's email package writes them;
headers written by our own writer (the email package's folder is not safe with data, see
daemon/mail/mime.py), which must decode back to exactly the data, keep every line within 78
columns of printable ASCII, and never let data become a header."""

from __future__ import annotations

import base64
import datetime
import email
import email.header
import email.policy
import email.utils
import random
import re

import pytest

from daemon.access.scope import Principal
from daemon.mail import mime
from daemon.mail.identity import MailIdentity, new_message_id
from daemon.mail.render import render_mail
from daemon.mail.values import header_text

PIECES = ["Bob", "Bób Émile", "O'Brien", "Smith, John", '"Quoted"', "x" * 90, "", " lead", "trail ",
          "=?utf-8?q?hi?=", "Tech\r\nBcc: victim@evil.test", "日本語の名前", "(comment)", "<angle>",
          "tab\there", "émoji 🎉", "multiple words in a rather long display name for folding purposes yes"]
TEXTS = ["drain 5\nwith a second line", "Printer on fire", "é" * 100, "日本語" * 40, "x" * 200,
         "=?utf-8?b?Zm9v?= subject", "Hello\r\nBcc: victim@evil.test\nX-Injected: yes\u2028<script>x</script>",
         "\n\n  leading blank", "a\rb\rc", "From me\n.dot\n..two", "trailing   \nspaces\t\n",
         "\f form feed \x00 nul", "word " * 30, "line\n" * 30, "", "   "]
ADDRESSES = ["first.last@sub.example.com", "a+b=c@x-y.io", "o'neil@x.y", "bob@msp.example",
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


BOUNDARY = "=_portald_fixedboundary0123456789abcdef"
TOP_HEADERS = {"subject", "from", "to", "date", "message-id", "auto-submitted", "precedence",
               "x-auto-response-suppress", "mime-version", "content-type"}
THREAD_HEADERS = {"in-reply-to", "references"}


@pytest.fixture(autouse=True)
def fixed_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    # the writer draws a random MIME boundary; fix it so its bytes can be compared
    monkeypatch.setattr(mime, "_new_boundary", lambda: BOUNDARY)


def _header_block(data: bytes) -> bytes:
    return data[: data.index(b"\r\n\r\n") + 2]


def mailbox(data: bytes, name: str) -> tuple[str, str]:
    """(display name, address) of an address header, decoded as RFC 2047 says: the email
    package's own address parser puts a space between adjacent encoded words of a phrase,
    where the RFC (and mail clients) join them."""
    raw = email.message_from_bytes(data, policy=email.policy.compat32)[name]
    display_name, address = email.utils.parseaddr(" ".join(raw.split()))
    if display_name.startswith("=?"):
        display_name = str(email.header.make_header(email.header.decode_header(display_name)))
    return display_name, address


def assert_safe_header_block(block: bytes) -> None:
    """Every line printable ASCII within 78 columns, CRLF ended; continuation lines start
    with a space; every header name one of ours."""
    assert block.endswith(b"\r\n") and b"\r\n\r\n" not in block
    lines = block[:-2].split(b"\r\n")
    for line in lines:
        # a msg-id or an address cannot be folded: only a line of nothing else may be longer
        assert (re.fullmatch(rb"[ -~]{1,78}", line)
                or re.fullmatch(rb"(?:[A-Za-z-]+:)? ?<?[!-~]+>?", line) and len(line) <= 998), line
        assert b"\r" not in line and b"\n" not in line
    names = {line.split(b":", 1)[0].decode().lower() for line in lines if not line.startswith(b" ")}
    assert names <= TOP_HEADERS | THREAD_HEADERS, names


@pytest.mark.parametrize("seed", range(4))
def test_message_bytes_body_equals_the_email_package(seed: int) -> None:
    # The reference used to be the email package's whole message; its headers now differ on
    # purpose (the package's folder decodes encoded words from data), so the reference is
    # its body (MIME-Version, Content-Type and both parts) after our header block.
    rnd = random.Random(seed)
    for i in range(150):
        row, kw = _case(rnd, i)
        _subject, text, html = render_mail(row, identity=kw["identity"], recipient=kw["recipient"],
                                           ticket=kw["ticket"], child=kw["child"], digest=kw["digest"])
        data = mime.message_bytes(row, **kw)
        ours = mime.mail_headers(row, identity=kw["identity"], recipient=kw["recipient"],
                                 address=kw["address"], subject=_subject)
        body = mime.build_body(text, html, BOUNDARY).as_bytes(policy=mime.MESSAGE_POLICY)
        assert body.startswith(b"MIME-Version: 1.0\r\n")
        assert data == ours + body, (row, kw)


@pytest.mark.parametrize("seed", range(4))
def test_headers_decode_to_exactly_the_data(seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(150):
        row, kw = _case(rnd, i)
        subject, _text, _html = render_mail(row, identity=kw["identity"], recipient=kw["recipient"],
                                            ticket=kw["ticket"], child=kw["child"], digest=kw["digest"])
        data = mime.message_bytes(row, **kw)
        assert_safe_header_block(_header_block(data))
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        expected = TOP_HEADERS | (THREAD_HEADERS if row["ticket_id"] is not None else set())
        assert {k.lower() for k in parsed} == expected
        assert parsed["Subject"] == subject
        assert len(parsed["To"].addresses) == 1
        assert mailbox(data, "To") == (header_text(kw["recipient"].display_name), kw["address"])
        assert mailbox(data, "From") == email.utils.parseaddr(kw["identity"].from_header)
        assert parsed["Auto-Submitted"] == "auto-generated"


def test_data_never_becomes_a_header() -> None:
    rnd = random.Random(99)
    for i in range(300):
        row, kw = _case(rnd, i)
        parsed = email.message_from_bytes(mime.message_bytes(row, **kw), policy=email.policy.default)
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None and parsed["X"] is None
        assert parsed["Auto-Submitted"] == "auto-generated"


INJECTIONS = [
    "=?utf-8?b?DQpSZXBseS1UbzogYm9zc0BldmlsLmV4YW1wbGUNClgtSW5qZWN0ZWQ6IHllcw==?=",
    "=?utf-8?q?=0D=0AReply-To:_boss@evil.example=0D=0AX-Injected:_yes?=",
    "=?utf-8?b?DQoNCmJvZHkgd3JpdHRlbiBieSB0aGUgc2VuZGVy?=",  # CRLF CRLF: a blank line
    "x =?iso-8859-1?q?=0A=0AX-Injected:_yes?= y",
    "Hello\r\n\r\nX-Injected: yes",
    "é =?utf-8?b?DQpYLUluamVjdGVkOiB5ZXM=?= ünïcödé",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_encoded_words_and_blank_lines_in_data_stay_text(text: str) -> None:
    for header in (mime.text_header("Subject", text), mime.address_header("To", "a@b.example", text),
                   mime.address_header("Reply-To", "a@b.example", text)):
        assert_safe_header_block(header.replace(b"Reply-To", b"To"))
        data = header + b"\r\nbody\r\n"
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        (name,) = parsed
        shown = str(parsed[name]) if name == "Subject" else mailbox(data, name)[0]
        assert shown == " ".join(re.sub(r"[\r\n]", " ", text).split())
        assert parsed.get_payload() == "body\r\n"


def test_exact_bytes_of_the_writer() -> None:
    assert mime.text_header("Subject", "Printer on fire") == b"Subject: Printer on fire\r\n"
    assert mime.text_header("Subject", "a =?x?= b") == b"Subject: =?utf-8?b?YSA9P3g/PSBi?=\r\n"
    assert mime.text_header("Subject", "é") == b"Subject: =?utf-8?b?w6k=?=\r\n"
    assert mime.address_header("To", "b@x.y", "Bob") == b"To: Bob <b@x.y>\r\n"
    assert mime.address_header("To", "b@x.y", "Smith, J") == b'To: "Smith, J" <b@x.y>\r\n'
    assert mime.address_header("To", "b@x.y", 'a"b\\') == b'To: "a\\"b\\\\" <b@x.y>\r\n'
    assert mime.address_header("To", "b@x.y") == b"To: b@x.y\r\n"
    long = mime.text_header("Subject", "word " * 30)
    assert long.count(b"\r\n ") == 2 and long.startswith(b"Subject: word word")
    # whole characters per encoded word: a 4-byte character is never split across two
    for word in re.findall(rb"=\?utf-8\?b\?([^?]*)\?=", mime.text_header("Subject", "🎉" * 40)):
        assert base64.b64decode(word).decode("utf-8") == "🎉" * (len(base64.b64decode(word)) // 4)


@pytest.mark.parametrize("address", ["ü@ex.com", "a@b>\r\nBcc: c@d", "<a@b>", "a=?b@c", "no-at"])
def test_an_address_that_is_not_plain_ascii_is_refused(address: str) -> None:
    with pytest.raises(ValueError):
        mime.address_header("To", address, "Bob")
