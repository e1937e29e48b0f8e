"""No traceback in the daemon's log, anywhere in the suite: every daemon a test runs, in this
process (its log records) or as a process (its output, piped or in a log file), is watched, and
the test during which a traceback appears fails. A test that provokes a bug on purpose says so
with `@pytest.mark.allows_traceback("why")`."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

_lock = threading.Lock()
_seen: list[str] = []  # tracebacks (or their first lines) found so far, in order
_files: dict[Path, int] = {}  # daemon log files and how far they were read


def report(text: str) -> None:
    """Output of a daemon process: kept if it holds a traceback."""
    if "Traceback" in text:
        with _lock:
            _seen.append(text[text.index("Traceback"):][:4000])


def watch_file(path: Path) -> None:
    """A daemon's log file; read at each check."""
    with _lock:
        _files.setdefault(path, 0)


def _read_files() -> None:
    for path, offset in list(_files.items()):
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            continue
        _files[path] = offset + len(data)
        report(data.decode(errors="replace"))


class _Records(logging.Handler):
    """Log records of the daemons running inside the test process."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            report("Traceback (log record) " + self.format(record))


def install() -> logging.Handler:
    handler = _Records(level=logging.ERROR)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def mark() -> int:
    """Where the list of tracebacks stands now."""
    with _lock:
        _read_files()
        return len(_seen)


def since(position: int) -> list[str]:
    with _lock:
        _read_files()
        return _seen[position:]
