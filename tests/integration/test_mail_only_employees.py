"""Employees who only receive mail: `active` is what counts for mail, `web_access` only for
logging in (SPEC §4, §6). An active employee without web access gets their alerts, takes no
license seat, and cannot log in; taking web access away ends their sessions at once, whether
through the CLI or the admin pages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from daemon.cli import main
from tests.support.api import Api, login_as
from tests.support.cli import Cli
from tests.support.config import write_test_config
from tests.support.mail import fan_out_all, forget_mail, new_ticket, running_worker
from tests.support.seed import SEED_PASSWORD


@pytest.fixture
def cli(config, capsys, monkeypatch) -> Cli:
    assert config.path is not None
    return Cli(config.path, capsys, monkeypatch)


class AsyncCli(Cli):
    """The CLI on its own event loop in a thread, so that this test's loop keeps serving."""

    async def run(self, *argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["admin", *argv, "--config", str(self.cfg_path)])
        out, err = self.capsys.readouterr()
        return code, out, err

    async def run_json(self, *argv: str) -> Any:
        code, out, err = await self.run(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


async def me_status(client) -> int:
    return (await client.get("/api/v1/me")).status


async def login_status(client, username: str) -> int:
    resp = await client.post("/api/v1/login", json={"username": username, "password": SEED_PASSWORD})
    return resp.status


async def test_active_employee_without_web_access_gets_the_alert_and_cannot_log_in(
        client, conn, seed, config, dsn, smtp_sink) -> None:
    await conn.execute("UPDATE employees SET web_access = false WHERE username = 'sub1'")
    await forget_mail(conn)
    ticket = await new_ticket(conn, seed["acme"], "Toner empty on floor 3", assigned_to=seed["sub1"])
    assert await fan_out_all(conn, config) == [("assigned", "sub1")]
    async with running_worker(config, dsn):
        [got] = await smtp_sink.wait_for_async(1)
    assert got.rcpt_tos == ["sub1@msp.test"]
    assert f"/tickets/{ticket}" in got.message.get_body(("plain",)).get_content()
    assert await conn.fetchval("SELECT status FROM outbox") == "sent"
    assert await login_status(client, "sub1") == 401
    # an inactive employee gets nothing, web access or not
    await conn.execute("UPDATE employees SET active = false, web_access = true WHERE username = 'sub1'")
    await new_ticket(conn, seed["acme"], "Second toner", assigned_to=seed["sub1"])
    assert await fan_out_all(conn, config) == []


async def test_web_access_off_ends_sessions_and_on_lets_in_again(client, seed, config, capsys,
                                                                 monkeypatch) -> None:
    cli = AsyncCli(config.path, capsys, monkeypatch)
    await login_as(client, "sub1")
    assert await me_status(client) == 200
    result = await cli.run_json("employee", "web-access", "sub1", "off")
    assert result["web_access"] is False and result["active"] is True and result["changed"] is True
    assert await me_status(client) == 401  # the session ended at once
    assert await login_status(client, "sub1") == 401
    code, out, _ = await cli.run("employee", "web-access", "sub1", "off")
    assert code == 0 and out.startswith("unchanged: sub1 (group Subcontractors, Acme, active, no web access)")
    assert (await cli.run_json("employee", "web-access", "sub1", "on"))["web_access"] is True
    assert await login_status(client, "sub1") == 200


def test_web_access_takes_a_seat_and_mail_only_employees_take_none(seed, cli) -> None:
    # seed: admin, tech, sub1, sub2 active with web access ("gone" is inactive)
    assert cli.json("license", "set", "4")["summary"] == "4 of 4 seats in use"
    result = cli.json("employee", "web-access", "sub2", "off")
    assert result["seats"]["summary"] == "3 of 4 seats in use"
    created = cli.json("employee", "create", "--username", "clerk", "--name", "Back Office",
                       "--email", "clerk@msp.test", "--no-web-access")
    assert created["web_access"] is False and created["active"] is True
    assert cli.json("license", "show")["summary"] == "3 of 4 seats in use"
    assert cli.json("employee", "web-access", "clerk", "on")["seats"]["summary"] == "4 of 4 seats in use"
    code, _, err = cli("employee", "web-access", "sub2", "on")
    assert code == 1 and err.strip() == "portald: no free license seat: 4 of 4 seats in use"


async def test_the_admin_page_toggles_web_access_and_ends_sessions(client, seed, conn) -> None:
    sub1 = await Api.login(client, "sub1", SEED_PASSWORD)
    admin = client
    csrf = await login_as(admin, "admin")
    resp = await admin.post(f"/admin/employees/{seed['sub1']}/web-access",
                            data={"web_access": "off", "csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert (await sub1.get("/api/v1/me")).status == 401
    await sub1.close()
    assert await conn.fetchval("SELECT web_access FROM employees WHERE id = $1", seed["sub1"]) is False
    page = await (await admin.get(f"/admin/employees/{seed['sub1']}")).text()
    assert "No web access" in page and "Give web access" in page
    audit = await conn.fetchrow("SELECT * FROM audit_log WHERE action = 'employee.web_access'")
    assert audit["actor"] == "employee:admin" and audit["target"] == "employee:sub1"


def test_web_access_needs_on_or_off(tmp_path, dsn, capsys, monkeypatch) -> None:
    cfg = write_test_config(tmp_path, dsn, smtp_port=8025)
    assert cfg.path is not None
    cli = Cli(cfg.path, capsys, monkeypatch)
    with pytest.raises(SystemExit) as stopped:
        cli("employee", "web-access", "sub1", "maybe")
    assert stopped.value.code == 2
