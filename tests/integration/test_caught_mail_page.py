"""Demo mode: the caught mails in the portal (administrators only, and only when the mail
catcher runs), each shown as its recipient sees it, and a reply sent from the page through the
daemon's own inbound listener."""

from __future__ import annotations

import asyncio
import html
import re
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from daemon.app import build_app
from daemon.db.embedded import free_port
from daemon.dev.catcher import MailCatcher
from tests.support.api import Api
from tests.support.config import with_settings, write_config
from tests.support.daemon import start_daemon, wait_healthy
from tests.support.mail import forget_mail, wait_until
from tests.support.replies import REPLY_ADDRESS
from web.routes import setup_web


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    found = MailCatcher(tmp_path / "caught", port=free_port())
    found.start()
    yield found
    found.stop()


@pytest.fixture
async def demo(demo_dsn, demo_config, demo_db, catcher, aiohttp_client) -> AsyncIterator:
    # the database first: the server (torn down first) stops before the database is dropped
    await forget_mail(demo_db)
    cfg = with_settings(demo_config, smtp={"port": catcher._controller.port},
                        inbound={"enabled": True, "port": free_port(), "reply_address": REPLY_ADDRESS})
    yield await aiohttp_client(build_app(cfg, demo_dsn, setup_web=setup_web,
                                         caught_mail=catcher.directory))


async def sub1_alert(db, catcher: MailCatcher | _Folder) -> tuple[int, str]:
    """An assignment alert to sub1, caught: (ticket id, the mail's name)."""
    ticket = await db.fetchval(
        """SELECT t.id FROM tickets t JOIN employees e ON e.id = t.assigned_to
            WHERE e.username = 'sub1' AND t.status <> 'closed' ORDER BY t.id LIMIT 1""")
    await db.execute("UPDATE tickets SET assigned_to = NULL WHERE id = $1", ticket)
    await db.execute("UPDATE tickets SET assigned_to = (SELECT id FROM employees WHERE username = 'sub1') "
                     "WHERE id = $1", ticket)

    async def caught() -> bool:
        return any(catcher.directory.glob("*.eml"))

    assert await wait_until(caught)
    [path] = sorted(catcher.directory.glob("*.eml"))
    return ticket, path.stem


async def test_the_pages_exist_only_in_demo_mode_and_for_administrators(demo, demo_client, demo_db,
                                                                        catcher) -> None:
    _, name = await sub1_alert(demo_db, catcher)
    outside = await Api.login(demo_client, "admin")  # the same portal without the catcher
    for path in ("/admin/caught-mail", f"/admin/caught-mail/{name}"):
        assert (await outside.get(path)).status == 404
    await outside.close()
    for username in ("tech", "sub1", "full@acme"):
        user = await Api.login(demo, username)
        assert (await user.get("/admin/caught-mail")).status == 404, username
        assert (await user.post(f"/admin/caught-mail/{name}/reply", data={"text": "x"})).status == 404
        await user.close()
    admin = await Api.login(demo, "admin")
    assert (await admin.get("/admin/caught-mail/../../etc/passwd")).status == 404
    assert (await admin.get("/admin/caught-mail/20990101-000000-000000000")).status == 404
    await admin.close()


async def test_a_caught_alert_is_shown_as_its_recipient_sees_it_and_answered(demo, demo_db,
                                                                           catcher) -> None:
    ticket, name = await sub1_alert(demo_db, catcher)
    admin = await Api.login(demo, "admin")
    listing = (await admin.get("/admin/caught-mail")).body.decode()
    assert f'href="/admin/caught-mail/{name}"' in listing and "Assigned to you" in listing
    page = await admin.get(f"/admin/caught-mail/{name}")
    body = page.body.decode()
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    frame = re.search(r'<iframe class="mail-frame"[^>]*sandbox="([^"]*)" srcdoc="([^"]*)"', body)
    assert frame, "the HTML part is in a sandboxed frame"
    assert "allow-scripts" not in frame.group(1) and "allow-same-origin" not in frame.group(1)
    inner = html.unescape(frame.group(2))
    assert inner.startswith('<meta http-equiv="Content-Security-Policy" content="default-src \'none\';')
    assert f"/tickets/{ticket}" in inner
    assert re.search(r"portald-reply\+[a-z2-7]+@reply\.portal\.test", body)
    assert 'id="ticket-link">' in body

    before = await demo_db.fetchval("SELECT count(*) FROM history_notes WHERE ticket_id = $1", ticket)
    sent = await admin.post(f"/admin/caught-mail/{name}/reply",
                            data={"text": "On site at 3 pm.", "quote": "on"}, allow_redirects=False)
    assert sent.status == 303 and sent.headers["Location"] == f"/tickets/{ticket}?done=reply"
    notes = await demo_db.fetch(
        """SELECT n.body, e.username FROM history_notes n LEFT JOIN employees e ON e.id = n.author_employee_id
            WHERE n.ticket_id = $1 ORDER BY n.id""", ticket)
    assert len(notes) == before + 1
    assert (notes[-1]["body"], notes[-1]["username"]) == ("On site at 3 pm.", "sub1")
    await admin.close()


async def test_a_refused_reply_shows_the_servers_answer(demo, demo_db, catcher) -> None:
    ticket, name = await sub1_alert(demo_db, catcher)
    await demo_db.execute("UPDATE tickets SET assigned_to = (SELECT id FROM employees WHERE username = 'tech') "
                          "WHERE id = $1", ticket)
    admin = await Api.login(demo, "admin")
    sent = await admin.post(f"/admin/caught-mail/{name}/reply", data={"text": "Too late?"})
    assert sent.status == 422
    text = sent.body.decode()
    assert "The daemon refused the reply: 550 5.7.1 the ticket is not (or no longer) in your scope" in text
    assert await demo_db.fetchval("SELECT count(*) FROM history_notes WHERE body = 'Too late?'") == 0
    await admin.close()


async def test_portald_run_with_the_catcher_serves_the_page(demo_dsn, demo_db, tmp_path: Path) -> None:
    """`make run` as it runs: `portald run --mail-catcher` hands the catcher's folder over."""
    await forget_mail(demo_db)
    http_port, smtp_port, inbound_port = free_port(), free_port(), free_port()
    path = write_config(tmp_path / "config.toml", {
        "database": {"dsn": demo_dsn},
        "http": {"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
        "smtp": {"port": smtp_port}, "state": {"dir": str(tmp_path / "state")},
        "inbound": {"enabled": True, "port": inbound_port}})
    proc = await start_daemon(path, args=("--mail-catcher",))
    try:
        await wait_healthy(http_port, proc)
        _, name = await sub1_alert(demo_db, _Folder(tmp_path / "state" / "mail"))
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{http_port}",
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post("/api/v1/login", json={"username": "admin", "password": "demo"}) as r:
                assert r.status == 200
            async with http.get("/admin/caught-mail") as r:
                assert r.status == 200 and name in await r.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


class _Folder:
    """What sub1_alert needs of a catcher: where it stores mail."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
