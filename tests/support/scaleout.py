"""Helpers of tests/integration/test_scaleout.py: several real `portald run` processes on one database
behind a real HAProxy, an SMTP sink in a process of its own, and a logged-in load generator.

Self-contained on purpose (no fixture or helper of the other test modules): it needs only a
DSN with the demo data, and `haproxy` from Debian's package.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

# All this takes from the daemon's own code (its modules are being moved): a free port, and
# how many batches a daemon has in flight at once (re-exported for the test).
from daemon.db.embedded import free_port
from daemon.dev.demo_data import DEMO_PASSWORD
from daemon.mail.worker import SENDER_LANES  # noqa: F401
from tests.support import REPO, tracebacks

START_TIMEOUT_S = 30


def find_haproxy() -> str | None:
    """The haproxy binary (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


# -- the SMTP sink ---------------------------------------------------------------------------

# One process, one port per daemon (so that each mail says which daemon sent it). Accepts
# everything after a small delay per mail (as a relay a little further away would, so that a
# batch lasts long enough to be caught being sent), and reports for each mail its arrival
# (CLOCK_MONOTONIC is system-wide on Linux: comparable with ours), port and Message-ID.
SINK_CODE = r"""
import asyncio, sys, threading, time
from aiosmtpd.controller import Controller

lines, lock = [], threading.Lock()
delay = float(sys.argv[1])

class Handler:
    def __init__(self, port):
        self.port = port

    async def handle_DATA(self, server, session, envelope):
        if delay:
            await asyncio.sleep(delay)
        now = time.monotonic_ns()
        raw = envelope.original_content or envelope.content
        mid = "-"
        for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line[:11].lower() == b"message-id:":
                mid = line[11:].strip().decode("ascii", "replace")
                break
        with lock:
            lines.append(f"{now} {self.port} {mid}\n")
        return "250 OK"

for port in map(int, sys.argv[2:]):
    Controller(Handler(port), hostname="127.0.0.1", port=port, server_hostname="localhost",
               ready_timeout=10).start()
print("ready", flush=True)
while True:
    time.sleep(0.02)
    with lock:
        out, lines[:] = "".join(lines), []
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()
"""


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() seconds
    sender: str  # the daemon whose port it came in on
    message_id: str


class Sink:
    """The SMTP sink process: a port for each of `names`, and every mail accepted, in order."""

    REPORT_EVERY_S = 0.02

    def __init__(self, names: Iterable[str], *, delay_s: float = 0.0) -> None:
        self.ports = {name: free_port() for name in names}
        self._names = {port: name for name, port in self.ports.items()}
        self.delay_s = delay_s
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SINK_CODE, str(delay_s), *map(str, self.ports.values())],
            stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("the SMTP sink did not start")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            ns, port, mid = line.rstrip("\n").split(" ", 2)
            with self._lock:
                self.arrivals.append(Arrival(int(ns) / 1e9, self._names[int(port)], mid))

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    def count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def message_ids(self, sender: str | None = None) -> set[str]:
        with self._lock:
            return {a.message_id for a in self.arrivals if sender in (None, a.sender)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the daemons -----------------------------------------------------------------------------


def write_daemon_config(path: Path, *, dsn: str, port: int, public_url: str, smtp_port: int,
                        state: Path, extra: str = "", http_extra: str = "") -> Path:
    path.write_text(f"""
[database]
dsn = "{dsn}"
pool_min = 1
pool_max = 5
[http]
host = "127.0.0.1"
port = {port}
public_url = "{public_url}"
{http_extra}
[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "portald <portald@portal.test>"
{extra}
[state]
dir = "{state}"
""")
    return path


class Daemon:
    """One `portald run` process on its own port and state directory; its output goes to
    `log_path` (appended to across restarts)."""

    def __init__(self, name: str, config_path: Path, port: int, log_path: Path) -> None:
        self.name, self.config_path, self.port, self.log_path = name, config_path, port, log_path
        self.proc: subprocess.Popen | None = None
        self._terminated = False

    def start(self) -> None:
        self._terminated = False
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
        tracebacks.watch_file(self.log_path)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "--config", str(self.config_path), "run"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise AssertionError(f"daemon {self.name} exited:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"http://127.0.0.1:{self.port}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"daemon {self.name} did not become ready:\n{self.log_tail()}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM, once: the graceful stop (a second one would not be graceful); SIGCONT in
        case it was left frozen."""
        if self.alive() and not self._terminated:
            self._terminated = True
            self.signal(signal.SIGTERM)
            self.signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM and wait (SIGKILL if it does not stop in time); its exit code."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]


# -- HAProxy ---------------------------------------------------------------------------------

# One log line per request: the test's id for it, the method, where it went, what came back.
# %tsc: termination state (first letter: who ended it, C client, S server, P proxy; second:
# at which stage); %rc: retries, "+" in front when redispatched to another server.
LOG_FORMAT = "req %[var(txn.tid)] %HM %b/%s %ST %tsc %rc %Tw/%Tc/%Tr/%Ta"


def haproxy_config(*, port: int, servers: Iterable[tuple[str, int]], socket_path: Path,
                   log: bool) -> str:
    """The balancer in front of the daemons.

    - Health: `GET /readyz` every 500 ms (200 ms while changing state, 500 ms while down);
      2 failures take a server out, 2 successes bring it back. `observe layer4` with
      `error-limit 1 on-error mark-down` takes a server out on the first connection that live
      traffic fails to open, without waiting for a check: a dead daemon is out at once.
    - Retries: `retries 3` with `option redispatch 1` (every retry goes to another server).
      A request whose connection could not be opened was never sent, so it is retried
      whatever its method (`conn-failure`). A request that was sent and got nothing back
      (`empty-response`: the daemon died with it; `response-timeout`: it hangs) is retried
      only for GET and HEAD: a POST, PATCH or PUT may have been carried out already, and
      replaying it would do it twice (two notes, two mails). HAProxy itself does not tell
      methods apart here, hence `http-request disable-l7-retry unless METH_GET`.
    - `X-Served-By` on every answer names the daemon that made it; `X-Forwarded-For` tells
      the daemon who the client is (believed where its [http] trusted_proxies names us).
    """
    lines = [
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        "    log stdout format raw local0 info" if log else "",
        "defaults",
        "    mode http",
        "    log global" if log else "    no log",
        f'    log-format "{LOG_FORMAT}"' if log else "",
        "    option log-health-checks" if log else "",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 10s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 30s",  # longer than a client keeps an idle connection
        "    timeout queue 5s",
        "    timeout check 1s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
        "    option forwardfor",
        "frontend portal",
        f"    bind 127.0.0.1:{port}",
        "    http-request set-var(txn.tid) req.hdr(x-test-id)",
        "    default_backend daemons",
        "backend daemons",
        "    balance roundrobin",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        "    http-request disable-l7-retry unless METH_GET",
        "    http-response set-header X-Served-By %[srv_name]",
        "    default-server check inter 500ms fastinter 200ms downinter 500ms fall 2 rise 2"
        " observe layer4 error-limit 1 on-error mark-down",
    ]
    lines += [f"    server {name} 127.0.0.1:{p}" for name, p in servers]
    return "\n".join(line for line in lines if line) + "\n"


@dataclass
class LogLine:
    tid: str
    method: str
    server: str  # the daemon it went to last ("<NOSRV>" if none)
    status: int
    termination: str  # %tsc, e.g. "----", "SH--", "SD--"
    retries: str  # %rc, e.g. "0", "+1"
    timers: str
    raw: str


class Haproxy:
    def __init__(self, binary: str, directory: Path, servers: list[tuple[str, int]], *,
                 port: int | None = None, log: bool = True) -> None:
        self.binary, self.directory = binary, directory
        self.port = port or free_port()
        self.socket_path = directory / "haproxy.sock"
        self.config_path = directory / "haproxy.cfg"
        self.config_path.write_text(haproxy_config(port=self.port, servers=servers,
                                                   socket_path=self.socket_path, log=log))
        self.log_path = directory / "haproxy.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        check = subprocess.run([self.binary, "-c", "-q", "-f", str(self.config_path)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses its configuration: {check.stdout}{check.stderr}")
        tracebacks.watch_file(self.log_path)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def command(self, line: str) -> str:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode()
        finally:
            writer.close()

    async def server_status(self) -> dict[str, str]:
        """Server name → "UP", "DOWN", "UP 1/2", … from `show stat`."""
        text = await self.command("show stat")
        header, *rows = [r for r in text.splitlines() if r]
        cols = header.lstrip("# ").split(",")
        out = {}
        for row in rows:
            rec = dict(zip(cols, row.split(","), strict=False))
            if rec.get("pxname") == "daemons" and rec.get("svname") not in ("FRONTEND", "BACKEND"):
                out[rec["svname"]] = rec["status"]
        return out

    async def wait_status(self, server: str, status: str, timeout_s: float = START_TIMEOUT_S) -> float:
        """Wait until `server` is reported `status`; when it was seen so (monotonic)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited:\n{self.log_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if (await self.server_status()).get(server) == status:
                    return time.monotonic()
            await asyncio.sleep(0.005)
        raise AssertionError(f"haproxy: {server} not {status} after {timeout_s} s")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def requests(self) -> dict[str, LogLine]:
        """The request log lines by the test's request id."""
        out = {}
        for raw in self.log_text().splitlines():
            parts = raw.split()
            if len(parts) < 8 or parts[0] != "req" or parts[1] == "-":
                continue
            backend_server = parts[3].split("/", 1)
            out[parts[1]] = LogLine(tid=parts[1], method=parts[2], server=backend_server[-1],
                                    status=int(parts[4]), termination=parts[5],
                                    retries=parts[6], timers=parts[7], raw=raw)
        return out


# -- all of it -------------------------------------------------------------------------------


class Cluster:
    """An SMTP sink, daemons named `names` on `dsn` (each with `[smtp]`/`[mail]`/… lines
    `extra` added to its config.toml, and `http_extra` to its [http]), and HAProxy in front of
    them, all started and UP.
    `exits` holds each daemon's exit code after the stop (SIGTERM)."""

    def __init__(self, haproxy: str, directory: Path, dsn: str, names: Iterable[str], *,
                 extra: str = "", http_extra: str = "", sink_delay_s: float = 0.0,
                 log: bool = True) -> None:
        self.haproxy_bin, self.directory, self.dsn = haproxy, directory, dsn
        self.names, self.extra, self.sink_delay_s, self.log = list(names), extra, sink_delay_s, log
        self.http_extra = http_extra
        self.sink: Sink | None = None
        self.daemons: dict[str, Daemon] = {}
        self.balancer: Haproxy | None = None
        self.exits: dict[str, int | None] = {}

    async def __aenter__(self) -> Cluster:
        try:
            self.sink = Sink(self.names, delay_s=self.sink_delay_s)
            lb_port = free_port()
            for name in self.names:
                state = self.directory / name
                state.mkdir()
                port = free_port()
                cfg = write_daemon_config(state / "config.toml", dsn=self.dsn, port=port,
                                          public_url=f"http://127.0.0.1:{lb_port}",
                                          smtp_port=self.sink.ports[name], state=state / "state",
                                          extra=self.extra, http_extra=self.http_extra)
                self.daemons[name] = Daemon(name, cfg, port, state / "daemon.log")
            for d in self.daemons.values():
                d.start()
            await asyncio.gather(*(d.wait_healthy() for d in self.daemons.values()))
            self.balancer = Haproxy(self.haproxy_bin, self.directory,
                                    [(d.name, d.port) for d in self.daemons.values()],
                                    port=lb_port, log=self.log)
            self.balancer.start()
            for name in self.daemons:
                await self.balancer.wait_status(name, "UP")
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        for d in self.daemons.values():
            d.terminate()  # all at once; each is then waited for
        for name, d in self.daemons.items():
            self.exits[name] = d.stop()
        if self.sink is not None:
            self.sink.stop()


# -- the load --------------------------------------------------------------------------------


@dataclass
class Result:
    tid: str
    user: str
    method: str
    path: str
    started: float  # monotonic
    ended: float
    sent: object  # the JSON body sent
    status: int | None  # None: no answer (an exception)
    error: str | None
    served_by: str | None
    ok: bool


@dataclass
class User:
    """A logged-in user: `session` keeps its connections alive; `once` shares its cookies and
    opens a connection per request (see `Load.request`)."""

    username: str
    session: aiohttp.ClientSession
    once: aiohttp.ClientSession
    csrf: str


_ids = itertools.count(1)


@dataclass
class Load:
    """Requests through the balancer, each recorded with its outcome."""

    base: str
    results: list[Result] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def _sessions(self, source: str | None = None) -> tuple[aiohttp.ClientSession,
                                                            aiohttp.ClientSession]:
        # unsafe: keep the cookies of a host that is an IP address (the balancer's)
        jar = aiohttp.CookieJar(unsafe=True)
        timeout = aiohttp.ClientTimeout(total=30)
        local = (source, 0) if source else None
        return (aiohttp.ClientSession(base_url=self.base, cookie_jar=jar, timeout=timeout,
                                      connector=aiohttp.TCPConnector(local_addr=local)),
                aiohttp.ClientSession(base_url=self.base, cookie_jar=jar, timeout=timeout,
                                      connector=aiohttp.TCPConnector(force_close=True,
                                                                     local_addr=local)))

    async def anonymous(self, source: str | None = None) -> User:
        """A client without a session; `source`: the loopback address it connects from
        (127.0.0.0/8 is all this machine's), so that clients can come from different places."""
        return User("-", *self._sessions(source), "")

    async def login(self, username: str) -> User:
        session, once = self._sessions()
        async with session.post("/api/v1/login",
                                json={"username": username, "password": DEMO_PASSWORD}) as resp:
            body = await resp.json()
            if resp.status != 200:
                await session.close()
                await once.close()
                raise AssertionError(f"login as {username}: {resp.status} {body}")
        return User(username, session, once, body["csrf_token"])

    async def request(self, user: User, method: str, path: str, *, json: object = None,
                      expect: tuple[int, ...] = (200,)) -> tuple[Result, object]:
        """One request, recorded. A change (any method but GET) goes on a connection of its own:
        when a daemon dies with a request that is not the first of its client connection, HAProxy
        (2.6, http_ana.c abort_keep_alive) closes that connection without an answer and without
        a log line, as a server closing an idle keep-alive connection would; the first request of
        a connection gets a 502 and a log line naming the daemon, which the test checks."""
        tid = f"r{next(_ids)}"
        headers = {"X-Test-Id": tid}
        if method != "GET":
            headers["X-CSRF-Token"] = user.csrf
        started = time.monotonic()
        status = served_by = error = None
        body: object = None
        try:
            session = user.session if method == "GET" else user.once
            async with session.request(method, path, json=json, headers=headers,
                                       allow_redirects=False) as resp:
                status = resp.status
                served_by = resp.headers.get("X-Served-By")
                body = await (resp.json() if resp.content_type == "application/json" else resp.text())
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        result = Result(tid, user.username, method, path, started, time.monotonic(), json, status,
                        error, served_by, ok=error is None and status in expect)
        self.results.append(result)
        return result, body

    async def close(self, users: Iterable[User]) -> None:
        for u in users:
            await u.session.close()
            await u.once.close()
