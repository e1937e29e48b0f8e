"""Who the daemon is in its mails, and the ids that make the mails of one ticket a thread."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit

from daemon.config import Config
from daemon.mail.reply_token import ReplyAddress

_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


@dataclass(frozen=True, kw_only=True)
class MailIdentity:
    """Who the daemon is in its mails, from [http] public_url and [smtp] from."""

    public_url: str
    from_header: str  # as configured, e.g. "portald <portald@example.com>"
    from_addr: str  # the bare address: envelope sender, and never a recipient
    host: str  # right-hand side of Message-IDs and thread ids
    # with [inbound] enabled: where replies go (each mail's Reply-To carries its own token)
    reply_address: ReplyAddress | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> MailIdentity:
        host = urlsplit(cfg.http.public_url).hostname or "localhost"
        if not _DOT_ATOM.match(host):  # e.g. an IPv6 literal: not valid in a msg-id
            host = "localhost"
        reply = ReplyAddress.parse(cfg.inbound.reply_address) if cfg.inbound.enabled else None
        return cls(public_url=cfg.http.public_url.rstrip("/"), from_header=cfg.smtp.from_,
                   from_addr=parseaddr(cfg.smtp.from_)[1], host=host, reply_address=reply)

    def is_own_address(self, address: str) -> bool:
        return address.strip().lower() == self.from_addr.lower()

    def ticket_link(self, ticket_id: int) -> str:
        # the portal's contract: /tickets/{id}, behind its login if needed
        return f"{self.public_url}/tickets/{ticket_id}"


def new_message_id(host: str) -> str:
    """Fixed when the outbox row is written, so a retry is recognisably the same mail."""
    return f"<portald.{uuid.uuid4()}@{host}>"


def thread_id(ticket_id: int, host: str) -> str:
    """The root every mail of one ticket refers to, so mail clients thread them together."""
    return f"<ticket-{ticket_id}@{host}>"
