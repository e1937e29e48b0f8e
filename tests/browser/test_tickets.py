"""The ticket pages in a real browser: headless chromium driven by Playwright against the demo
portal served on a real TCP port. Screenshots go to test-output/screenshots/.

(a) customers: full@acme and limited@acme log in, list, open and raise tickets; full accepts
    a quote; limited sees no charges, assets or contracts anywhere;
(b) sub1 follows a mail link while logged out, logs in, lands on the ticket, adds a note, a
    labor charge and a file, prints it, closes it, and sets an alert setting.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from daemon.db.embedded import free_port
from tests.support import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
SCREENSHOTS = REPO / "test-output" / "screenshots"
PASSWORD = "demo"
TIMEOUT_MS = 15_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing (apt-get install chromium) — browser tests skipped"),
]


@pytest.fixture
async def portal(demo_app) -> AsyncIterator[str]:
    """The demo portal on a real port (the app, and so its database, outlives it)."""
    runner = web.AppRunner(demo_app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def db(demo_db: asyncpg.Connection) -> asyncpg.Connection:
    return demo_db


async def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def new_page(browser, *, phone: bool = False):
    viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    context = await browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    return await context.new_page()


async def log_in(page, username: str) -> None:
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()


async def notice(page) -> str:
    return (await page.locator("p.notice").inner_text()).strip()


async def test_customers_full_and_limited(portal: str, browser, db) -> None:
    from playwright.async_api import expect

    main_number = await db.fetchval("SELECT number FROM tickets WHERE description LIKE 'The projects share%'")

    # -- full@acme ------------------------------------------------------------------------------
    page = await new_page(browser)
    await page.goto(f"{portal}/login")
    await log_in(page, "full@acme")
    await expect(page).to_have_url(f"{portal}/")
    await expect(page.get_by_role("link", name=main_number)).to_be_visible()
    await shot(page, "a1-full-ticket-list")

    await page.get_by_role("link", name=main_number).click()
    await expect(page.locator("h1")).to_contain_text(main_number)
    for heading in ("History notes", "Emails", "Attachments", "Charges"):
        await expect(page.get_by_role("heading", name=heading)).to_be_visible()
    await shot(page, "a2-full-ticket-detail")

    await page.get_by_role("link", name="Tickets", exact=True).first.click()
    await page.get_by_role("link", name="New ticket").click()
    await page.get_by_label("What is the problem?").fill("The scanner on floor 2 jams on every page.")
    await page.get_by_label("Priority").select_option("high")
    await page.get_by_role("button", name="Create ticket").click()
    assert await notice(page) == "The ticket was created."
    await expect(page.locator(".prewrap").first).to_contain_text("scanner on floor 2")
    await shot(page, "a3-full-new-ticket-created")

    await page.get_by_role("link", name="Quotes").click()
    await expect(page).to_have_url(f"{portal}/quotes")
    row = page.locator("tr", has_text="Q-1001")
    await row.get_by_role("button").click()
    await expect(page.locator("p.notice")).to_contain_text("Q-1001")
    await shot(page, "a4-full-quote-accepted")
    accepted = await db.fetchrow("SELECT q.status, w.username FROM quotes q "
                                 "JOIN customer_web_users w ON w.id = q.accepted_by_webuser "
                                 "WHERE q.number = 'Q-1001'")
    assert tuple(accepted) == ("accepted", "full@acme")
    await page.context.close()

    # -- limited@acme, on a phone ---------------------------------------------------------------
    page = await new_page(browser, phone=True)
    await page.goto(f"{portal}/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    await log_in(page, "limited@acme")
    await expect(page).to_have_url(f"{portal}/")
    nav = page.get_by_role("navigation", name="Main")
    for tab in ("Assets", "Contracts"):
        await expect(nav.get_by_role("link", name=tab)).to_have_count(0)
    await shot(page, "a5-limited-ticket-list-phone")

    await page.get_by_role("link", name=main_number).click()
    await expect(page.locator("h1")).to_contain_text(main_number)
    body = await page.locator("body").inner_text()
    for absent in ("Charges", "Assets", "Contracts", "History notes", "Priority", "ACME-FS01"):
        assert absent not in body, absent
    await shot(page, "a6-limited-ticket-detail-phone")

    await page.goto(f"{portal}/tickets/new")
    await expect(page.get_by_label("Priority")).to_have_count(0)
    await page.get_by_label("What is the problem?").fill("My keyboard is missing the letter Q.")
    await page.get_by_role("button", name="Create ticket").click()
    assert await notice(page) == "The ticket was created."
    assert "Charges" not in await page.locator("body").inner_text()
    await shot(page, "a7-limited-new-ticket-phone")
    await page.context.close()


async def test_subcontractor_follows_a_mail_link_and_works_the_ticket(portal: str, browser, db) -> None:
    from playwright.async_api import expect

    ticket_id = await db.fetchval(
        """SELECT t.id FROM tickets t JOIN employees e ON e.id = t.assigned_to
            WHERE e.username = 'sub1' AND t.status <> 'closed' ORDER BY t.id LIMIT 1""")
    link = f"{portal}/tickets/{ticket_id}"

    page = await new_page(browser)
    await page.goto(link)  # logged out: the login page first
    await expect(page).to_have_url(f"{portal}/login?next=/tickets/{ticket_id}")
    await shot(page, "b1-sub1-login-from-mail-link")
    await log_in(page, "sub1")
    await expect(page).to_have_url(link)
    await expect(page.get_by_role("heading", name="Close the ticket")).to_be_visible()
    await expect(page.get_by_text("Approved two additional disks")).to_have_count(0)  # tech's note

    await page.get_by_label("Add a note").fill("Replaced the failing disk; rebuild at 40 %.")
    await page.get_by_role("button", name="Add note").click()
    assert await notice(page) == "Your note was added."
    await expect(page.get_by_text("rebuild at 40 %")).to_be_visible()

    await page.locator("summary", has_text="Log labor").click()
    await expect(page.locator("#charge-labor-rate")).to_have_value("65.00")
    await page.locator("#charge-labor-hours").fill("1.25")
    await page.locator("#charge-labor-description").fill("Disk swap and rebuild check")
    await page.locator("#charge-labor-hours").locator("xpath=ancestor::form").get_by_role("button").click()
    assert await notice(page) == "The charge was logged."
    await expect(page.locator("tr", has_text="Disk swap and rebuild check")).to_contain_text("81.25")

    # a mistake is explained beside the field, and the input is kept
    await page.locator("summary", has_text="Log a product or part").click()
    await page.locator("#charge-part-quantity").fill("two")
    await page.locator("#charge-part-unit_price").fill("19.90")
    await page.locator("#charge-part-quantity").locator("xpath=ancestor::form").get_by_role("button").click()
    await expect(page.locator("#charge-part-quantity-error")).to_contain_text("decimal number")
    await expect(page.locator("#charge-part-unit_price")).to_have_value("19.90")
    await shot(page, "b2-sub1-charge-error")

    await page.locator("#attachment-file").set_input_files(
        files=[{"name": "rebuild-log.txt", "mimeType": "text/plain", "buffer": b"rebuild 40%\n"}])
    await page.get_by_role("button", name="Upload", exact=True).click()
    assert await notice(page) == "The file was uploaded."
    await expect(page.get_by_role("link", name="rebuild-log.txt")).to_be_visible()
    await shot(page, "b3-sub1-ticket-worked")

    await page.get_by_role("link", name="Print").click()
    await expect(page).to_have_url(f"{link}/print")
    await expect(page.locator("nav")).to_have_count(0)
    await expect(page.get_by_text("Disk swap and rebuild check")).to_be_visible()
    await page.emulate_media(media="print")
    await shot(page, "b4-sub1-print-view")
    await page.emulate_media(media="screen")
    await page.get_by_role("link", name="Back to the ticket").click()

    await page.get_by_label("Closing note").fill("Array healthy again; closing.")
    await page.get_by_role("button", name="Close ticket").click()
    assert await notice(page) == "The ticket was closed."
    await expect(page.locator("h1 .badge")).to_have_text("Closed")
    await expect(page.get_by_role("heading", name="Close the ticket")).to_have_count(0)
    await shot(page, "b5-sub1-ticket-closed")
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket_id) == "closed"

    # the user menu leads to the alert settings
    await page.locator("details.user-menu summary").click()
    await page.get_by_role("link", name="My alert settings").click()
    await expect(page).to_have_url(f"{portal}/me/alerts")
    await page.get_by_label("A charge is logged").check()
    await page.get_by_role("button", name="Save settings").click()
    assert await notice(page) == "Your settings were saved."
    await expect(page.get_by_label("A charge is logged")).to_be_checked()
    await shot(page, "b6-sub1-alert-settings")
    assert await db.fetchval("SELECT recv_charge FROM employee_mail_settings e "
                             "JOIN employees x ON x.id = e.employee_id WHERE x.username = 'sub1'")
    await page.context.close()
