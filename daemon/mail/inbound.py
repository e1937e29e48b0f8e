"""The inbound SMTP listener for replies by mail: aiosmtpd's SMTP protocol served on the
daemon's own loop at [inbound] host:port, one background task in app[BACKGROUND] (its death
stops the daemon), started and stopped in the cleanup chain (daemon/app.py).

The MSP's MTA relays the reply domain to it (README). Each SMTP step answers as early as it
can: the token at RCPT, the size at DATA (and at MAIL when the client declares it), the rest
once the message is in (daemon/mail/replies.py decides). A database that is away is a 451, so
the MTA tries again later and no reply is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session

from daemon.config import Settings
from daemon.mail.replies import Context, Refusal, Replies
from daemon.mail.reply import MalformedReply, read_reply
from daemon.metrics import Metrics

log = logging.getLogger("portald.inbound")

IDLE_TIMEOUT_S = 120.0  # an SMTP client silent this long is dropped
STOP_GRACE_S = 5.0  # on stop, for the replies being stored
# aiosmtpd's own answers when a message is over its data_size_limit
_SIZE_REFUSALS = ("552 Error: Too much mail data", "552 Error: message size exceeds")
TRY_LATER = "451 4.3.0 the portal cannot store replies right now; try again later"
OUTAGES = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
           asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError)


class InboundError(Exception):
    """The listener cannot start (its address is taken): a one-line reason."""


class _Handler:
    """aiosmtpd's hooks; each transaction's Context rides on its Envelope."""

    def __init__(self, replies: Replies) -> None:
        self.replies = replies
        self.storing = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @staticmethod
    def context(session: Session, envelope: Envelope) -> Context:
        ctx = getattr(envelope, "portald", None)
        if ctx is None:
            peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
            ctx = envelope.portald = Context(peer=peer)  # type: ignore[attr-defined]
        return ctx

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        ctx = self.context(session, envelope)
        ctx.mail_from = address
        if address == "<>":  # a bounce or another notice: never a person's reply
            return await self.replies.refused(ctx, Refusal(
                "null_sender", "mail with an empty sender (a bounce) is not taken as a reply"))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        ctx = self.context(session, envelope)
        if ctx.target is not None:
            # one note per message: the MTA delivers the other addresses in a later transaction
            return "452 4.5.3 one reply address per message; send the others separately"
        try:
            ctx.target = await self.replies.recipient(address)
        except Refusal as refusal:
            ctx.claimed = refusal.who
            ctx.details["address"] = address[:200]
            return await self.replies.refused(ctx, refusal)
        except OUTAGES as exc:
            log.warning("inbound: cannot check a reply address: %r", exc)
            return TRY_LATER
        except Exception:  # a bug: say so in the log, and let the MTA try again later
            log.exception("inbound: checking a reply address failed")
            return TRY_LATER
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        ctx = self.context(session, envelope)
        self.storing += 1
        self.idle.clear()
        try:
            return await self._store(ctx, envelope.original_content or b"")
        finally:
            self.storing -= 1
            if not self.storing:
                self.idle.set()

    async def _store(self, ctx: Context, raw: bytes) -> str:
        try:
            reply = await asyncio.to_thread(read_reply, raw) if len(raw) > 256 * 1024 else read_reply(raw)
            return await self.replies.store(ctx, reply)
        except MalformedReply as exc:
            return await self.replies.refused(ctx, Refusal(
                "malformed", f"the message cannot be read ({exc}); nothing was added", status="5.6.0"))
        except Refusal as refusal:
            return await self.replies.refused(ctx, refusal)
        except OUTAGES as exc:
            log.warning("inbound: cannot store a reply now: %r", exc)
            return TRY_LATER
        except Exception:  # a bug must not lose the reply: the MTA keeps it and tries again
            log.exception("inbound: storing a reply failed")
            return TRY_LATER


class _Protocol(SMTP):
    """aiosmtpd's SMTP, with its own size refusals put in our words and recorded."""

    def __init__(self, handler: _Handler, *, limit_mb: int, **kwargs: Any) -> None:
        super().__init__(handler, data_size_limit=limit_mb * 1024 * 1024, **kwargs)
        self._portald = handler
        self._limit_mb = limit_mb

    async def push(self, status: str) -> None:
        if status.startswith(_SIZE_REFUSALS) and self.session is not None and self.envelope is not None:
            ctx = self._portald.context(self.session, self.envelope)
            status = await self._portald.replies.refused(ctx, Refusal(
                "too_large", f"the message is larger than the limit of {self._limit_mb} MB; "
                "nothing was added", code=552, status="5.3.4"))
        await super().push(status)


class InboundServer:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, metrics: Metrics,
                 reuse_port: bool = False) -> None:
        self.settings = settings
        # several workers each listen on the port; the kernel spreads the MTA's connections
        self._reuse_port = reuse_port
        self.handler = _Handler(Replies(pool=pool, settings=settings, metrics=metrics))
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task | None = None
        self._sessions: weakref.WeakSet[_Protocol] = weakref.WeakSet()

    def _protocol(self) -> _Protocol:
        cfg = self.settings.current
        domain = cfg.inbound.reply_address.rpartition("@")[2]
        # the size limit is [http] upload_max_mb, the limit of the portal's uploads too
        proto = _Protocol(self.handler, limit_mb=cfg.http.upload_max_mb, hostname=domain,
                          ident="portald", timeout=IDLE_TIMEOUT_S, loop=asyncio.get_running_loop())
        self._sessions.add(proto)
        return proto

    async def start(self) -> asyncio.Task:
        cfg = self.settings.current.inbound
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._protocol, host=cfg.host, port=cfg.port, reuse_address=True,
                reuse_port=self._reuse_port)
        except OSError as exc:
            raise InboundError(f"cannot listen for replies on {cfg.host}:{cfg.port}: "
                               f"{exc.strerror or exc}") from None
        log.info("listening for replies by mail on %s:%d (%s)", cfg.host, cfg.port,
                 self.settings.current.inbound.reply_address)
        self._task = asyncio.get_running_loop().create_task(self._server.serve_forever(),
                                                            name="portald-inbound-smtp")
        return self._task

    async def stop(self) -> None:
        """No new connections; the replies being stored get a moment to finish."""
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.handler.idle.wait(), STOP_GRACE_S)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
