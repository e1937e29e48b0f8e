"""Shared by the mail tests: a small data set written with plain SQL (as any program writing
the database would), the fan-out run by hand, and an outbox worker on a test database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from daemon.config import Config, Settings, load_config
from daemon.db.embedded import free_port
from daemon.mail.fanout import fan_out
from daemon.mail.identity import MailIdentity
from daemon.mail.worker import OutboxWorker, create_mail_pool
from daemon.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Seed:
    acme: int
    globex: int
    admin: int  # Administrators, all accounts
    tech: int  # Standard, all accounts
    sub1: int  # Subcontractors, Acme
    sub2: int  # Subcontractors, Globex
    gone: int  # Standard, all accounts, inactive
    names: dict[int, str]


async def seed(conn: asyncpg.Connection) -> Seed:
    acme = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
    globex = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Globex') RETURNING id")
    groups = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM employee_groups")}
    ids: dict[str, int] = {}
    for username, group, all_accounts, active in [
        ("admin", "Administrators", True, True),
        ("tech", "Standard", True, True),
        ("sub1", "Subcontractors", False, True),
        ("sub2", "Subcontractors", False, True),
        ("gone", "Standard", True, False),
    ]:
        ids[username] = await conn.fetchval(
            """INSERT INTO employees (username, full_name, email, group_id, all_accounts, active)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            username, f"{username.capitalize()} Person", f"{username}@msp.test", groups[group],
            all_accounts, active)
    await conn.execute("INSERT INTO employee_accounts VALUES ($1, $2), ($3, $4)",
                       ids["sub1"], acme, ids["sub2"], globex)
    return Seed(acme=acme, globex=globex, admin=ids["admin"], tech=ids["tech"], sub1=ids["sub1"],
                sub2=ids["sub2"], gone=ids["gone"], names={v: k for k, v in ids.items()})


async def new_ticket(conn: asyncpg.Connection, account_id: int, description: str = "Printer on fire", *,
                     assigned_to: int | None = None, recipients: tuple[int, ...] = (),
                     created_by: int | None = None) -> int:
    ticket_id = await conn.fetchval(
        """INSERT INTO tickets (account_id, description, assigned_to, created_by_employee)
           VALUES ($1, $2, $3, $4) RETURNING id""", account_id, description, assigned_to, created_by)
    for emp in recipients:
        await conn.execute("INSERT INTO ticket_recipients VALUES ($1, $2)", ticket_id, emp)
    return ticket_id


async def forget_mail(conn: asyncpg.Connection) -> None:
    """Start a test from a quiet outbox: everything so far counts as told."""
    await conn.execute("UPDATE mail_events SET fanned_out = true WHERE NOT fanned_out")
    await conn.execute("DELETE FROM outbox")


async def set_mail_settings(conn: asyncpg.Connection, employee_id: int, **values: bool) -> None:
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(values))
    await conn.execute(f"UPDATE employee_mail_settings SET {sets} WHERE employee_id = $1",
                       employee_id, *values.values())


def identity(config: Config) -> MailIdentity:
    return MailIdentity.from_config(config)


async def fan_out_all(conn: asyncpg.Connection, config: Config) -> list[tuple[str, str]]:
    """Run the fan-out until no event is left; the queued mails as (event, username), sorted."""
    while (await fan_out(conn, identity=identity(config))).events:
        pass
    rows = await conn.fetch(
        """SELECT o.event, e.username FROM outbox o JOIN employees e ON e.id = o.employee_id
            WHERE o.status = 'queued' ORDER BY o.event, e.username""")
    return [(r["event"], r["username"]) for r in rows]


def with_settings(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy of `config` with some keys of some sections replaced."""
    return config.model_copy(update={
        name: getattr(config, name).model_copy(update=values) for name, values in sections.items()})


@contextlib.asynccontextmanager
async def running_worker(config: Config, dsn: str, **options: Any) -> AsyncIterator[OutboxWorker]:
    pool = await create_mail_pool(dsn)
    worker = OutboxWorker(pool=pool, dsn=dsn, settings=Settings(config), metrics=Metrics(), **options)
    worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
        await pool.close()


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())


async def outbox_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await conn.fetch(
        "SELECT status, count(*) AS n FROM outbox GROUP BY status")}


# -- the real daemon as a subprocess ---------------------------------------------------------

def write_daemon_config(directory: Path, dsn: str, smtp_port: int, **mail: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    mail_lines = "\n".join(f"{k} = {v}" for k, v in {"poll_interval_s": 1, **mail}.items())
    path.write_text(f"""
[database]
dsn = "{dsn}"
pool_min = 1
pool_max = 8
[http]
host = "127.0.0.1"
port = {free_port()}
public_url = "http://portal.test"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "portald <portald@portal.test>"
timeout_s = 2
[mail]
{mail_lines}
[state]
dir = "{directory / 'state'}"
[log]
level = "WARNING"
""")
    load_config(path)  # fail here, not in the child, on a bad file
    return path


def start_daemon(config_path: Path, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALD_")}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config_path), "run"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_daemon(proc: subprocess.Popen, *, kill: bool = False, timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)
