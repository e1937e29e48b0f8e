"""An administrator's password reset ends every session of that user at once, whether it is
done on the admin pages or with `portald admin … set-password` (SPEC §8)."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest
from multidict import MultiDict

from daemon.cli import main
from tests.support.config import write_test_config


async def _reset_on_page(admin, path: str, username: str) -> None:
    form = MultiDict({"username": username, "csrf_token": admin.csrf})
    async with admin.session.post(path, data=form, allow_redirects=False) as resp:
        assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("who", ["full@acme", "tech"])
async def test_a_reset_on_the_admin_pages_ends_the_users_sessions(users, demo_db, who: str) -> None:
    victim = await users.login(who)
    second = await users.login(who)
    assert (await victim.get("/api/v1/me")).status == 200
    admin = await users.login("admin")
    if who == "tech":
        emp = await demo_db.fetchval("SELECT id FROM employees WHERE username = $1", who)
        await _reset_on_page(admin, f"/admin/employees/{emp}/password", who)
    else:
        acme = await demo_db.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
        await _reset_on_page(admin, f"/admin/accounts/{acme}/users/password", who)
    assert (await victim.get("/api/v1/me")).status == 401
    assert (await second.get("/api/v1/me")).status == 401
    assert (await admin.get("/api/v1/me")).status == 200  # nobody else's
    after = await demo_db.fetchval(
        "SELECT after FROM audit_log WHERE action LIKE '%.set_password' ORDER BY id DESC LIMIT 1")
    assert '"sessions_ended": 2' in after


@pytest.mark.parametrize(("area", "who"), [("webuser", "partial@acme"), ("employee", "sub1")])
async def test_a_reset_with_the_cli_ends_the_users_sessions(
        users, demo_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, area: str,
        who: str) -> None:
    victim = await users.login(who)
    assert (await victim.get("/api/v1/me")).status == 200
    cfg = write_test_config(tmp_path, demo_dsn, smtp_port=8025)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-brand-new-password\n"))
    code = await asyncio.to_thread(main, ["admin", area, "set-password", who, "--password-stdin",
                                          "--config", str(cfg.path)])
    assert code == 0
    assert (await victim.get("/api/v1/me")).status == 401
