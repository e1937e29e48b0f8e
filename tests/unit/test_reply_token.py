"""Reply address tokens (daemon/mail/reply_token.py) and the [inbound] keys that shape them."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config
from daemon.mail.reply_token import (
    MAX_LOCAL_CHARS,
    MAX_TOKEN_CHARS,
    ReplyAddress,
    ReplyKey,
    read,
    sign,
    signing_key,
)

KEY = ReplyKey(3, bytes(range(32)))
OTHER = ReplyKey(3, bytes(range(1, 33)))
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def test_a_token_names_its_employee_and_ticket_in_any_case() -> None:
    token = sign(KEY, employee_id=7, ticket_id=1042)
    assert token == token.lower() and set(token) <= set(ALPHABET)
    for variant in (token, token.upper(), token.capitalize()):
        claim = read(variant)
        assert claim is not None and (claim.employee_id, claim.ticket_id) == (7, 1042)
        assert signing_key(claim, [OTHER, KEY]) == KEY


def test_no_single_change_and_no_other_key_verifies() -> None:
    token = sign(KEY, employee_id=7, ticket_id=1042)
    for i, ch in enumerate(token):
        for other in ALPHABET.replace(ch, ""):
            claim = read(token[:i] + other + token[i + 1:])
            assert claim is None or signing_key(claim, [KEY]) is None, (i, other)
    assert signing_key(read(token), [OTHER]) is None
    for cut in (token[:-1], token + "a", "", "0" * 20, "portald"):
        claim = read(cut)
        assert claim is None or signing_key(claim, [KEY]) is None


def test_the_longest_address_fits_in_64_characters() -> None:
    token = sign(ReplyKey(2 ** 31 - 1, b"k" * 32), employee_id=2 ** 63 - 1, ticket_id=2 ** 63 - 1)
    assert len(token) == MAX_TOKEN_CHARS
    address = ReplyAddress.parse("a" * MAX_LOCAL_CHARS + "@reply.example.com").for_token(token)
    assert len(address.split("@")[0]) == 64


def test_reply_addresses_are_recognised_whatever_the_case() -> None:
    ours = ReplyAddress.parse("portald-reply@Reply.Example.com")
    assert ours.token_of("PORTALD-REPLY+ABC@reply.example.COM") == "ABC"
    for other in ("portald-reply@reply.example.com", "someone+abc@reply.example.com",
                  "portald-reply+abc@elsewhere.example", "portald-reply+@reply.example.com", "x"):
        assert ours.token_of(other) is None, other


@pytest.mark.parametrize(("address", "says"), [
    ("portald-reply", "must be an address"),
    ("a+b@example.com", "must be an address"),
    ("x" * (MAX_LOCAL_CHARS + 1) + "@example.com", f"at most {MAX_LOCAL_CHARS} characters"),
    ("reply@exa mple.com", "must be an address"),
])
def test_a_reply_address_that_cannot_carry_a_token_is_refused(tmp_path: Path, address: str,
                                                               says: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[inbound]\nenabled = true\nreply_address = "{address}"\nport = 0\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    problems = "; ".join(refused.value.problems)
    assert "inbound.reply_address" in problems and says in problems
    assert "inbound.port: must be between 1 and 65535" in problems
