"""Two-factor login under `portald run --workers 2`: a login begun on one worker ends on the
other, its session holds on both, and the group policy changed in the database reaches the
very next request on each worker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from daemon.db.embedded import free_port
from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.config import run_config
from tests.support.daemon import start_daemon
from tests.support.totp import cli_json, code
from tests.support.workers import Log, Notifications, children, holders


class KeptConnection:
    """One HTTP/1.1 connection kept open, so that every request on it reaches the same worker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.cookies: dict[str, str] = {}

    @property
    def client_port(self) -> int:
        return self.writer.get_extra_info("sockname")[1]

    async def request(self, method: str, path: str, body: dict | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive",
                 f"Content-Length: {len(data)}", "Content-Type: application/json",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "set-cookie":
                pair = value.strip().split(";", 1)[0]
                key, _, val = pair.partition("=")
                if val.strip('"'):
                    self.cookies[key] = val.strip('"')
                else:
                    self.cookies.pop(key, None)
        raw = await self.reader.readexactly(length)
        return int(head[0].split()[1]), json.loads(raw) if raw else {}

    def close(self) -> None:
        self.writer.close()


async def one_per_worker(port: int, workers: set[int]) -> list[KeptConnection]:
    """A kept connection to each worker (the kernel spreads new connections over them)."""
    conns = []
    for _ in range(24):
        c = KeptConnection(*await asyncio.open_connection("127.0.0.1", port))
        assert (await c.request("GET", "/healthz"))[0] == 200
        conns.append(c)
    held = holders(workers, port, {c.client_port for c in conns})
    chosen = {held[c.client_port]: c for c in conns}
    for c in conns:
        if c not in chosen.values():
            c.close()
    assert set(chosen) == workers
    return list(chosen.values())


async def test_two_factor_login_and_policy_across_two_workers(
        demo_dsn: str, smtp_sink, tmp_path: Path, capsys) -> None:
    on = await cli_json(demo_dsn, tmp_path, capsys, "webuser", "totp", "full@acme", "--enable")
    db = await asyncpg.connect(demo_dsn)
    group_id = await db.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others) VALUES ('Careful', 'all',
           'all') RETURNING id""")
    await db.execute("UPDATE employees SET group_id = $1 WHERE username = 'tech'", group_id)
    port = free_port()
    cfg = run_config(tmp_path / "run.toml", dsn=demo_dsn, http_port=port,
                     smtp_port=smtp_sink.port, state=tmp_path / "state")
    notify = Notifications(tmp_path / "notify.sock")
    proc = await start_daemon(cfg, env={"NOTIFY_SOCKET": str(notify.path)}, args=("--workers", "2"))
    assert proc.stderr is not None
    log = Log(proc.stderr)
    conns: list[KeptConnection] = []
    try:
        await notify.wait_for("READY=1")
        first, second = conns = await one_per_worker(port, children(proc.pid))
        # the password on one worker, the code on the other
        status, body = await first.request("POST", "/api/v1/login",
                                           {"username": "full@acme", "password": DEMO_PASSWORD})
        assert (status, body) == (200, {"totp_required": True})
        second.cookies = dict(first.cookies)
        status, body = await second.request("POST", "/api/v1/login/totp",
                                            {"code": code(on["secret"])})
        assert status == 200, body
        first.cookies = dict(second.cookies)
        assert [(await c.request("GET", "/api/v1/me"))[0] for c in conns] == [200, 200]

        # tech's group turns the policy on: the next request on each worker knows it
        for c in conns:
            c.cookies = {}
        status, _ = await first.request("POST", "/api/v1/login",
                                        {"username": "tech", "password": DEMO_PASSWORD})
        assert status == 200
        second.cookies = dict(first.cookies)
        assert [(await c.request("GET", "/api/v1/tickets"))[0] for c in conns] == [200, 200]
        await db.execute("UPDATE employee_groups SET require_2fa = true WHERE id = $1", group_id)
        refused = [await c.request("GET", "/api/v1/tickets") for c in conns]
        assert [(s, b["error"]["code"]) for s, b in refused] == [
            (403, "totp_enrolment_required")] * 2
        await db.execute("UPDATE employee_groups SET require_2fa = false WHERE id = $1", group_id)
        assert [(await c.request("GET", "/api/v1/tickets"))[0] for c in conns] == [200, 200]
    finally:
        for c in conns:
            c.close()
        await db.close()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
        notify.sock.close()
    assert "Traceback" not in log.text
