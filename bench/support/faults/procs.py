"""The processes of the fault bench, each its own: a private PostgreSQL cluster (restartable),
an SMTP sink (stoppable), and `portald run` (killable). Everything this bench takes from the
daemon's code is imported here, and only here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from daemon.db.embedded import EmbeddedPostgres, free_port

REPO = Path(__file__).resolve().parents[3]

__all__ = ["REPO", "Daemon", "Postgres", "Sink", "free_port"]

PG_CTL_TIMEOUT_S = 90
DAEMON_STOP_TIMEOUT_S = 40


class Postgres:
    """A private cluster under `root`, started through daemon.embedded and restarted with
    pg_ctl directly (as the user that owns the data directory)."""

    def __init__(self, root: Path) -> None:
        self.embedded = EmbeddedPostgres(root)
        self.root = self.embedded.root
        self.dsn = ""

    def start(self) -> str:
        self.dsn = self.embedded.start()
        return self.dsn

    def version(self) -> str:
        return (self.embedded.datadir / "PG_VERSION").read_text().strip()

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: sessions are ended, a shutdown checkpoint, a new server on
        the same port with the same options (postmaster.opts)."""
        self._pg_ctl("restart", "-m", "fast", "-w", "-t", str(PG_CTL_TIMEOUT_S - 10),
                     "-l", str(self.embedded.logfile))

    def destroy(self) -> None:
        """Stop the server and delete the cluster, wherever daemon.db.embedded placed it."""
        self.embedded.destroy()

    def _pg_ctl(self, *args: str) -> None:
        datadir = self.embedded.datadir
        owner = datadir.stat()
        kwargs: dict = {}
        if os.geteuid() != owner.st_uid:
            kwargs = {"user": owner.st_uid, "group": owner.st_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # output to a file: the server started by pg_ctl would otherwise hold our pipe open
        out_path = self.root / "pg_ctl.out"
        with open(out_path, "w") as out:
            proc = subprocess.run([str(self.embedded.bindir / "pg_ctl"), *args, "-D", str(datadir)],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=env, cwd="/", timeout=PG_CTL_TIMEOUT_S, **kwargs)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl {args[0]} failed: {out_path.read_text().strip()[-500:]}")


# The sink: accepts every mail; before answering 250 it writes "<wall-clock ns> <Message-ID>
# <recipient>" to its stdout, unbuffered, so a mail is on record before the sender can learn it
# was accepted (and a sink stopped between the two shows up as a mail sent twice, as it is).
SINK_CODE = r"""
import re, sys, threading, time
from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.I | re.M)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        end = raw.find(b"\r\n\r\n")
        found = MESSAGE_ID.search(raw[:end] if end >= 0 else raw)
        mid = found.group(1).decode("ascii", "replace") if found else "-"
        rcpt = envelope.rcpt_tos[0] if envelope.rcpt_tos else "-"
        sys.stdout.write(f"{time.time_ns()} {mid} {rcpt}\n")
        sys.stdout.flush()
        return "250 OK"

port = int(sys.argv[1])
controller = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost")
controller.start()
print("ready", flush=True)
threading.Event().wait()
"""


class Sink:
    """The SMTP sink on a fixed port; stop() takes the server away (the process ends, the
    port refuses connections), start() brings a new one. Acceptances accumulate over all of
    them: (wall-clock seconds, Message-ID, recipient)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SINK_CODE, str(self.port)],
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            ns, mid, rcpt = line.split(" ", 2)
            with self._lock:
                self.accepted.append((int(ns) / 1e9, mid, rcpt.strip()))

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def snapshot(self) -> list[tuple[float, str, str]]:
        with self._lock:
            return list(self.accepted)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)  # everything it wrote is read
        self.proc = None


class Daemon:
    """`portald run` as a subprocess, its output appended to one log file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
        env["PYTHONPATH"] = str(REPO)
        with open(self.log_path, "a") as log:
            log.write(f"==== bench: start #{self.starts + 1} at {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "--config", str(self.config_path), "run"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1

    def cli(self, *args: str) -> str:
        """A `portald` command against the same configuration (demo, migrate, admin …)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
        env["PYTHONPATH"] = str(REPO)
        proc = subprocess.run([sys.executable, "-m", "daemon", "--config", str(self.config_path), *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"portald {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def exited(self) -> int | None:
        """The exit status if the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(DAEMON_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]
