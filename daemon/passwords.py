"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")

_hasher = PasswordHasher()

# Verified against when the user does not exist, so a wrong user costs what a wrong password does.
DUMMY_HASH = _hasher.hash("portald-no-such-user")

MIN_LENGTH = 8
MAX_LENGTH = 1024


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password must have at most {MAX_LENGTH} characters"
    return None


# -- hashing off the event loop, a bounded number at a time ------------------------------------
# Each hash is ~50-200 ms of one core. More threads than cores only make every hash slower and
# let a flood of logins take the whole machine; callers beyond the slots wait their turn, for a
# bounded time, holding nothing else (no database connection) while they wait or hash.
HASH_WAIT_S = 10.0


class HashingBusy(Exception):
    """Every hashing slot stayed taken for HASH_WAIT_S: the caller should answer "try again"."""


class PasswordGate:
    """At most `slots` password hashes at once (default: one per core this process may use)."""

    def __init__(self, slots: int | None = None, *, wait_s: float = HASH_WAIT_S) -> None:
        self.slots = slots or len(os.sched_getaffinity(0)) or 1
        self.wait_s = wait_s
        self._semaphore = asyncio.Semaphore(self.slots)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._semaphore.acquire()
        except TimeoutError:
            raise HashingBusy() from None
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self._semaphore.release()

    async def verify(self, password_hash: str | None, password: str) -> bool:
        # looked up at each call, so that the module's function is the one used
        return await self._run(lambda h, p: verify_password(h, p), password_hash, password)

    async def hash(self, password: str) -> str:
        return await self._run(lambda p: hash_password(p), password)
