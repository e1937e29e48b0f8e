"""Two-factor login (TOTP, RFC 6238, with pyotp): secrets, codes, recovery codes, and turning
it on and off — for an administrator (`portald admin … totp`, the admin pages) and for the user
themselves (the Security page, /api/v1/me/totp).

A code is accepted for the current 30-second step or the one before or after (clocks drift),
and only once: the step is recorded, and a code of that step or an earlier one is refused.
Ten recovery codes stand in for the device, each once; only their SHA-256 is stored (they are
random, 50 bits each, so a slow hash would add nothing). The secret itself is stored as it is
(daemon/db/sql/010_two_factor.sql says why) and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import asyncpg
import pyotp
import segno

from daemon.access.scope import Kind
from daemon.queries import audit as audit_q
from daemon.queries import sessions as sessions_q
from daemon.queries import totp as q
from daemon.services.common import AdminError, change
from daemon.services.employees import find_employee
from daemon.services.webusers import find_webuser

ISSUER = "portald"
STEP_S = 30
TOLERANCE_STEPS = 1
RECOVERY_CODES = 10
# Lower-case letters and digits without look-alikes; two groups of five: 50 bits a code.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_GROUP = 5


def new_secret() -> str:
    return pyotp.random_base32()  # 32 characters: 160 bits, as RFC 4226 recommends


def otpauth_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG: shown by the page itself, no script, no request."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2)


def matched_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The 30-second step `code` is valid for, within the tolerance, or None."""
    code = "".join(code.split())
    # isascii: isdigit() also takes other scripts' digits ("١٢٣٤٥٦"), which are no code and
    # which hmac.compare_digest refuses with a TypeError
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    current = int((time.time() if now is None else now) // STEP_S)
    for step in range(current - TOLERANCE_STEPS, current + TOLERANCE_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_S), code):
            return step
    return None


def _normal_recovery(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def recovery_hash(code: str) -> bytes:
    return hashlib.sha256(_normal_recovery(code).encode()).digest()


def new_recovery_codes() -> list[str]:
    return ["-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUP))
                     for _ in range(2)) for _ in range(RECOVERY_CODES)]


async def store_recovery_codes(conn: asyncpg.Connection, kind: Kind, user_id: int) -> list[str]:
    """Ten new recovery codes in place of the old ones; answers them in clear, this once."""
    codes = new_recovery_codes()
    await q.replace_recovery_codes(conn, kind, user_id, [recovery_hash(c) for c in codes])
    return codes


async def verify_code(conn: asyncpg.Connection, kind: Kind, user_id: int, code: str) -> str | None:
    """Accept a current TOTP code or an unused recovery code, and use it up: "totp",
    "recovery", or None (wrong, already used, or two-factor not on)."""
    cred = await q.credential(conn, kind, user_id)
    if cred is None or cred["confirmed_at"] is None:
        return None
    step = matched_step(cred["secret"], code)
    if step is not None:
        return "totp" if await q.use_step(conn, cred["id"], step) else None
    if len(_normal_recovery(code)) == 2 * _RECOVERY_GROUP and await q.use_recovery_code(
            conn, kind, user_id, recovery_hash(code)):
        return "recovery"
    return None


async def status(conn: asyncpg.Connection, kind: Kind, user_id: int) -> dict[str, Any]:
    cred = await q.credential(conn, kind, user_id)
    enabled = cred is not None and cred["confirmed_at"] is not None
    return {"enabled": enabled, "setup_pending": cred is not None and not enabled,
            "recovery_codes_left": await q.recovery_codes_left(conn, kind, user_id) if enabled else 0}


async def enable(conn: asyncpg.Connection, kind: Kind, user_id: int,
                 username: str) -> dict[str, Any]:
    """A new confirmed secret and new recovery codes (an administrator hands them over)."""
    secret = new_secret()
    await q.replace_credential(conn, kind, user_id, secret, confirmed=True)
    codes = await store_recovery_codes(conn, kind, user_id)
    return {"secret": secret, "otpauth_uri": otpauth_uri(secret, username), "recovery_codes": codes}


async def disable(conn: asyncpg.Connection, kind: Kind, user_id: int) -> bool:
    await q.delete_recovery_codes(conn, kind, user_id)
    return await q.delete_credential(conn, kind, user_id)


# -- by an administrator: `portald admin employee|webuser totp U --enable|--disable` ----------

async def set_totp(conn: asyncpg.Connection, *, actor: str, kind: Kind, username: str,
                   enabled: bool, keep_session: bytes | None = None) -> dict[str, Any]:
    """Turn a user's two-factor login on (a new secret: enabling again is a reset) or off, and
    end their sessions (but `keep_session`, the administrator's own, when it is theirs)."""
    find = find_webuser if kind == "customer" else find_employee
    word = "webuser" if kind == "customer" else "employee"
    async with change(conn):
        row = await find(conn, username, lock=True)
        before = (await status(conn, kind, row["id"]))["enabled"]
        if not enabled and not before:
            raise AdminError(f'two-factor login of "{row["username"]}" is not on')
        result: dict[str, Any] = {"username": row["username"], "totp": "on" if enabled else "off"}
        if enabled:
            result.update(await enable(conn, kind, row["id"], row["username"]))
        else:
            await disable(conn, kind, row["id"])
        result["sessions_ended"] = await end_sessions(conn, kind, row["id"], keep=keep_session)
        # whether it is on, never the secret nor the codes
        await audit_q.record(conn, actor=actor, action="totp.enable" if enabled else "totp.disable",
                             target=f"{word}:{row['username']}", before={"totp": before},
                             after={"totp": enabled, "sessions_ended": result["sessions_ended"]})
    return result


async def end_sessions(conn: asyncpg.Connection, kind: Kind, user_id: int, *,
                       keep: bytes | None) -> int:
    if keep is None:
        return await sessions_q.delete_all(conn, kind=kind, user_id=user_id)
    return await sessions_q.delete_others(conn, kind=kind, user_id=user_id, keep=keep)


async def enabled_ids(conn: asyncpg.Connection, kind: Kind) -> set[int]:
    return await q.enabled_ids(conn, kind)
