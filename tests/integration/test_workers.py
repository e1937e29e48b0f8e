"""`portald run --workers N` as real processes: N workers on one port under one supervisor
that alone talks to systemd, restarts a worker that dies, passes SIGHUP and SIGTERM on, and
leaves nothing behind; mail goes out once and a scheduled job runs once however many
workers there are."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
from collections import Counter
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg

from daemon.db.embedded import EmbeddedPostgres, free_port
from daemon.supervisor import WORKER_PING_S, WORKER_STALE_S
from tests.support.config import run_config, write_config
from tests.support.daemon import start_daemon, wait_healthy
from tests.support.mail import forget_mail, new_ticket, outbox_counts, wait_until
from tests.support.workers import (
    Log,
    Notifications,
    alive,
    children,
    eventually,
    holders,
    listening,
    private_dir,
)


async def status_of_each(port: int, times: int) -> list[int]:
    """GET /healthz `times` times, each on a new connection."""
    statuses = []
    for _ in range(times):
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            statuses.append(resp.status)
    return statuses


async def metric(port: int, sample: str) -> float:
    """One sample of /metrics, e.g. 'portald_worker_restarts_total'."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return next(float(line.rpartition(" ")[2]) for line in text.splitlines()
                if line.startswith(sample + " "))


HEALTHZ_SERVED = 'portald_http_requests_total{route="healthz",status="200"}'


async def held_connections(port: int, count: int) -> tuple[list[asyncio.StreamWriter], set[int]]:
    """`count` connections, each answered once and kept open; their client ports."""
    writers, ports = [], set()
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writers.append(writer)
        ports.add(writer.get_extra_info("sockname")[1])
    return writers, ports


async def test_two_workers_share_one_port_under_one_supervisor(dsn: str, smtp_sink, tmp_path: Path) -> None:
    port = free_port()
    cfg = run_config(tmp_path / "config.toml", dsn=dsn, http_port=port, smtp_port=smtp_sink.port,
                     state=tmp_path / "state")
    notify = Notifications(tmp_path / "notify.sock")
    proc = await start_daemon(cfg, env={"NOTIFY_SOCKET": str(notify.path)}, args=("--workers", "2"))
    assert proc.stderr is not None
    log = Log(proc.stderr)
    db = await asyncpg.connect(dsn)
    try:
        # READY=1 once, when both workers listen
        await notify.wait_for("READY=1")
        workers = children(proc.pid)
        assert len(workers) == 2, log.text
        assert listening(workers, port) == workers
        assert listening({proc.pid}, port) == set()  # the supervisor itself serves nothing

        # both answer: connections are spread over the two processes
        writers, client_ports = await held_connections(port, 40)
        assert set(holders(workers, port, client_ports).values()) == workers
        for writer in writers:
            writer.close()
        assert await metric(port, HEALTHZ_SERVED) == 40  # /metrics counts both workers' requests

        # SIGHUP reaches every worker: the new log level shows in each one's log
        cfg.write_text(cfg.read_text() + "\n[log]\nlevel = 'DEBUG'\n")
        proc.send_signal(signal.SIGHUP)
        await notify.wait_for("RELOADING=1")
        for slot in (1, 2):
            await log.wait_for(f"[worker {slot}] portald.runner: configuration reloaded")
        await db.execute("INSERT INTO customer_groups (name) VALUES ('Reload probe')")
        for slot in (1, 2):
            await log.wait_for(f"[worker {slot}] portald.privileges: privileges reloaded")
        assert notify.drain()[-1].splitlines() == ["READY=1"]  # the reload is done

        # a worker killed is started again, counted, and the port keeps answering
        victim = min(workers)
        assert await metric(port, "portald_worker_restarts_total") == 0
        os.kill(victim, signal.SIGKILL)
        assert await eventually(lambda: not alive(victim), timeout=10)
        assert await status_of_each(port, 20) == [200] * 20
        assert await eventually(lambda: len(listening(children(proc.pid), port)) == 2, timeout=60)
        replaced = children(proc.pid)
        assert victim not in replaced and len(replaced & workers) == 1
        assert await metric(port, "portald_worker_restarts_total") == 1
        assert await metric(port, HEALTHZ_SERVED) == 60  # the killed worker's count is kept
        assert "was killed by SIGKILL; starting it again" in log.text

        # SIGTERM stops them all: exit 0, no process left, nobody holding the log open
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await log.wait_ended()
        assert not any(alive(pid) for pid in workers | replaced)
        assert notify.drain().count("READY=1") == 2  # at start and after the reload, not per worker
        assert "STOPPING=1" in notify.messages
        assert log.count("portald.runner: stopped") == 2 and "portald.supervisor: stopped" in log.text
        assert "Traceback" not in log.text
    finally:
        await db.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.sock.close()


async def test_with_two_workers_each_mail_goes_once_and_the_digest_runs_once(
        dsn: str, seed, smtp_sink, tmp_path: Path) -> None:
    port = free_port()
    db = await asyncpg.connect(dsn)
    await forget_mail(db)
    # [http] workers this time, not --workers; small batches so that both workers claim mail
    cfg = write_config(tmp_path / "config.toml", {
        "database": {"dsn": dsn},
        "http": {"port": port, "public_url": f"http://127.0.0.1:{port}", "workers": 2},
        "smtp": {"port": smtp_sink.port}, "state": {"dir": str(tmp_path / "state")},
        "mail": {"batch_size": 1, "poll_interval_s": 1},
        "scheduler": {"digest_time": datetime.now().strftime("%H:%M")}})
    proc = await start_daemon(cfg)
    assert proc.stderr is not None
    log = Log(proc.stderr)
    day = datetime.now().date()
    try:
        await wait_healthy(port, proc)
        await log.wait_for("portald.supervisor: serving with 2 workers")
        for n in range(30):
            await new_ticket(db, seed["acme"], f"Ticket {n}", assigned_to=seed["tech"])

        async def all_sent() -> bool:
            counts = await outbox_counts(db)
            return counts.get("sent", 0) >= 30 and not counts.get("queued")

        assert await wait_until(all_sent, timeout=60)
        sent = (await outbox_counts(db))["sent"]
        await asyncio.sleep(2)  # a second copy would come within a poll interval or two
        ids = Counter(r.message["Message-ID"] for r in smtp_sink.received)
        assert len(ids) == sent and set(ids.values()) == {1}, ids.most_common(3)
        by_worker = Counter(slot for slot in (1, 2) for line in log.lines
                            if f"[worker {slot}] portald.delivery" in line and "status=sent" in line)
        assert sum(by_worker.values()) == sent and len(by_worker) == 2, by_worker  # both sent
        if datetime.now().date() == day:  # across midnight there would be two days' digests
            assert await db.fetchval("SELECT count(*) FROM scheduler_runs WHERE job = 'digest'") == 1
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        await db.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_embedded_database_and_the_mail_catcher_are_the_supervisors(tmp_path: Path) -> None:
    """With no DSN the supervisor starts the embedded PostgreSQL once and hands the workers
    its DSN; the demo catcher runs in the supervisor; the inbound SMTP port is shared by
    the workers, as the HTTP port is."""
    http_port, smtp_port, inbound_port = free_port(), free_port(), free_port()
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "config.toml", {
        "http": {"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
        "smtp": {"port": smtp_port}, "state": {"dir": str(state)},
        "inbound": {"enabled": True, "port": inbound_port}})
    # the test run's own PORTALD_ variables (a test DSN) must not reach this daemon
    env = {k: "" for k in os.environ if k.startswith("PORTALD_")}
    proc = await start_daemon(cfg, env=env, args=("--workers", "2", "--mail-catcher"))
    assert proc.stderr is not None
    log = Log(proc.stderr)
    try:
        await log.wait_for("portald.supervisor: serving with 2 workers", timeout=120)
        workers = children(proc.pid)
        assert len(workers) == 2, log.text
        started = [line for line in log.lines if "embedded PostgreSQL started" in line]
        assert len(started) == 1 and "[worker" not in started[0]
        assert listening({proc.pid}, smtp_port) == {proc.pid}
        assert listening(workers, smtp_port) == set()
        assert listening(workers, inbound_port) == workers
        assert await status_of_each(http_port, 3) == [200] * 3
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await log.wait_ended()
        # the database goes last, once the workers have stopped with it still there
        last_worker_stop = max(i for i, line in enumerate(log.lines)
                               if "[worker" in line and "portald.runner: stopped" in line)
        stops = [i for i, line in enumerate(log.lines) if "embedded PostgreSQL stopped" in line]
        assert len(stops) == 1 and stops[0] > last_worker_stop
        assert "Traceback" not in log.text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.to_thread(EmbeddedPostgres(state).destroy)


async def test_a_port_another_program_listens_on_is_refused(dsn: str, smtp_sink, tmp_path: Path) -> None:
    """Even one that set SO_REUSEPORT itself: the workers would silently share its port."""
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    cfg = run_config(tmp_path / "config.toml", dsn=dsn, http_port=port, smtp_port=smtp_sink.port,
                     state=tmp_path / "state")
    proc = await start_daemon(cfg, args=("--workers", "2"))
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        taken.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1
    text = stderr.decode()
    assert f"cannot listen on 127.0.0.1:{port}" in text and "set [http] port" in text
    assert "worker 1 started" not in text and "Traceback" not in text


async def test_workers_stop_when_their_supervisor_is_killed(dsn: str, smtp_sink, tmp_path: Path) -> None:
    port = free_port()
    cfg = run_config(tmp_path / "config.toml", dsn=dsn, http_port=port, smtp_port=smtp_sink.port,
                     state=tmp_path / "state")
    proc = await start_daemon(cfg, args=("--workers", "2"))
    assert proc.stderr is not None
    log = Log(proc.stderr)
    try:
        await log.wait_for("portald.supervisor: serving with 2 workers")
        workers = children(proc.pid)
        private = private_dir(min(workers))
        proc.kill()
        await proc.wait()
        # each stops as at a SIGTERM: gracefully, on its own
        assert await eventually(lambda: not any(alive(pid) for pid in workers), timeout=40)
        await log.wait_ended()
        assert log.count("portald.runner: stopped") == 2, log.text
        shutil.rmtree(private)  # a supervisor killed could not remove it
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_watchdog_is_fed_only_while_every_worker_answers(
        dsn: str, smtp_sink, tmp_path: Path) -> None:
    port = free_port()
    cfg = run_config(tmp_path / "config.toml", dsn=dsn, http_port=port, smtp_port=smtp_sink.port,
                     state=tmp_path / "state")
    notify = Notifications(tmp_path / "notify.sock")
    proc = await start_daemon(cfg, args=("--workers", "2"), env={
        "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"})  # a ping every 0.5 s
    stopped = None
    try:
        await notify.wait_for("READY=1")
        assert await notify.comes_within("WATCHDOG=1", 3)
        stopped = min(children(proc.pid))
        os.kill(stopped, signal.SIGSTOP)  # alive, but it answers nothing
        await asyncio.sleep(WORKER_STALE_S + 1)
        assert not await notify.comes_within("WATCHDOG=1", 2)
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        assert await notify.comes_within("WATCHDOG=1", 3 * WORKER_PING_S)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.sock.close()
