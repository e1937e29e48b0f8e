"""`portald demo` loads the demo data set (daemon/dev/demo_data.py) with this module.

Times are relative to the moment of loading (e.g. "created 26 hours ago"). Loading runs in one
transaction under an advisory lock; when the demo accounts and logins already exist it changes
nothing, and when only some of them exist it refuses (the database is not empty).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from daemon.dev.demo_data import (
    ACCOUNTS,
    ASSETS,
    CONTRACTS,
    CUSTOMER_GROUPS,
    DEMO_PASSWORD,
    DEMO_SEATS,
    DOCUMENTS,
    EMPLOYEES,
    KB_ARTICLES,
    QUOTES,
    TICKETS,
    WEB_USERS,
    Charge,
    File,
    Ticket,
    logins,
)
from daemon.passwords import hash_password
from daemon.queries import audit as audit_q
from daemon.queries import demo as q
from daemon.services.common import AdminError

DEMO_LOCK_KEY = 0x706F7274616C6444  # "portaldD": the portald_demo advisory lock
DEMO_ACTOR = "cli:demo"


class DemoError(AdminError):
    """The demo cannot be loaded into this database (one-line reason)."""


def _usernames() -> list[str]:
    return [u[0] for u in WEB_USERS] + [e.username for e in EMPLOYEES]


async def _presence(conn: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """Demo names already present, and those missing."""
    names = [a["name"] for a in ACCOUNTS]
    groups = [g[0] for g in CUSTOMER_GROUPS]
    usernames = _usernames()
    found_accounts, found_groups, found_users = await q.present(conn, names, groups, usernames)
    wanted = ([f"account {n}" for n in names] + [f"customer group {g}" for g in groups]
              + [f"login {u}" for u in usernames])
    present = ([f"account {n}" for n in names if n in found_accounts]
               + [f"customer group {g}" for g in groups if g in found_groups]
               + [f"login {u}" for u in usernames if u in found_users])
    return present, [w for w in wanted if w not in present]


class _Loader:
    def __init__(self, conn: asyncpg.Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.accounts: dict[str, int] = {}
        self.webusers: dict[str, int] = {}
        self.employees: dict[str, int] = {}
        self.rates: dict[str, Decimal] = {}
        self.assets: dict[tuple[str, str], int] = {}

    def ago(self, hours: float) -> datetime:
        return self.now - timedelta(hours=hours)

    async def blob(self, f: File) -> int:
        return await q.insert(self.conn, "blob", f.data)

    async def people(self, password_hash: str) -> None:
        c = self.conn
        for a in ACCOUNTS:
            self.accounts[a["name"]] = await q.insert(
                c, "account", a["name"], a["contact_name"], a["phone"], a["email"], a["address"],
                self.ago(24 * 400))
        for name, copied, tickets_view in CUSTOMER_GROUPS:
            await q.insert(c, "customer_group", name, copied, tickets_view)
        for username, account, group, full_name, email in WEB_USERS:
            self.webusers[username] = await q.insert(
                c, "webuser", self.accounts[account], group, username, full_name, email, password_hash)
        # the seat check runs per statement: make room for the demo employees first
        await q.make_room_for(c, len(EMPLOYEES), DEMO_SEATS)
        for e in EMPLOYEES:
            self.employees[e.username] = await q.insert(
                c, "employee", e.username, e.full_name, e.email, e.group, password_hash,
                e.accounts is None, Decimal(e.rate))
            self.rates[e.username] = Decimal(e.rate)
            if e.accounts:
                await q.add_employee_accounts(
                    c, [(self.employees[e.username], self.accounts[a]) for a in e.accounts])
            if e.mail:
                await q.set_mail_settings(c, self.employees[e.username], e.mail)

    async def account_data(self) -> None:
        c = self.conn
        today = self.now.date()
        for account, assets in ASSETS.items():
            for name, kind, serial, note in assets:
                self.assets[(account, name)] = await q.insert(
                    c, "asset", self.accounts[account], name, kind, serial, note)
        for account, contracts in CONTRACTS.items():
            for name, status, terms, starts, ends, charges in contracts:
                contract_id = await q.insert(
                    c, "contract", self.accounts[account], name, status, terms,
                    None if starts is None else today + timedelta(days=starts),
                    None if ends is None else today + timedelta(days=ends))
                for charge in charges:
                    await self.charge(charge, contract_id=contract_id, at=self.ago(24 * 7))
        for account, documents in DOCUMENTS.items():
            for title, f in documents:
                await q.insert(c, "document", self.accounts[account], title, f.filename,
                               f.content_type, len(f.data), await self.blob(f), f.public)
        for account, quotes in QUOTES.items():
            for number, title, amount, status, valid_days, accepted_by in quotes:
                await q.insert(c, "quote", self.accounts[account], number, title,
                               f"{title}, installed and configured.", Decimal(amount), status,
                               today + timedelta(days=valid_days),
                               self.webusers.get(accepted_by) if accepted_by else None,
                               self.ago(24 * 3) if status == "accepted" else None)
        for title, body, public, files in KB_ARTICLES:
            article_id = await q.insert(c, "kb_article", title, body, public)
            for f in files:
                await q.insert(c, "kb_file", article_id, f.filename, f.content_type, len(f.data),
                               await self.blob(f))

    async def charge(self, charge: Charge, *, at: datetime, ticket_id: int | None = None,
                     contract_id: int | None = None) -> None:
        price = Decimal(charge.unit_price) if charge.unit_price else self.rates[charge.by]
        await q.insert(self.conn, "charge", ticket_id, contract_id, charge.kind, charge.description,
                       Decimal(charge.quantity), price, self.employees[charge.by], at)

    def author(self, username: str) -> tuple[int | None, int | None]:
        """(employee id, web user id) of a username of the data set."""
        return self.employees.get(username), self.webusers.get(username)

    async def tickets(self) -> None:
        for t in TICKETS:
            ticket_id = await self.ticket(t)
            await self.ticket_children(t, ticket_id)

    async def ticket(self, t: Ticket) -> int:
        by_employee, by_webuser = self.author(t.created_by)
        closed_at = self.ago(t.closed_hours_ago) if t.closed_hours_ago is not None else None
        last = min([t.hours_ago] + [h for _, h, _ in t.notes]
                   + ([t.closed_hours_ago] if t.closed_hours_ago is not None else []))
        return await q.insert(
            self.conn, "ticket", self.accounts[t.account],
            self.assets[(t.account, t.asset)] if t.asset else None, t.priority, t.status,
            t.description, self.employees[t.assigned] if t.assigned else None, by_employee,
            by_webuser, self.ago(t.hours_ago), self.ago(last), closed_at)

    async def ticket_children(self, t: Ticket, ticket_id: int) -> None:
        c = self.conn
        await q.add_ticket_recipients(c, [(ticket_id, self.employees[r]) for r in t.recipients])
        for author, hours, body in t.notes:
            employee_id, webuser_id = self.author(author)
            await q.insert(c, "note", ticket_id, employee_id, webuser_id, body, self.ago(hours))
        for i, charge in enumerate(t.charges):
            await self.charge(charge, ticket_id=ticket_id, at=self.ago(t.hours_ago - 1 - i))
        for i, e in enumerate(t.emails):
            await q.insert(c, "ticket_email", ticket_id, e.from_addr, e.to_addr, e.subject, e.body,
                           e.public, self.employees[e.filed_by], self.ago(t.hours_ago - 0.5 - i))
        for f in t.files:
            employee_id, webuser_id = self.author(f.by)
            await q.insert(c, "attachment", ticket_id, f.filename, f.content_type, len(f.data),
                           await self.blob(f), f.public, employee_id, webuser_id,
                           self.ago(t.hours_ago - 0.25))


async def load_demo(conn: asyncpg.Connection) -> dict[str, Any]:
    """Load the data set once; a second call changes nothing. Returns a summary."""
    summary: dict[str, Any] = {"accounts": [a["name"] for a in ACCOUNTS], "logins": logins()}
    async with conn.transaction():
        await q.lock(conn, DEMO_LOCK_KEY)
        present, missing = await _presence(conn)
        if not missing:
            return {"loaded": False, **summary}
        if present:
            raise DemoError("the demo needs a database without its names; already present: "
                            + ", ".join(present))
        # Every login shares the one documented password, so one hash serves them all
        # (argon2 costs a fifth of a second per hash; eight would slow every demo load).
        shared = await asyncio.to_thread(hash_password, DEMO_PASSWORD)
        loader = _Loader(conn, await q.now(conn))
        await loader.people(shared)
        await loader.account_data()
        await loader.tickets()
        counts = {"tickets": len(TICKETS), "web_users": len(WEB_USERS), "employees": len(EMPLOYEES),
                  "kb_articles": len(KB_ARTICLES)}
        await audit_q.record(conn, actor=DEMO_ACTOR, action="demo.load", target="demo",
                             after={"accounts": summary["accounts"], **counts})
    return {"loaded": True, **summary, "counts": counts}
