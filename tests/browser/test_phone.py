"""The portal on a phone, in a real browser (headless chromium, Playwright).

(a) at 390×844, sub1 follows the link of a real alert mail (caught by the test SMTP server),
    logs in, lands on the ticket and adds a note: no page scrolls sideways, the navigation is
    folded behind its "Menu" summary until opened, and the ticket's actions (note, charge,
    attachment, close) are on screen without horizontal scrolling;
(b) at 360 px, every page a customer (full@acme) and employees (sub1, admin) reach by following
    the portal's links is no wider than the viewport.
Screenshots go to test-output/screenshots/ (ignored by git)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from daemon.app import build_app
from daemon.db.embedded import free_port
from tests.browser.test_reply_loop import demo_portal
from tests.browser.test_tickets import CHROMIUM, TIMEOUT_MS, browser, log_in, notice, portal, shot
from tests.support.config import with_settings
from tests.support.mail import forget_mail, wait_until
from tests.support.smtp import SmtpSink
from web.routes import setup_web

__all__ = ["browser", "demo_portal", "portal"]  # fixtures shared with the other browser tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing (apt-get install chromium) — browser tests skipped"),
]

PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
LINK = re.compile(r"https?://\S+/tickets/[0-9]+")
# links the crawl does not follow: downloads, and leaving the session
NOT_PAGES = re.compile(r"^/(attachments|documents/[0-9]|kb/[0-9]+/files|api/|logout|static/)")


@pytest.fixture
async def mailing_portal(demo_dsn, demo_config, demo_db, smtp_sink: SmtpSink) -> AsyncIterator[str]:
    """The whole daemon on the demo data, mailing to the test SMTP server, links to itself."""
    await forget_mail(demo_db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    runner = web.AppRunner(build_app(with_settings(demo_config, http={"public_url": url}),
                                     demo_dsn, setup_web=setup_web))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield url
    finally:
        await runner.cleanup()


async def phone_page(browser, viewport: dict[str, int]):
    context = await browser.new_context(viewport=viewport, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    return await context.new_page()


async def page_width(page) -> int:
    return await page.evaluate("document.documentElement.scrollWidth")


# what may widen the page (a failure names them): elements past the screen's right edge that
# are positioned out of the flow, or the outermost such not inside a box that scrolls or clips
OVERFLOWING = """w => {
  const past = e => e.getBoundingClientRect().right > w;
  const clipped = e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
    if (getComputedStyle(a).overflowX !== "visible") return true; return false; };
  const loose = e => ["absolute", "fixed"].includes(getComputedStyle(e).position);
  return [...document.querySelectorAll("body *")]
    .filter(e => past(e) && (loose(e) || (!clipped(e) && !past(e.parentElement))))
    .slice(0, 5).map(e => e.tagName.toLowerCase() + "." + [...e.classList].join(".")
                          + " " + Math.round(e.getBoundingClientRect().right));
}"""


async def assert_fits(page, width: int) -> None:
    wide = await page_width(page)
    if wide > width:
        culprits = await page.evaluate(OVERFLOWING, width)
        raise AssertionError(f"{page.url} is {wide} px wide on a {width} px screen: {culprits}")


async def assert_on_screen(page, locator, width: int) -> None:
    """Visible, and inside the screen's width once scrolled to."""
    from playwright.async_api import expect

    await expect(locator).to_be_visible()
    await locator.scroll_into_view_if_needed()
    box = await locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


async def reassign(db, ticket: int, username: str) -> None:
    """Another program reassigns the ticket: the database's trigger queues the alert."""
    await db.execute("UPDATE tickets SET assigned_to = NULL WHERE id = $1", ticket)
    await db.execute("UPDATE tickets SET assigned_to = (SELECT id FROM employees "
                     "WHERE username = $2) WHERE id = $1", ticket, username)


async def alert_link(sink: SmtpSink, recipient: str) -> str:
    for mail in await sink.wait_for_async(1):
        if recipient in mail.rcpt_tos:
            text = mail.message.get_body(preferencelist=("plain",)).get_content()
            return LINK.search(text).group(0)
    raise AssertionError(f"no mail to {recipient}")


async def assert_nav_folded(page, width: int) -> None:
    """The navigation is folded: its summary shows, its links only once it is opened."""
    from playwright.async_api import expect

    menu = page.locator("details.nav-toggle > summary")
    tickets = page.locator("nav#main-nav").get_by_role("link", name="Tickets")
    await expect(menu).to_be_visible()
    await expect(tickets).to_be_hidden()
    await shot(page, "p2-phone-ticket")
    await menu.click()
    await assert_on_screen(page, tickets, width)
    await assert_fits(page, width)
    await shot(page, "p3-phone-menu-open")
    await menu.click()
    await expect(tickets).to_be_hidden()


async def assert_actions_reachable(page, width: int) -> None:
    """Each action of the ticket has a jump link at the top, and its form is on screen,
    never sideways; the charges read without scrolling the table."""
    from playwright.async_api import expect

    jump = page.get_by_role("navigation", name="Ticket actions")
    for link, action in (("Note", page.get_by_role("button", name="Add note")),
                         ("Charge", page.locator("summary", has_text="Log labor")),
                         ("Attachment", page.get_by_role("button", name="Upload", exact=True)),
                         ("Close", page.get_by_role("button", name="Close ticket"))):
        await page.evaluate("window.scrollTo(0, 0)")
        await jump.get_by_role("link", name=link, exact=True).click()
        await expect(action).to_be_in_viewport()
        await assert_on_screen(page, action, width)
    await assert_on_screen(page, page.locator("table.reflow td[data-label=Amount]").first, width)
    await page.locator("summary", has_text="Log labor").click()
    await assert_on_screen(page, page.locator("#charge-labor-hours"), width)
    await assert_fits(page, width)


async def test_a_mailed_alert_on_a_phone_to_a_note(mailing_portal: str, browser, demo_db,
                                                   smtp_sink: SmtpSink) -> None:
    from playwright.async_api import expect

    portal, width = mailing_portal, PHONE["width"]
    ticket = await demo_db.fetchval(
        """SELECT t.id FROM tickets t JOIN employees e ON e.id = t.assigned_to
            WHERE e.username = 'sub1' AND t.status <> 'closed' ORDER BY t.id DESC LIMIT 1""")
    await reassign(demo_db, ticket, "sub1")
    link = await alert_link(smtp_sink, "sub1@msp.example")
    assert urlsplit(link).path == f"/tickets/{ticket}"

    page = await phone_page(browser, PHONE)
    await page.goto(link)
    await expect(page).to_have_url(f"{portal}/login?next=/tickets/{ticket}")
    await assert_fits(page, width)
    await shot(page, "p1-phone-login-from-mail")
    await log_in(page, "sub1")
    await expect(page).to_have_url(link)
    await assert_fits(page, width)

    await assert_nav_folded(page, width)
    await assert_actions_reachable(page, width)

    await page.get_by_label("Add a note").fill("Battery fitted; holds a charge for nine hours.")
    await page.get_by_role("button", name="Add note").click()
    assert await notice(page) == "Your note was added."
    await assert_fits(page, width)
    await shot(page, "p4-phone-note-added")
    author = await demo_db.fetchval(
        """SELECT e.username FROM history_notes n JOIN employees e ON e.id = n.author_employee_id
            WHERE n.ticket_id = $1 AND n.body LIKE 'Battery fitted%'""", ticket)
    assert author == "sub1"
    await page.context.close()


def page_shape(path: str) -> str:
    """One visit per kind of page: /tickets/12 and /tickets/13 are the same page."""
    return re.sub(r"[0-9]+", "N", path)


async def crawl(page, portal: str, username: str, width: int,
                within: str = "/") -> dict[str, tuple[int, list[str]]]:
    """Every page under `within` reachable from it by the links the portal shows to
    `username`: shape → its width and what reaches past `width`."""
    seen: dict[str, tuple[int, list[str]]] = {}
    queue = [within]
    while queue:
        path = queue.pop(0)
        if page_shape(path) in seen:
            continue
        response = await page.goto(portal + path)
        assert response is not None and response.ok, (path, response and response.status)
        wide = await page_width(page)
        await shot(page, f"q-{width}-{username}-{page_shape(path).strip('/').replace('/', '-') or 'home'}")
        seen[page_shape(path)] = (wide, await page.evaluate(OVERFLOWING, width) if wide > width else [])
        for href in await page.eval_on_selector_all("a[href^='/']", "as => as.map(a => a.getAttribute('href'))"):
            target = urlsplit(href)
            if (target.path.startswith(within) and not NOT_PAGES.search(target.path)
                    and page_shape(target.path) not in seen):
                queue.append(target.path + (f"?{target.query}" if target.query else ""))
    return seen


@pytest.mark.parametrize("username, at_least", [
    ("full@acme", {"/", "/tickets/N", "/tickets/new", "/assets", "/contracts/N", "/documents",
                   "/kb/N", "/quotes", "/me/password"}),
    ("sub1", {"/", "/tickets/N", "/kb", "/me/alerts"}),
    ("admin", {"/", "/tickets/N", "/admin", "/admin/groups/N", "/admin/accounts/N",
               "/admin/employees/N", "/admin/employee-groups/N", "/admin/audit", "/admin/explain",
               "/admin/outbox", "/me/alerts"}),
])
async def test_no_page_is_wider_than_a_small_phone(portal: str, browser, username: str,
                                                    at_least: set[str]) -> None:
    width = SMALL_PHONE["width"]
    page = await phone_page(browser, SMALL_PHONE)
    await page.goto(f"{portal}/login")
    await assert_fits(page, width)
    await log_in(page, username)
    await page.wait_for_url(f"{portal}/")
    widths = await crawl(page, portal, username, width)
    assert at_least <= set(widths), sorted(set(widths))
    too_wide = {shape: w for shape, w in widths.items() if w[0] > width}
    assert not too_wide, f"{username}: pages wider than {width} px: {too_wide}"
    await page.context.close()


async def test_the_caught_mail_pages_fit_a_small_phone(demo_portal, browser, demo_db) -> None:
    """The demo's caught-mail pages (an admin page of `make run`) at 360 px as well."""
    portal, catcher = demo_portal
    width = SMALL_PHONE["width"]
    ticket = await demo_db.fetchval("SELECT t.id FROM tickets t JOIN employees e ON e.id = t.assigned_to "
                                    "WHERE e.username = 'sub1' AND t.status <> 'closed' LIMIT 1")
    await reassign(demo_db, ticket, "sub1")

    async def caught() -> bool:
        return any(catcher.directory.glob("*.eml"))

    assert await wait_until(caught), "the alert was not caught"
    page = await phone_page(browser, SMALL_PHONE)
    await page.goto(f"{portal}/admin/caught-mail")
    await log_in(page, "admin")
    await page.wait_for_url(f"{portal}/admin/caught-mail")
    widths = await crawl(page, portal, "admin", width, within="/admin/caught-mail")
    assert {"/admin/caught-mail", "/admin/caught-mail/N-N-N"} <= set(widths), sorted(widths)
    too_wide = {shape: w for shape, w in widths.items() if w[0] > width}
    assert not too_wide, f"caught mail: pages wider than {width} px: {too_wide}"
    await page.context.close()
