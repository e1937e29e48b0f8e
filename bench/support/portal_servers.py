"""The processes bench/portal.py measures: daemons (`portald run`) and the floor server, each
started as a subprocess with its log in the bench's temp dir, and a login that hands back the
session cookie for wrk."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from daemon.db.embedded import free_port
from daemon.dev.demo_data import DEMO_PASSWORD

REPO = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT_S = 60


@dataclass
class Server:
    name: str
    argv: list[str]
    log: Path
    port: int = field(default_factory=free_port)
    ready_path: str = "/readyz"
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if get(self.port, self.ready_path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not become ready")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def portal_server(name: str, root: Path, dsn: str, pool_max: int, *,
                  workers: int | None = None) -> Server:
    state = root / name
    state.mkdir()
    port = free_port()
    config = state / "config.toml"
    config.write_text(f"""
[database]
dsn = "{dsn}"
pool_min = 2
pool_max = {pool_max}
[http]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
login_attempts_per_15min = 100000
[smtp]
host = "127.0.0.1"
port = {free_port()}
[mail]
catcher = false
[state]
dir = "{state / 'state'}"
[log]
level = "WARNING"
""")
    argv = [sys.executable, "-m", "daemon", "--config", str(config), "run"]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return Server(name, argv, state / "daemon.log", port=port)


def floor_server(root: Path, dsn: str, pool_max: int, username: str) -> Server:
    port = free_port()
    argv = [sys.executable, str(REPO / "bench" / "support" / "floor.py"), dsn, str(port),
            str(pool_max), username]
    return Server("floor", argv, root / "floor.log", port=port, ready_path="/ceiling")


def get(port: int, path: str, cookie: str = "") -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def login(port: int, username: str) -> str:
    """The `name=value` of the session cookie of a fresh login."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/api/v1/login",
                  body=json.dumps({"username": username, "password": DEMO_PASSWORD}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"login as {username}: {r.status}")
        return r.getheader("Set-Cookie").split(";", 1)[0]
    finally:
        c.close()
