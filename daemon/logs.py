"""Logging set-up: one line per event, readable in journald (which adds the time) and on a
terminal (where we add it)."""

from __future__ import annotations

import logging
import os
import sys


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Tracebacks stay on one line so each event is one journal entry.
        return super().format(record).replace("\n", " | ")


def setup_logging(level: str = "INFO") -> None:
    under_journald = bool(os.environ.get("JOURNAL_STREAM")) and not sys.stderr.isatty()
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    # aiohttp's access log would double every request line; our metrics count requests.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosmtpd (the demo catcher) logs every SMTP command; our catcher logs one line per mail.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
