"""The demo mail catcher: a local SMTP server that stores every mail it receives as an .eml
file under the state directory, so `make run` shows real mail without a real mail server."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("portald.catcher")


class _Store:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        name = caught_name(time.time_ns())
        # written aside and renamed: the portal's demo page never reads half a mail
        partial = self.directory / f".{name}.part"
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.directory / name)
        log.info("caught mail for %s: %s", ", ".join(envelope.rcpt_tos), name)
        return "250 OK caught"


def caught_name(ns: int) -> str:
    """A file name that sorts by the time the mail was caught (UTC, to the nanosecond)."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(ns // 10**9))}-{ns % 10**9:09d}.eml"


class CatcherError(Exception):
    pass


class MailCatcher:
    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_Store(directory), hostname=host, port=port, ready_timeout=10)

    def start(self) -> None:
        try:
            self._controller.start()
        except (OSError, RuntimeError) as exc:
            cause = exc.__cause__ or exc
            raise CatcherError(f"cannot start the mail catcher on {self._controller.hostname}:"
                               f"{self._controller.port}: {getattr(cause, 'strerror', None) or cause}") from None

    def stop(self) -> None:
        self._controller.stop()
