"""Signed reply addresses: `<local>+<token>@<domain>`, where the token names one employee and
one ticket and carries a MAC by a key kept in the database (daemon/queries/reply_keys.py), so
that every instance signs and verifies alike.

The token is lowercase base32 (a-z, 2-7) of

    key slot (1 byte) · employee id (varint) · ticket id (varint) · HMAC-SHA256[:8]

An MTA may lowercase a local part, and base32 survives that; it has no character that needs
quoting in an address. The slot is the key's id modulo 256 (only the current key and the
few rotated ones still in their grace period are ever looked at). 64 bits of MAC are plenty
for a secret that can only be guessed online, one SMTP transaction (and one audit row) per
guess. With ids of up to 63 bits the token has at most MAX_TOKEN_CHARS characters, so a
local part of up to MAX_LOCAL_CHARS leaves the whole within the 64 of RFC 5321.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

MAC_BYTES = 8
_MAX_ID_BYTES = 9  # a varint of 63 bits
MAX_TOKEN_CHARS = math.ceil((1 + 2 * _MAX_ID_BYTES + MAC_BYTES) * 8 / 5)
MAX_LOCAL_CHARS = 64 - 1 - MAX_TOKEN_CHARS  # "+" and the token follow it
_CONTEXT = b"portald reply address v1\x00"
_TOKEN = re.compile(rf"[a-z2-7]{{1,{MAX_TOKEN_CHARS}}}\Z")


@dataclass(frozen=True)
class ReplyKey:
    id: int
    secret: bytes = b""

    @property
    def slot(self) -> int:
        return self.id % 256


@dataclass(frozen=True)
class Claim:
    """What a token says, before its MAC is checked."""

    slot: int
    employee_id: int
    ticket_id: int
    signed: bytes
    mac: bytes

    def signed_by(self, key: ReplyKey) -> bool:
        return key.slot == self.slot and hmac.compare_digest(_mac(key, self.signed), self.mac)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int] | None:
    """(value, next position); None unless a minimal encoding of at most 63 bits."""
    value = shift = 0
    for i in range(at, min(len(data), at + _MAX_ID_BYTES)):
        value |= (data[i] & 0x7F) << shift
        shift += 7
        if not data[i] & 0x80:
            if data[i] == 0 and i > at:  # a needless zero byte: not what sign() writes
                return None
            return value, i + 1
    return None


def _mac(key: ReplyKey, signed: bytes) -> bytes:
    return hmac.new(key.secret, _CONTEXT + signed, hashlib.sha256).digest()[:MAC_BYTES]


def sign(key: ReplyKey, *, employee_id: int, ticket_id: int) -> str:
    if not (0 < employee_id < 2 ** 63 and 0 < ticket_id < 2 ** 63):
        raise ValueError("ids must be positive 63-bit integers")
    signed = bytes([key.slot]) + _varint(employee_id) + _varint(ticket_id)
    return _encode(signed + _mac(key, signed))


def _encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def read(token: str) -> Claim | None:
    """The claim of a token that is well formed (whatever its case), else None."""
    token = token.lower()
    if not _TOKEN.match(token):
        return None
    try:
        data = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except ValueError:
        return None
    if _encode(data) != token:  # unused trailing bits set: not a token sign() wrote
        return None
    if len(data) < 1 + 2 + MAC_BYTES:
        return None
    employee = _read_varint(data, 1)
    ticket = _read_varint(data, employee[1]) if employee else None
    if employee is None or ticket is None or len(data) - ticket[1] != MAC_BYTES:
        return None
    if employee[0] == 0 or ticket[0] == 0:
        return None
    end = ticket[1]
    return Claim(slot=data[0], employee_id=employee[0], ticket_id=ticket[0], signed=data[:end],
                 mac=data[end:])


def signing_key(claim: Claim, keys: Iterable[ReplyKey]) -> ReplyKey | None:
    """The key among `keys` that signed the claim, if any."""
    return next((k for k in keys if claim.signed_by(k)), None)


@dataclass(frozen=True)
class ReplyAddress:
    """`[inbound] reply_address` split, and the addresses built on it."""

    local: str
    domain: str

    @classmethod
    def parse(cls, configured: str) -> ReplyAddress:
        local, _, domain = configured.rpartition("@")
        return cls(local=local, domain=domain)

    def for_token(self, token: str) -> str:
        return f"{self.local}+{token}@{self.domain}"

    def token_of(self, address: str) -> str | None:
        """The token of one of our reply addresses (any case), else None."""
        local, at, domain = address.strip().rpartition("@")
        if not at or domain.lower() != self.domain.lower():
            return None
        base, plus, token = local.partition("+")
        if not plus or base.lower() != self.local.lower() or not token:
            return None
        return token
