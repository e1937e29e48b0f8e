"""A real SMTP server (aiosmtpd) for tests: stores every mail it accepts, and can be told
to answer with a temporary or permanent failure, to go away and come back, or to answer
every command only after a delay (a relay across a network), counting its sessions."""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from daemon.db.embedded import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    peer: object = None  # the client's (address, port): which session carried the mail

    @functools.cached_property
    def message(self) -> EmailMessage:
        # parsed when a test looks: parsing every mail on arrival slowed the sink down
        return email.message_from_bytes(self.raw, policy=email.policy.default)


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    # mails answered from `answers` (refused), kept to compare a retry with its first try
    rejected: list[Received] = field(default_factory=list)
    # queued answers to DATA: each entry is used once, e.g. "451 4.3.0 try later"
    answers: list[str] = field(default_factory=list)
    refuse_rcpt: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    sessions_open: int = 0
    sessions_most: int = 0  # the most sessions open at once

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse_rcpt:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        with self.lock:
            if self.answers:
                self.rejected.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw))
                return self.answers.pop(0)
        with self.arrived:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, session.peer))
            self.arrived.notify_all()
        return "250 OK queued"


class _SlowSMTP(SMTP):
    """Each answer only `delay_s` after its command, as from a relay some way off; counts
    the sessions open at once."""

    def __init__(self, handler: _Handler, *, delay_s: float, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self._sink, self._delay_s = handler, delay_s

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        with self._sink.lock:
            self._sink.sessions_open += 1
            self._sink.sessions_most = max(self._sink.sessions_most, self._sink.sessions_open)

    def connection_lost(self, exc) -> None:
        with self._sink.lock:
            self._sink.sessions_open -= 1
        super().connection_lost(exc)

    async def push(self, status) -> None:
        text = status if isinstance(status, str) else status.decode()
        if self._delay_s and text[3:4] != "-":  # the last line of an answer: the client waits for it
            await asyncio.sleep(self._delay_s)
        await super().push(status)


class _Controller(Controller):
    def __init__(self, handler: _Handler, *, delay_s: float, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self._delay_s = delay_s

    def factory(self) -> SMTP:
        return _SlowSMTP(self.handler, delay_s=self._delay_s, **self.SMTP_kwargs)


class SmtpSink:
    def __init__(self, port: int | None = None, *, delay_s: float = 0.0) -> None:
        self.port = port or free_port()
        self.handler = _Handler()
        self.delay_s = delay_s
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        # server_hostname: aiosmtpd would otherwise resolve our FQDN on every connection
        self._controller = _Controller(self.handler, delay_s=self.delay_s, hostname="127.0.0.1",
                                       port=self.port, server_hostname="localhost",
                                       decode_data=False, ready_timeout=10)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def answer_next(self, *answers: str) -> None:
        with self.handler.lock:
            self.handler.answers.extend(answers)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` mails arrived (or the timeout); return them all."""
        deadline = time.monotonic() + timeout
        with self.handler.arrived:
            while len(self.handler.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.handler.arrived.wait(left)
            return list(self.handler.received)

    async def wait_for_async(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Like wait_for, without blocking the event loop the daemon under test runs on."""
        import asyncio

        deadline = time.monotonic() + timeout
        while len(self.handler.received) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return list(self.handler.received)
