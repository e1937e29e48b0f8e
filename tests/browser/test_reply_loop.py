"""The demo's whole loop in a real browser: an alert to sub1 is caught, an administrator opens
it on the caught-mail page, follows its ticket link out of the sandboxed mail, comes back and
answers it with the Reply form; the reply travels through the daemon's inbound SMTP listener
and is on the ticket as sub1's note. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from daemon.app import build_app
from daemon.db.embedded import free_port
from daemon.dev.catcher import MailCatcher
from tests.browser.test_tickets import CHROMIUM, browser, log_in, new_page, notice, shot
from tests.support.config import with_settings
from tests.support.mail import forget_mail, wait_until
from web.routes import setup_web

__all__ = ["browser"]  # the fixture, shared with the ticket pages' tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing (apt-get install chromium) — browser tests skipped"),
]


@pytest.fixture
async def demo_portal(demo_dsn, demo_config, demo_db, tmp_path: Path) -> AsyncIterator[tuple[str, MailCatcher]]:
    """`make run` in small: the demo data, the mail catcher, inbound on, the whole daemon."""
    await forget_mail(demo_db)
    catcher = MailCatcher(tmp_path / "caught", port=free_port())
    catcher.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = with_settings(demo_config, http={"public_url": url}, smtp={"port": catcher._controller.port},
                        inbound={"enabled": True, "port": free_port(),
                                 "reply_address": "portald-reply@localhost"})
    runner = web.AppRunner(build_app(cfg, demo_dsn, setup_web=setup_web, caught_mail=catcher.directory))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield url, catcher
    finally:
        await runner.cleanup()
        catcher.stop()


async def test_an_alert_followed_from_the_mail_to_the_ticket_and_answered(demo_portal, browser,
                                                                          demo_db) -> None:
    from playwright.async_api import expect

    portal, catcher = demo_portal
    ticket, number = await demo_db.fetchrow(
        """SELECT t.id, t.number FROM tickets t JOIN employees e ON e.id = t.assigned_to
            WHERE e.username = 'sub1' AND t.status <> 'closed' ORDER BY t.id LIMIT 1""")
    await demo_db.execute("UPDATE tickets SET assigned_to = NULL WHERE id = $1", ticket)
    await demo_db.execute("UPDATE tickets SET assigned_to = (SELECT id FROM employees "
                          "WHERE username = 'sub1') WHERE id = $1", ticket)

    async def caught() -> bool:
        return any(catcher.directory.glob("*.eml"))

    assert await wait_until(caught), "the alert was not caught"

    page = await new_page(browser)
    await page.goto(f"{portal}/admin/caught-mail")
    await log_in(page, "admin")
    await expect(page).to_have_url(f"{portal}/admin/caught-mail")
    await shot(page, "r1-caught-mail-list")
    await page.get_by_role("link", name=re.compile(rf"\[{number}\] Assigned to you")).first.click()
    await expect(page.locator("dl.facts")).to_contain_text("portald-reply+")
    frame = page.frame_locator("iframe.mail-frame")
    await expect(frame.get_by_text(f"Ticket {number} has been assigned to you")).to_be_visible()
    await shot(page, "r2-caught-mail-as-the-recipient-sees-it")
    mail_url = page.url

    # the mail's own link, clicked inside the sandboxed mail, opens the ticket in the portal
    await frame.get_by_role("link", name=f"Open {number} in the portal").click()
    await expect(page).to_have_url(f"{portal}/tickets/{ticket}")
    await expect(page.locator("h1")).to_contain_text(number)
    await shot(page, "r3-ticket-from-the-mail-link")

    await page.goto(mail_url)
    await page.get_by_label("Your reply").fill("Replaced the fuser unit; printing again.")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page).to_have_url(f"{portal}/tickets/{ticket}?done=reply")
    assert await notice(page) == "Your reply came in by mail and is now a note on the ticket."
    await expect(page.get_by_text("Replaced the fuser unit; printing again.")).to_be_visible()
    await shot(page, "r4-reply-is-a-note")
    author = await demo_db.fetchval(
        """SELECT e.username FROM history_notes n JOIN employees e ON e.id = n.author_employee_id
            WHERE n.body = 'Replaced the fuser unit; printing again.'""")
    assert author == "sub1"
    await page.context.close()
