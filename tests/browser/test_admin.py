"""The admin pages in a real browser: Debian's headless chromium driven by Playwright against
the demo portal served on a real TCP port.

An administrator creates a group, unticks `charges` in the grid, makes the group the default
and creates a web user (who gets it); that user, logged in in a second browser, sees the charges
section come back when the admin ticks it again — without logging in again. Deactivating sub2
frees a seat. Every admin page is photographed to test-output/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from daemon.db.embedded import free_port
from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support import REPO

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("PORTALD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
SCREENSHOTS = REPO / "test-output" / "screenshots"
TIMEOUT_MS = 15_000


@pytest.fixture
async def portal(demo_config, demo_dsn: str) -> AsyncIterator[str]:
    """The demo portal on 127.0.0.1:<free port>, as `portald run` serves it (without mail)."""
    from daemon.app import build_app
    from web.routes import setup_web

    runner = web.AppRunner(build_app(demo_config, demo_dsn, setup_web=setup_web, background=False))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}: install Debian's package (apt-get install chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path):
    async_api = pytest.importorskip("playwright.async_api", reason="Playwright is not installed")
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(chromium_path), headless=True,
                                            args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _context(browser, base: str):
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return context


async def _log_in(page, username: str, password: str, target: str) -> None:
    await page.goto(target)
    assert "/login" in page.url  # the admin link of a logged-out browser leads to the login
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(re.escape(target) + "$"))


async def _shot(page, name: str) -> None:
    await page.screenshot(path=str(SCREENSHOTS / f"admin_{name}.png"), full_page=True)


async def _notice(page) -> str:
    return (await page.locator(".notice").inner_text()).strip()


async def test_admin_in_the_browser(browser, portal: str, demo_dsn: str) -> None:
    conn = await asyncpg.connect(demo_dsn)
    try:
        acme_ticket = await conn.fetchval(
            "SELECT min(t.id) FROM tickets t JOIN accounts a ON a.id = t.account_id WHERE a.name = 'Acme'")
        sub1_id = await conn.fetchval("SELECT id FROM employees WHERE username = 'sub1'")
        seats = await conn.fetchval("SELECT seats FROM licenses")
        in_use = await conn.fetchval("SELECT seats_in_use()")
        # mail in each state (this portal runs without the delivery worker)
        failed_mail = None
        for n, (event, status, attempts, code, error) in enumerate((
                ("assigned", "sent", 1, 250, None), ("note", "queued", 2, 451, "4.7.1 greylisted, try later"),
                ("charge", "failed", 1, 550, "5.1.1 <sub1@msp.example>: mailbox unavailable"))):
            failed_mail = await conn.fetchval(
                """INSERT INTO outbox (event, ticket_id, employee_id, message_id, status, attempts,
                                       last_code, last_error, sent_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $5 = 'sent' THEN now() END)
                   RETURNING id""",
                event, acme_ticket, sub1_id, f"<browser-{n}@portal.test>", status, attempts, code, error)
    finally:
        await conn.close()

    admin_ctx = await _context(browser, portal)
    admin = await admin_ctx.new_page()
    await _log_in(admin, "admin", DEMO_PASSWORD, "/admin")
    await _shot(admin, "overview")

    # a custom group, a copy of Full
    await admin.get_by_role("navigation", name="Administration").get_by_role("link", name="Customer groups").click()
    await admin.get_by_label("Name").fill("No charges")
    await admin.get_by_label("Start from").select_option("Full")
    await admin.get_by_role("button", name="Create group").click()
    await admin.wait_for_url(re.compile(r"/admin/groups/\d+$"))
    group_id = int(admin.url.rsplit("/", 1)[1])
    assert 'created, a copy of "Full"' in await _notice(admin)

    # untick charges in the grid: the checkbox lives in the table, its form in the column's foot
    await admin.goto("/admin/groups")
    box = admin.locator(f"#g{group_id}-charges")
    assert await box.is_checked()
    await box.uncheck()
    await admin.locator(f"#levels-{group_id} button").click()
    await admin.wait_for_url(re.compile(rf"/admin/groups#group-{group_id}$"))
    notice = await _notice(admin)
    assert 'Saved "No charges": charges off.' in notice and "live for logged-in users" in notice
    assert not await admin.locator(f"#g{group_id}-charges").is_checked()
    await _shot(admin, "groups")

    # make it the default: the grid then says so beside its name
    await admin.goto(f"/admin/groups/{group_id}")
    await admin.get_by_role("button", name='Set "No charges" as default').click()
    assert "is now the default group" in await _notice(admin)
    await _shot(admin, "group")
    await admin.goto("/admin/groups")
    header = admin.locator(f"#group-{group_id}")
    assert "Default" in await header.inner_text()
    assert "Default" not in await admin.locator("thead th", has_text="Full").first.inner_text()

    # a web user at Acme: the new default group is preselected
    await admin.get_by_role("navigation", name="Administration").get_by_role("link", name="Web users").click()
    await _shot(admin, "accounts")
    await admin.get_by_role("link", name="Acme", exact=True).click()
    assert await admin.get_by_label("Privilege group", exact=True).input_value() == "No charges"
    await admin.get_by_label("User name").fill("browser@acme")
    await admin.get_by_label("Full name").fill("Brenda Browser")
    await _shot(admin, "webusers")
    await admin.get_by_role("button", name="Create web user").click()
    password = (await admin.locator("#generated-password").inner_text()).strip()
    assert len(password) >= 16
    await _shot(admin, "password_once")
    await admin.get_by_role("link", name="Done").click()
    row = admin.locator("tr", has_text="browser@acme")
    assert await row.get_by_label("Privilege group of browser@acme").input_value() == "No charges"

    # the new user, in a browser of their own, logged in once
    customer_ctx = await _context(browser, portal)
    customer = await customer_ctx.new_page()
    await _log_in(customer, "browser@acme", password, f"/tickets/{acme_ticket}")

    async def customer_sees_charges() -> bool:
        await customer.goto(f"/tickets/{acme_ticket}")
        section = await customer.locator("#h-charges").count() == 1
        api = await customer.request.get(f"/api/v1/tickets/{acme_ticket}/charges")
        me = await customer.request.get("/api/v1/me")
        privileges = json.loads(await me.text())["privileges"]
        assert section == (api.status == 200) == (privileges["charges"] == "on"), (section, api.status)
        return section

    assert not await customer_sees_charges()
    await customer.screenshot(path=str(SCREENSHOTS / "customer_ticket_without_charges.png"), full_page=True)

    # the admin ticks charges again in the grid; the customer's next page shows them
    await admin.goto("/admin/groups")
    await admin.locator(f"#g{group_id}-charges").check()
    await admin.locator(f"#levels-{group_id} button").click()
    assert "charges on" in await _notice(admin)
    assert await customer_sees_charges()
    await customer.screenshot(path=str(SCREENSHOTS / "customer_ticket_with_charges.png"), full_page=True)
    # and a change of the user's group, the other way round
    await admin.goto("/admin/accounts")
    await admin.get_by_role("link", name="Acme", exact=True).click()
    row = admin.locator("tr", has_text="browser@acme")
    await row.get_by_label("Privilege group of browser@acme").select_option("Limited")
    await row.get_by_role("button", name="Change group of browser@acme").click()
    assert '"browser@acme" is now in group "Limited"' in await _notice(admin)
    assert not await customer_sees_charges()
    await customer_ctx.close()

    # employees: deactivating sub2 frees a seat at once
    await admin.get_by_role("navigation", name="Administration").get_by_role("link", name="Employees").click()
    summary = admin.locator("#seat-summary")
    assert (await summary.inner_text()).strip() == f"{in_use} of {seats} seats in use"
    await admin.get_by_role("button", name="Deactivate sub2").click()
    await admin.wait_for_url(re.compile(r"/admin/employees$"))
    assert (await summary.inner_text()).strip() == f"{in_use - 1} of {seats} seats in use"
    assert '"sub2" is deactivated' in await _notice(admin)
    await _shot(admin, "employees")

    # one subcontractor's page: the account filter narrows the list (JavaScript enhancement)
    await admin.goto(f"/admin/employees/{sub1_id}")
    await admin.get_by_label("Filter accounts").fill("glo")
    assert await admin.get_by_label("Globex").is_visible()
    assert not await admin.get_by_label("Initech").is_visible()
    assert await admin.get_by_label("Acme").is_visible()  # ticked: a filter never hides a choice made
    await admin.get_by_label("Filter accounts").fill("")
    await _shot(admin, "employee")

    # mail: the failed one shows the server's answer and goes back in the queue
    await admin.get_by_role("navigation", name="Administration").get_by_role("link", name="Mail").click()
    assert "550 5.1.1" in await admin.locator("tr", has_text=f"#{failed_mail}").inner_text()
    await _shot(admin, "outbox")
    await admin.get_by_role("button", name=f"Retry mail {failed_mail}").click()
    assert f"Mail {failed_mail} is queued again" in await _notice(admin)
    assert "retrying" in await admin.locator("tr", has_text=f"#{failed_mail}").inner_text()

    # the remaining pages, photographed
    for name, path in (("employee_groups", "/admin/employee-groups"), ("audit", "/admin/audit"),
                       ("explain", f"/admin/explain?user=sub1&ticket={acme_ticket}"),
                       ("ticket_mail", f"/admin/tickets/{acme_ticket}/mail")):
        response = await admin.goto(path)
        assert response is not None and response.status == 200, path
        await _shot(admin, name)
    # keyboard: the first control of the grid page is reachable and labelled
    await admin.goto("/admin/groups")
    await admin.get_by_label("Name").focus()
    assert await admin.evaluate("document.activeElement.id") == "create-name"
    await admin_ctx.close()


async def _tabs(page) -> list[str]:
    nav = page.get_by_role("navigation", name="Main")
    return [t.strip() for t in await nav.get_by_role("link").all_inner_texts()]


async def test_employee_rights_and_own_tickets_in_the_browser(browser, portal: str, demo_dsn: str) -> None:
    """An administrator gives a copy of Subcontractors the contracts and the public documents
    in the grid and moves sub1 into it: sub1's next page has those tabs, the documents list
    holds only public ones, and they go again with documents=none. own@acme lists only the
    tickets they raised."""
    conn = await asyncpg.connect(demo_dsn)
    try:
        sub1_id = await conn.fetchval("SELECT id FROM employees WHERE username = 'sub1'")
        raised = {r["number"] for r in await conn.fetch(
            """SELECT t.number FROM tickets t JOIN customer_web_users w ON w.id = t.created_by_webuser
                WHERE w.username = 'own@acme' AND t.status <> 'closed'""")}
        others = {r["number"] for r in await conn.fetch(
            """SELECT t.number FROM tickets t JOIN accounts a ON a.id = t.account_id
                WHERE a.name = 'Acme' AND t.status <> 'closed' AND t.created_by_webuser IS DISTINCT FROM
                      (SELECT id FROM customer_web_users WHERE username = 'own@acme')""")}
    finally:
        await conn.close()
    sub_ctx = await _context(browser, portal)
    sub = await sub_ctx.new_page()
    await _log_in(sub, "sub1", DEMO_PASSWORD, "/tickets")
    assert await _tabs(sub) == ["Tickets", "Knowledge base"]

    admin_ctx = await _context(browser, portal)
    admin = await admin_ctx.new_page()
    await _log_in(admin, "admin", DEMO_PASSWORD, "/admin/employee-groups")
    await admin.get_by_label("Name").fill("Field subs")
    await admin.get_by_label("Start from").select_option("Subcontractors")
    await admin.get_by_role("button", name="Create group").click()
    await admin.wait_for_url(re.compile(r"/admin/employee-groups/\d+$"))
    group_id = int(admin.url.rsplit("/", 1)[1])
    await admin.goto("/admin/employee-groups")
    assert await admin.locator(f"#g{group_id}-documents").input_value() == "none"
    await admin.locator(f"#g{group_id}-contracts").check()
    await admin.locator(f"#g{group_id}-documents").select_option("public")
    await admin.locator(f"#levels-{group_id} button").click()
    assert 'Saved "Field subs": contracts on, documents public.' in await _notice(admin)
    await _shot(admin, "employee_groups_rights")
    await admin.goto(f"/admin/employees/{sub1_id}")
    await admin.get_by_label("Group", exact=True).select_option("Field subs")
    await admin.get_by_role("button", name="Change group").click()

    await sub.goto("/tickets")
    assert await _tabs(sub) == ["Tickets", "Contracts", "Documents", "Knowledge base"]
    await sub.get_by_role("navigation", name="Main").get_by_role("link", name="Documents").click()
    listing = await sub.locator("main").inner_text()
    assert "Network overview" in listing and "Firewall change log (internal)" not in listing
    await sub.screenshot(path=str(SCREENSHOTS / "subcontractor_documents.png"), full_page=True)

    await admin.goto("/admin/employee-groups")
    await admin.locator(f"#g{group_id}-documents").select_option("none")
    await admin.locator(f"#levels-{group_id} button").click()
    assert "documents none" in await _notice(admin)
    await sub.goto("/tickets")
    assert await _tabs(sub) == ["Tickets", "Contracts", "Knowledge base"]
    response = await sub.goto("/documents")
    assert response is not None and response.status == 403
    await admin_ctx.close()
    await sub_ctx.close()

    own_ctx = await _context(browser, portal)
    own = await own_ctx.new_page()
    await _log_in(own, "own@acme", DEMO_PASSWORD, "/tickets")
    listing = await own.locator("main").inner_text()
    assert raised and all(number in listing for number in raised)
    assert others and not any(number in listing for number in others)
    await own.screenshot(path=str(SCREENSHOTS / "own_tickets_list.png"), full_page=True)
    await own_ctx.close()
