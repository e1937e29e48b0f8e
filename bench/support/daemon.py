"""The daemon under test in bench/mail.py: its configuration and the `portald run` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from daemon.db.embedded import free_port
from daemon.mail.worker import SENDER_LANES

REPO = Path(__file__).resolve().parent.parent.parent
REPLY_ADDRESS = "portald-reply@reply.portal.bench"


def write_config(directory: Path, dsn: str, smtp_port: int, inbound_port: int, *,
                 connections: int = SENDER_LANES, name: str = "config.toml") -> Path:
    path = directory / name
    path.write_text(f"""
[database]
dsn = "{dsn}"
[http]
host = "127.0.0.1"
port = {free_port()}
public_url = "http://portal.bench"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "portald <portald@portal.bench>"
connections = {connections}
[mail]
poll_interval_s = 5
[inbound]
enabled = true
port = {inbound_port}
reply_address = "{REPLY_ADDRESS}"
[state]
dir = "{directory / 'state'}"
[log]
level = "WARNING"
""")
    return path


class Daemon:
    def __init__(self, config_path: Path, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config_path), "run"],
                                         cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
