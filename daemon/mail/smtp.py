"""Sending over SMTP: one connection per batch (kept for the next batch while full batches
follow each other), and each server answer classified as sent, retry or failed."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from functools import cache
from typing import Literal

import aiosmtplib

from daemon.config import SmtpConfig
from daemon.mail.batch import ERROR_MAX_CHARS, Prepared
from daemon.mail.values import header_text

log = logging.getLogger("portald.mailer")


@dataclass(frozen=True)
class Outcome:
    """What became of one mail. "dropped": never offered to the server (see Dropped)."""

    kind: Literal["sent", "retry", "failed", "dropped"]
    code: int | None
    text: str

    @classmethod
    def from_reply(cls, code: int, text: str) -> Outcome:
        # 4xx: try again later; 5xx (and nonsense): the server said no for good
        kind: Literal["retry", "failed"] = "retry" if 400 <= code < 500 else "failed"
        return cls(kind, code, header_text(text, limit=ERROR_MAX_CHARS))


@cache
def _local_hostname() -> str:
    # getfqdn can take a DNS round trip: once per process, not once per connection
    return socket.getfqdn()


class SmtpBatch:
    """One SMTP connection for one batch of mails, opened at the first mail. `send` never
    raises for SMTP or network trouble: it answers with an Outcome.

    A sender lane with more batches waiting right away may carry the connection over to the
    next batch (`keep_for`): it is checked with a NOOP first and replaced if that fails, so a
    connection the server dropped meanwhile costs no mail a retry."""

    def __init__(self, cfg: SmtpConfig, *, envelope_from: str) -> None:
        self._cfg = cfg
        self._from = envelope_from
        self._client: aiosmtplib.SMTP | None = None
        # the server could not be reached: the rest of the batch is not tried against it
        self._down: Outcome | None = None
        self._reconnects = 0
        self._check = False  # a kept connection: NOOP before the next mail

    @property
    def relay(self) -> str:
        return f"{self._cfg.host}:{self._cfg.port}"

    def keep_for(self, cfg: SmtpConfig, envelope_from: str) -> bool:
        """Ready this connection for another batch; False if it cannot serve it (the server
        was down in this batch, no connection is open, or the settings changed)."""
        if self._down is not None or self._client is None or cfg != self._cfg or envelope_from != self._from:
            return False
        self._reconnects = 0
        self._check = True
        return True

    async def _checked(self) -> None:
        self._check = False
        if self._client is None:
            return
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await self._client.noop()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await self._abort()  # a fresh one is opened below

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self._cfg
        client = aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, use_tls=cfg.tls, start_tls=cfg.starttls,
            username=cfg.username or None, password=cfg.password or None,
            timeout=cfg.timeout_s, local_hostname=_local_hostname(),
        )
        async with asyncio.timeout(cfg.timeout_s * 2):  # connect, greeting, EHLO, TLS, AUTH
            await client.connect()
        return client

    async def send(self, mail: Prepared) -> Outcome:
        if self._down is not None:
            return self._down
        if self._check:
            await self._checked()
        if self._client is None:
            try:
                self._client = await self._connect()
            except aiosmtplib.SMTPResponseException as exc:
                # refused at greeting or login: a server (or credentials) problem, not this
                # mail's; retrying later is right even for a 5xx here
                self._down = Outcome("retry", exc.code, header_text(
                    f"connecting: {exc.message}", limit=ERROR_MAX_CHARS))
                log.warning("SMTP server %s:%d refused the session: %d %s", self._cfg.host,
                            self._cfg.port, exc.code, self._down.text)
                return self._down
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                self._down = Outcome("retry", None, header_text(
                    f"connecting: {exc.__class__.__name__}: {exc}", limit=ERROR_MAX_CHARS))
                log.warning("SMTP server %s:%d unreachable: %s", self._cfg.host, self._cfg.port,
                            self._down.text)
                return self._down
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                refused, _ = await self._client.sendmail(self._from, [mail.recipient], mail.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return Outcome.from_reply(first.code, first.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing the session
                await self._abort()
            return Outcome.from_reply(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The connection's state is unknown now: drop it; the next mail gets a fresh one
            # (once per batch, so a server that hangs up on everything is not hammered).
            await self._abort()
            self._reconnects += 1
            outcome = Outcome("retry", None, header_text(
                f"{exc.__class__.__name__}: {exc}", limit=ERROR_MAX_CHARS))
            if self._reconnects > 1:
                self._down = outcome
            return outcome
        except ValueError as exc:  # an address aiosmtplib cannot put on the wire
            return Outcome("failed", None, header_text(f"cannot send: {exc}", limit=ERROR_MAX_CHARS))
        except Exception as exc:
            # Not an SMTP answer we know: retry later (with backoff, until retry_max_hours)
            # rather than let one odd mail stop the sender again and again.
            log.exception("unexpected error sending to %s", mail.recipient)
            await self._abort()
            return Outcome("retry", None, header_text(f"unexpected: {exc!r}", limit=ERROR_MAX_CHARS))
        for address, reply in refused.items():
            # one recipient per mail here, so this is ours; handled all the same
            if address.lower() == mail.recipient.lower():
                return Outcome.from_reply(reply.code, reply.message)
        return Outcome("sent", 250, "")

    async def _abort(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
