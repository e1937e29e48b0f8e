"""`portald run` as a real process: it serves, tells systemd, stops cleanly on SIGTERM, and
refuses to start without its database."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from daemon.db.embedded import free_port
from tests.support.config import run_config
from tests.support.daemon import start_daemon, wait_healthy


async def test_run_serves_and_stops_cleanly_on_sigterm(dsn: str, smtp_sink, tmp_path: Path) -> None:
    port = free_port()
    cfg = run_config(tmp_path / "config.toml", dsn=dsn, http_port=port, smtp_port=smtp_sink.port,
                       state=tmp_path / "state")
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    proc = await start_daemon(cfg, env={"NOTIFY_SOCKET": str(notify_path)})
    try:
        await wait_healthy(port, proc)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["database"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        stderr = (await proc.stderr.read()).decode()
        assert "Traceback" not in stderr
        messages = []
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                break
        joined = "\n".join(messages)
        assert "READY=1" in joined and "STOPPING=1" in joined
        assert joined.index("READY=1") < joined.index("STOPPING=1")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()


async def test_sighup_reloads_the_configuration(dsn: str, smtp_sink, tmp_path: Path) -> None:
    port = free_port()
    cfg = run_config(tmp_path / "config.toml", dsn=dsn, http_port=port, smtp_port=smtp_sink.port,
                       state=tmp_path / "state")
    proc = await start_daemon(cfg)
    try:
        await wait_healthy(port, proc)
        cfg.write_text(cfg.read_text() + "\n[log]\nlevel = 'DEBUG'\n")
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        cfg.write_text(cfg.read_text() + "broken = 1\n")  # an unknown [log] key: must be refused
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200  # still serving after a refused reload
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        stderr = (await proc.stderr.read()).decode()
        assert "configuration reloaded" in stderr
        assert "reload refused" in stderr and "log.broken: unknown key" in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_run_exits_non_zero_when_the_database_is_missing(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    cfg = run_config(tmp_path / "config.toml", dsn=f"postgresql://portald:pw@127.0.0.1:{dead}/portald",
                       http_port=free_port(), smtp_port=free_port(), state=tmp_path / "state")
    proc = await start_daemon(cfg)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    text = stderr.decode()
    assert "database unavailable" in text
    assert "Traceback" not in text
    assert "pw@" not in text  # the DSN's password never reaches the log


@pytest.mark.parametrize("args", [["run", "--config", "/nonexistent/portald.toml"]])
def test_run_with_a_missing_config_file_says_so(args: list[str], capsys) -> None:
    from daemon.cli import main

    assert main(args) == 2
    assert "no such configuration file" in capsys.readouterr().err


async def test_a_dead_background_task_stops_the_daemon_non_zero(config) -> None:
    """No half-alive daemon: when a side task dies, serving stops and the exit code is 1."""

    from daemon.app import build_app
    from daemon.appkeys import BACKGROUND
    from daemon.config import HttpConfig
    from daemon.notify import SystemdNotifier
    from daemon.runner import _serve_app
    from web.routes import setup_web

    cfg = config.model_copy(update={"http": HttpConfig(port=free_port())})
    app = build_app(cfg, config.database.dsn, setup_web=setup_web, background=False)

    async def doomed() -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("side task failed")

    async def side_task_ctx(app):
        app[BACKGROUND].append(asyncio.get_running_loop().create_task(doomed(), name="doomed"))
        yield

    app.cleanup_ctx.append(side_task_ctx)
    assert await asyncio.wait_for(_serve_app(app, cfg, SystemdNotifier(), None), 30) == 1


async def _read_until(stream: asyncio.StreamReader, text: str, timeout: float = 30) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        while text not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"stream ended before {text!r}:\n{seen}")
            seen += line.decode(errors="replace")
    return seen


async def test_a_second_sigterm_during_the_stop_does_not_kill_the_daemon(
        dsn: str, smtp_sink, tmp_path: Path) -> None:
    port = free_port()
    cfg = run_config(tmp_path / "config.toml", dsn=dsn, http_port=port, smtp_port=smtp_sink.port,
                     state=tmp_path / "state")
    proc = await start_daemon(cfg)
    conn = await asyncpg.connect(dsn)
    try:
        await wait_healthy(port, proc)
        # a request in flight while the stop begins: its login attempt waits for the lock on
        # its name (migration 005), which this test holds
        await conn.execute("SELECT pg_advisory_lock(hashtext('portald_login_user'), hashtext('nobody'))")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"username": "nobody", "password": "wrong"}'
        writer.write(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        async with asyncio.timeout(10):
            while not await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
                await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        await _read_until(proc.stderr, "stopping")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.5)
        assert proc.returncode is None, "the second signal killed the daemon"
        await conn.execute("SELECT pg_advisory_unlock_all()")
        status = await asyncio.wait_for(reader.readline(), 20)
        assert status.startswith(b"HTTP/1.1 401"), status
        writer.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        rest = (await proc.stderr.read()).decode()
        assert "received while stopping: ignored" in rest and "Traceback" not in rest
    finally:
        await conn.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
