"""Logging set-up: one line per event, readable in journald (which adds the time) and on a
terminal (where we add it)."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp.http_exceptions import HttpProcessingError


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Tracebacks stay on one line so each event is one journal entry.
        return super().format(record).replace("\n", " | ")


def setup_logging(level: str = "INFO", *, tag: str | None = None) -> None:
    """`tag` names the process in each line: the workers of `portald run --workers N` share
    one journal stream."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM")) and not sys.stderr.isatty()
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if tag:
        fmt = fmt.replace("%(name)s", f"[{tag.replace('%', '%%')}] %(name)s")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    # aiohttp's access log would double every request line; our metrics count requests.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosmtpd (the demo catcher) logs every SMTP command; our catcher logs one line per mail.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


class _ClientMistakes(logging.Filter):
    """aiohttp logs bytes that are not a valid HTTP request (a bad header, a bad URL) as an
    error with a traceback, though the client gets its 400 and nothing is wrong here: make it
    one informative line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            said = record.getMessage()
            record.msg, record.args = "%s: %s", (said, " ".join(str(exc.message).split())[:200])
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_client_mistakes() -> None:
    """Install the filter above (once) on aiohttp's server logger."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientMistakes) for f in logger.filters):
        logger.addFilter(_ClientMistakes())


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
