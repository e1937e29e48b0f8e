"""Two-factor login in a real browser: sub1, with two-factor on, follows the ticket link of a
mail they got while logged out, gives the password, then the code, and lands on the ticket.
Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import email
import re
from email import policy

import pyotp
import pytest

from daemon.services import totp
from tests.browser.test_reply_loop import demo_portal
from tests.browser.test_tickets import CHROMIUM, browser, log_in, new_page, shot
from tests.support.mail import wait_until

__all__ = ["browser", "demo_portal"]  # the fixtures, shared with the other browser tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing (apt-get install chromium) — browser tests skipped"),
]


async def test_a_mailed_ticket_link_then_password_then_code(demo_portal, browser, demo_db) -> None:
    from playwright.async_api import expect

    portal, catcher = demo_portal
    secret = (await totp.set_totp(demo_db, actor="cli:test", kind="employee", username="sub1",
                                  enabled=True))["secret"]
    ticket, number = await demo_db.fetchrow(
        """SELECT t.id, t.number FROM tickets t JOIN employees e ON e.id = t.assigned_to
            WHERE e.username = 'sub1' AND t.status <> 'closed' ORDER BY t.id LIMIT 1""")
    await demo_db.execute("UPDATE tickets SET assigned_to = NULL WHERE id = $1", ticket)
    await demo_db.execute("UPDATE tickets SET assigned_to = (SELECT id FROM employees "
                          "WHERE username = 'sub1') WHERE id = $1", ticket)

    async def caught() -> bool:
        return any(catcher.directory.glob("*.eml"))

    assert await wait_until(caught), "the alert was not caught"
    mail = email.message_from_bytes(next(catcher.directory.glob("*.eml")).read_bytes(),
                                    policy=policy.default)
    text = mail.get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(portal)}/tickets/{ticket}\b", text).group(0)

    page = await new_page(browser)
    await page.goto(link)
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await log_in(page, "sub1")
    await expect(page).to_have_url(re.compile(rf"/login/totp\?next=/tickets/{ticket}$"))
    await shot(page, "t1-two-factor-code-form")
    field = page.get_by_label(re.compile("Code from your authenticator app"))
    await field.fill("000000")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Wrong or expired code")
    await field.fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(link)
    await expect(page.locator("h1")).to_contain_text(number)
    await shot(page, "t2-two-factor-landed-on-the-ticket")
    await page.context.close()


async def test_setting_it_up_on_the_security_page(demo_portal, browser, demo_db) -> None:
    from playwright.async_api import expect

    portal, _ = demo_portal
    page = await new_page(browser)
    await page.goto(f"{portal}/login")
    await log_in(page, "full@acme")
    await page.locator(".user-menu summary").click()
    await page.get_by_role("link", name="Security").click()
    await expect(page).to_have_url(f"{portal}/security")
    await page.get_by_role("button", name="Set up two-factor login").click()
    await expect(page.locator("figure.qr svg")).to_be_visible()
    await shot(page, "t3-security-page-qr-code")
    secret = (await page.locator("code.secret").inner_text()).strip()
    await page.get_by_label("Code from your app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Turn two-factor login on").click()
    await expect(page.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)
    await shot(page, "t4-security-page-recovery-codes")
    assert await demo_db.fetchval("SELECT confirmed_at IS NOT NULL FROM totp_credentials") is True
    await page.context.close()
