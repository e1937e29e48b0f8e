"""Two-factor helpers of the tests: codes of a secret, a client with a cookie jar of its own,
the admin CLI's JSON answer, and the fixtures of a web user with two-factor on."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pyotp
import pytest

from daemon.cli import main
from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.config import write_test_config


def code(secret: str, steps_ahead: int = 0) -> str:
    """The code of the current 30-second step, or of one within the tolerance after it."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def cli_json(dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   *argv: str) -> dict:
    cfg = write_test_config(tmp_path, dsn, smtp_port=8025)
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["admin", *argv, "--json", "--config", str(cfg.path)])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


class Browser:
    """A client with a cookie jar of its own that is not logged in yet."""

    def __init__(self, client) -> None:
        self.session = aiohttp.ClientSession(base_url=str(client.make_url("")),
                                             cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def post(self, path: str, body: dict, headers: dict | None = None):
        async with self.session.post(path, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def browser(demo_client):
    b = Browser(demo_client)
    yield b
    await b.close()


@pytest.fixture
async def enabled(demo_dsn, tmp_path, capsys) -> dict:
    """full@acme with two-factor on, set by an administrator with the CLI."""
    return await cli_json(demo_dsn, tmp_path, capsys, "webuser", "totp", "full@acme", "--enable")


async def password_step(browser: Browser) -> None:
    status, body = await browser.post("/api/v1/login", {"username": "full@acme",
                                                        "password": DEMO_PASSWORD})
    assert body == {"totp_required": True}, (status, body)
