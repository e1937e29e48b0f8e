"""The demo data set: a fixed set of rows that shows every feature. Password `demo` for every
login. Loaded by daemon/dev/demo.py.

Accounts (each with contact details):
  Acme, Globex, Initech.
Customer privilege groups: the three system groups, and the custom group `Own tickets`
  (Partial with tickets_view=own: the web user sees only the tickets they raised).
Customer web users:
  full@acme (Full), partial@acme (Partial), limited@acme (Limited), own@acme (Own tickets) at
  Acme; full@globex (Full).
Employees (mail addresses at msp.example):
  admin  Administrators, all accounts, 120.00/h, also alerted of new tickets, daily digest
  tech   Standard, all accounts, 90.00/h, alerted of new tickets, mailed about charges
  sub1   Subcontractors, Acme only, 65.00/h
  sub2   Subcontractors, Globex and Initech, 70.00/h, no status-change mail
  License: at least 10 seats.
Tickets, per account: open, in-progress/waiting and closed tickets with priorities and linked
  assets; some assigned to the account's subcontractor, some to tech, one to admin, one
  unassigned; own@acme raised two of Acme's (an open one of sub1's with a public and an
  internal file, a closed one of tech's), the other Acme tickets were raised by others. The main
  ticket of each account (Acme: file share read-only, sub1; Globex: mail queue stuck, sub2;
  Initech: printer error, sub2) carries everything: recipients; history notes by the
  subcontractor, by tech and (Acme, Globex) by the customer; charges of all three kinds logged
  by the subcontractor *and* by tech, so a subcontractor sees only their own; a public and a
  non-public email; a public attachment and non-public ones by the subcontractor and by tech.
  The first ticket of each login's default list (newest open, assigned to the employee) has
  a note, an email, an attachment and a charge that login may see: Acme's battery ticket
  (own@acme, sub1) for the Acme users and sub1, Globex's monitor quote for full@globex and
  tech, the Initech printer ticket for sub2, and Initech's calendar ticket, assigned to admin.
Assets with configuration notes (2–3 per account); contracts active, expired, pending and
  cancelled, with contract charges; documents public and internal (text and PNG); quotes open,
  accepted (by the account's Full user), declined and expired (valid_until in the past).
Knowledge base: public articles (password reset, VPN, printer basics) and internal ones
  (firewall change procedure, onboarding a subcontractor), several with files.

Times are relative to the moment of loading (e.g. "created 26 hours ago").
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

DEMO_PASSWORD = "demo"
DEMO_SEATS = 10

ACCOUNTS: list[dict[str, str]] = [
    {"name": "Acme", "contact_name": "Alice Anders", "phone": "+1 555 0100",
     "email": "it@acme.example", "address": "1 Canyon Road, Springfield"},
    {"name": "Globex", "contact_name": "Gina Grant", "phone": "+1 555 0200",
     "email": "it@globex.example", "address": "200 Cypress Creek Road, Springfield"},
    {"name": "Initech", "contact_name": "Ivan Ito", "phone": "+1 555 0300",
     "email": "it@initech.example", "address": "4120 Riverside Drive, Austin"},
]

# custom customer privilege groups: name, the system group copied, its tickets_view
CUSTOMER_GROUPS: list[tuple[str, str, str]] = [
    ("Own tickets", "Partial", "own"),
]

# username, account, group, full name, email
WEB_USERS: list[tuple[str, str, str, str, str]] = [
    ("full@acme", "Acme", "Full", "Alice Anders", "alice@acme.example"),
    ("partial@acme", "Acme", "Partial", "Paul Park", "paul@acme.example"),
    ("limited@acme", "Acme", "Limited", "Lena Lee", "lena@acme.example"),
    ("own@acme", "Acme", "Own tickets", "Olga Owens", "olga@acme.example"),
    ("full@globex", "Globex", "Full", "Gina Grant", "gina@globex.example"),
]


@dataclass(frozen=True)
class Employee:
    username: str
    full_name: str
    group: str
    accounts: tuple[str, ...] | None  # None: all accounts
    rate: str
    mail: dict[str, bool] = field(default_factory=dict)

    @property
    def email(self) -> str:
        return f"{self.username}@msp.example"


EMPLOYEES: list[Employee] = [
    Employee("admin", "Ada Admin", "Administrators", None, "120.00",
             {"alert_created": True, "alert_digest": True}),
    Employee("tech", "Toby Tech", "Standard", None, "90.00",
             {"alert_created": True, "recv_charge": True}),
    Employee("sub1", "Sam Sub", "Subcontractors", ("Acme",), "65.00"),
    Employee("sub2", "Sue Sub", "Subcontractors", ("Globex", "Initech"), "70.00",
             {"recv_status": False}),
]

# account → (name, kind, serial, configuration note)
ASSETS: dict[str, list[tuple[str, str, str, str]]] = {
    "Acme": [
        ("ACME-FS01", "Server", "SRV-4471",
         "Windows Server 2022, RAID 1 (2 x 4 TB). Shares: projects, finance. Nightly backup at 02:00 to ACME-NAS."),
        ("ACME-FW", "Firewall", "FW-2290",
         "WAN 203.0.113.10/29. WireGuard VPN on udp/51820. Admin interface reachable from the LAN only."),
        ("Reception PC", "Workstation", "WS-1102", "Windows 11. Label printer on USB. Auto-login disabled."),
    ],
    "Globex": [
        ("GLX-MAIL", "Server", "SRV-8812",
         "Postfix relay; smarthost on port 587; queue alert above 100 messages."),
        ("GLX-SW01", "Switch", "SW-3300", "48 ports. VLAN 10 office, VLAN 20 voice, VLAN 99 management."),
    ],
    "Initech": [
        ("INI-PRN-2", "Printer", "PR-0042", "Network printer; tray 2 holds letter paper; toner TN-450."),
        ("INI-DC01", "Server", "SRV-1999", "Domain controller initech.local; DNS and DHCP."),
    ],
}


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small valid PNG of one colour (demo images without shipping binary files)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


@dataclass(frozen=True)
class File:
    filename: str
    data: bytes
    public: bool = True
    by: str = ""  # username of the uploader (attachments)

    @property
    def content_type(self) -> str:
        return "image/png" if self.filename.endswith(".png") else "text/plain"


def _text(body: str) -> bytes:
    return (body.strip() + "\n").encode()


@dataclass(frozen=True)
class Charge:
    by: str
    kind: str  # labor · expense · part
    description: str
    quantity: str
    unit_price: str | None = None  # labor: None takes the employee's hourly rate


@dataclass(frozen=True)
class Email:
    public: bool
    from_addr: str
    to_addr: str
    subject: str
    body: str
    filed_by: str


@dataclass(frozen=True)
class Ticket:
    account: str
    description: str
    priority: str
    status: str
    created_by: str
    hours_ago: float
    assigned: str | None = None
    asset: str | None = None
    closed_hours_ago: float | None = None
    recipients: tuple[str, ...] = ()
    notes: tuple[tuple[str, float, str], ...] = ()  # author, hours ago, text
    charges: tuple[Charge, ...] = ()
    emails: tuple[Email, ...] = ()
    files: tuple[File, ...] = ()


TICKETS: list[Ticket] = [
    # -- Acme (subcontractor sub1) --
    Ticket("Acme", "The projects share on the file server is read-only since this morning; "
                   "nobody in the design office can save drawings.",
           "high", "open", "full@acme", 26, assigned="sub1", asset="ACME-FS01",
           recipients=("sub1", "tech"),
           notes=(("full@acme", 25, "It happens on every PC in the design office."),
                  ("sub1", 22, "On site. The volume is nearly full, so the share went read-only."),
                  ("tech", 21, "Approved two additional disks for the array; sub1 installs them."),
                  ("sub1", 3, "Disks installed, array rebuilding. The share is writable again.")),
           charges=(Charge("sub1", "labor", "On-site diagnosis", "1.5"),
                    Charge("tech", "labor", "Remote review of the array", "0.5"),
                    Charge("sub1", "expense", "Travel", "1", "24.50"),
                    Charge("sub1", "part", "4 TB NAS disk", "2", "119.00")),
           emails=(Email(True, "alice@acme.example", "support@msp.example", "Projects share is read-only",
                         "Hello, since this morning nobody can save to the projects share. Alice", "tech"),
                   Email(False, "tech@msp.example", "sub1@msp.example", "Internal: disk pricing",
                         "Our cost is 92.00 per disk; bill 119.00.", "tech")),
           files=(File("share-error.png", _png(32, 16, (200, 40, 40)), True, "full@acme"),
                  File("smart-report.txt", _text("Disk 1: OK\nDisk 2: 12 reallocated sectors"), False, "sub1"),
                  File("purchase-order.txt", _text("PO 4471-B: 2 x 4 TB NAS disk"), False, "tech"))),
    Ticket("Acme", "Set up VPN access for the new accountant's laptop.",
           "normal", "in_progress", "tech", 50, assigned="tech", asset="ACME-FW",
           recipients=("tech", "admin"),
           notes=(("tech", 48, "WireGuard peer created; waiting for the laptop."),
                  ("partial@acme", 30, "The laptop arrives on Friday.")),
           charges=(Charge("tech", "labor", "VPN peer and firewall rule", "1"),),
           emails=(Email(True, "tech@msp.example", "paul@acme.example", "VPN access is ready",
                         "The VPN profile is ready; we install it when the laptop arrives.", "tech"),),
           files=(File("vpn-guide.txt", _text("1. Install the client\n2. Import the profile"), True, "tech"),)),
    Ticket("Acme", "The label printer at reception prints blank labels.",
           "low", "closed", "limited@acme", 200, assigned="sub1", asset="Reception PC",
           closed_hours_ago=170,
           notes=(("sub1", 172, "Replaced the ribbon; the test print is fine."),),
           charges=(Charge("sub1", "labor", "Ribbon replacement", "0.75"),
                    Charge("sub1", "part", "Label printer ribbon", "1", "18.90"))),
    Ticket("Acme", "Please add a mailbox for the new intern.",
           "normal", "closed", "full@acme", 400, assigned="tech", closed_hours_ago=380,
           notes=(("tech", 381, "Mailbox created; the password was given by phone."),),
           charges=(Charge("tech", "labor", "Mailbox set-up", "0.5"),)),
    Ticket("Acme", "The phones in the meeting room have no dial tone.",
           "urgent", "open", "partial@acme", 2),
    # raised by own@acme, who sees only these two of Acme's tickets
    Ticket("Acme", "My laptop's battery lasts barely two hours.",
           "normal", "open", "own@acme", 8, assigned="sub1", recipients=("sub1",),
           notes=(("own@acme", 7, "It is the laptop from last year's order."),
                  ("sub1", 5, "Battery health is at 61 percent; a replacement is ordered.")),
           charges=(Charge("sub1", "labor", "Battery diagnosis", "0.5"),),
           emails=(Email(True, "sub1@msp.example", "olga@acme.example", "Your laptop battery",
                         "The replacement battery is ordered; I fit it when it arrives.", "sub1"),),
           files=(File("battery-report.txt", _text("Design capacity 57 Wh, full charge 35 Wh"), True, "own@acme"),
                  File("battery-order.txt", _text("Order 8812: laptop battery, 1 pc"), False, "sub1"))),
    Ticket("Acme", "Please install the new VPN client on my laptop.",
           "low", "closed", "own@acme", 120, assigned="tech", closed_hours_ago=100,
           notes=(("tech", 101, "VPN client installed and tested with Olga."),),
           charges=(Charge("tech", "labor", "VPN client installation", "0.5"),)),
    # -- Globex (subcontractor sub2) --
    Ticket("Globex", "Outgoing mail is stuck in the queue; customers do not receive our invoices.",
           "high", "open", "full@globex", 30, assigned="sub2", asset="GLX-MAIL",
           recipients=("sub2", "tech"),
           notes=(("full@globex", 29, "Invoices sent yesterday afternoon never arrived."),
                  ("sub2", 26, "The relay rejects our login since its password was rotated."),
                  ("tech", 24, "New relay password stored; sub2 updates the server."),
                  ("sub2", 4, "Queue flushed; 312 messages delivered.")),
           charges=(Charge("sub2", "labor", "Mail queue analysis and fix", "2"),
                    Charge("tech", "labor", "Relay account reset", "0.25"),
                    Charge("sub2", "expense", "Parking", "1", "12.00"),
                    Charge("sub2", "part", "SMTP relay service, one year", "1", "150.00")),
           emails=(Email(True, "gina@globex.example", "support@msp.example", "Invoices not delivered",
                         "Our customers say they did not get yesterday's invoices. Gina", "tech"),
                   Email(False, "tech@msp.example", "sub2@msp.example", "Internal: relay account",
                         "The relay account was reset; the new password is in our vault.", "tech")),
           files=(File("bounce.png", _png(24, 24, (40, 90, 200)), True, "full@globex"),
                  File("mailq.txt", _text("312 messages in queue, oldest 26 h"), False, "sub2"),
                  File("relay-config.txt", _text("relayhost = [smtp.relay.example]:587"), False, "tech"))),
    Ticket("Globex", "Configure a VLAN for the new IP phones.",
           "normal", "closed", "tech", 300, assigned="sub2", asset="GLX-SW01", closed_hours_ago=280,
           notes=(("sub2", 282, "VLAN 20 configured; phones register."),),
           charges=(Charge("sub2", "labor", "VLAN configuration", "3"),
                    Charge("sub2", "part", "PoE injector", "2", "35.00"))),
    Ticket("Globex", "Quote request: a second monitor for every desk.",
           "low", "waiting", "full@globex", 80, assigned="tech", recipients=("tech",),
           notes=(("full@globex", 79, "Twelve desks; 24-inch screens are enough."),
                  ("tech", 78, "Quote Q-2003 sent; waiting for approval.")),
           charges=(Charge("tech", "labor", "Desk survey and quote", "0.75"),
                    Charge("tech", "part", "Monitor arm (sample)", "1", "45.00")),
           emails=(Email(True, "tech@msp.example", "gina@globex.example", "Your quote Q-2003",
                         "Please find quote Q-2003 in the portal; it is valid for 45 days.", "tech"),
                   Email(False, "tech@msp.example", "admin@msp.example", "Internal: monitor margin",
                         "Distributor price 151.00 per screen.", "tech")),
           files=(File("desk-plan.png", _png(40, 24, (60, 160, 200)), True, "full@globex"),
                  File("monitor-offers.txt", _text("Three distributor offers compared."), False, "tech"))),
    # -- Initech (subcontractor sub2; no customer web user) --
    Ticket("Initech", "The printer shows PC LOAD LETTER on every job.",
           "urgent", "open", "tech", 20, assigned="sub2", asset="INI-PRN-2",
           recipients=("sub2", "tech", "admin"),
           notes=(("tech", 19, "Customer called: the whole floor cannot print."),
                  ("sub2", 6, "Tray 2 sensor broken; replacement tray ordered.")),
           charges=(Charge("sub2", "labor", "Printer diagnosis", "1"),
                    Charge("tech", "labor", "Phone support", "0.5"),
                    Charge("sub2", "expense", "Travel", "1", "30.00"),
                    Charge("sub2", "part", "Paper tray 2", "1", "89.00")),
           emails=(Email(True, "peter@initech.example", "support@msp.example", "Printer error",
                         "PC LOAD LETTER again. What does that even mean?", "tech"),
                   Email(False, "sub2@msp.example", "tech@msp.example", "Internal: tray price",
                         "The tray costs us 61.00 from the distributor.", "sub2")),
           files=(File("error-panel.png", _png(16, 16, (230, 180, 20)), True, "sub2"),
                  File("service-log.txt", _text("Error 41.3 tray 2 size mismatch"), False, "sub2"),
                  File("tech-notes.txt", _text("Printer under fleet contract; parts billable."), False, "tech"))),
    Ticket("Initech", "Renew the domain controller's certificate before it expires.",
           "high", "closed", "tech", 500, assigned="tech", asset="INI-DC01", closed_hours_ago=490,
           notes=(("tech", 491, "Certificate renewed; valid for two years."),),
           charges=(Charge("tech", "labor", "Certificate renewal", "1.5"),)),
    Ticket("Initech", "Set up a shared calendar for the sales team.",
           "normal", "open", "admin", 5, assigned="admin", recipients=("admin", "tech"),
           notes=(("admin", 4.5, "Calendar created; the sales team gets editor rights."),
                  ("tech", 4, "Added the calendar to the mobile profiles.")),
           charges=(Charge("admin", "labor", "Calendar set-up", "0.5"),
                    Charge("tech", "labor", "Mobile profile update", "0.25"),
                    Charge("admin", "expense", "Calendar add-on, one month", "1", "6.00")),
           emails=(Email(True, "admin@msp.example", "sales@initech.example", "Your shared calendar",
                         "The calendar 'Sales' is ready; it shows in Outlook after a restart.", "admin"),),
           files=(File("calendar-howto.txt", _text("Open Outlook, choose Calendars, then Sales."), True, "admin"),
                  File("calendar-rights.txt", _text("Editors: the sales team. Owner: admin."), False, "admin"))),
]

# account → (name, status, terms, starts in days, ends in days, contract charges)
CONTRACTS: dict[str, list[tuple[str, str, str, int | None, int | None, tuple[Charge, ...]]]] = {
    "Acme": [
        ("Managed services", "active",
         "Monthly flat fee; eight hours of on-site work included; response within four business hours.",
         -180, 185, (Charge("admin", "expense", "Monthly flat fee", "1", "1200.00"),
                     Charge("admin", "part", "Backup licences", "10", "8.50"))),
        ("Backup plan 2023", "expired", "Nightly off-site backup of the file server.", -900, -400,
         (Charge("admin", "expense", "Yearly fee", "1", "300.00"),)),
    ],
    "Globex": [
        ("Mail hosting", "active", "Mail relay and spam filtering for 50 mailboxes.", -60, 305,
         (Charge("admin", "expense", "Quarterly fee", "1", "450.00"),)),
        ("Network refresh project", "pending", "Replace all switches; fixed price.", 30, 120, ()),
    ],
    "Initech": [
        ("Printer fleet care", "active", "Service for all printers; parts billed separately.", -30, 335,
         (Charge("tech", "labor", "Quarterly maintenance visit", "2"),)),
        ("Legacy support block", "cancelled", "Prepaid block of 20 hours.", -700, -335, ()),
    ],
}

# account → (title, file, public)
DOCUMENTS: dict[str, list[tuple[str, File]]] = {
    "Acme": [("Network overview", File("network-overview.png", _png(48, 32, (30, 140, 60)), True)),
             ("Service agreement", File("service-agreement.txt", _text("Service agreement between the MSP and Acme."), True)),
             ("Firewall change log (internal)", File("firewall-changes.txt", _text("2024-03-02 opened udp/51820"), False))],
    "Globex": [("Mail set-up guide", File("mail-setup.txt", _text("Use port 587 with STARTTLS."), True)),
               ("Audit notes (internal)", File("audit-notes.txt", _text("Review relay logins monthly."), False))],
    "Initech": [("Printing how-to", File("printer-howto.txt", _text("Load letter paper in tray 2."), True)),
                ("Site survey (internal)", File("site-survey.png", _png(40, 20, (120, 120, 120)), False))],
}

# account → (number, title, amount, status, valid in days, accepted by)
QUOTES: dict[str, list[tuple[str, str, str, str, int, str | None]]] = {
    "Acme": [("Q-1001", "Two additional NAS disks", "238.00", "open", 30, None),
             ("Q-1002", "Antivirus renewal, 25 seats", "625.00", "accepted", 20, "full@acme"),
             ("Q-1003", "New reception PC", "899.00", "declined", 10, None),
             ("Q-1004", "Wi-Fi upgrade", "1450.00", "open", -5, None)],
    "Globex": [("Q-2001", "SMTP relay service, one year", "150.00", "open", 14, None),
               ("Q-2002", "Core switch replacement", "2300.00", "accepted", 40, "full@globex"),
               ("Q-2003", "Second monitor for 12 desks", "2280.00", "open", 45, None)],
    "Initech": [("Q-3001", "Printer replacement", "780.00", "open", 10, None),
                ("Q-3002", "Server room UPS", "1900.00", "open", -20, None),
                ("Q-3003", "Cloud backup", "540.00", "declined", 15, None)],
}

# title, body, public, files
KB_ARTICLES: list[tuple[str, str, bool, tuple[File, ...]]] = [
    ("Resetting your portal password",
     "Open 'My account', choose 'Change password', enter the current and the new password.", True,
     (File("password-reset.txt", _text("Steps to change your portal password.")),)),
    ("Connecting to the office VPN",
     "Install the WireGuard client, import the profile we sent you and activate the tunnel.", True,
     (File("vpn-setup.txt", _text("1. Install WireGuard\n2. Import profile\n3. Activate")),
      File("vpn-client.png", _png(32, 32, (90, 30, 160))))),
    ("Printer troubleshooting basics",
     "Check paper size and tray, switch the printer off and on, then raise a ticket.", True, ()),
    ("Firewall change procedure",
     "Every rule change needs a ticket, a peer review and an entry in the change log.", False,
     (File("fw-change-checklist.txt", _text("[ ] ticket\n[ ] review\n[ ] change log")),)),
    ("Onboarding a new subcontractor",
     "Create the employee in the Subcontractors group, limit the accounts, set alert settings.",
     False, ()),
]


def logins() -> list[dict[str, Any]]:
    """The demo's logins, for the summary table."""
    rows = [{"username": u, "kind": "customer", "group": g, "accounts": a, "password": DEMO_PASSWORD}
            for u, a, g, _, _ in WEB_USERS]
    rows += [{"username": e.username, "kind": "employee", "group": e.group,
              "accounts": "all" if e.accounts is None else ", ".join(e.accounts),
              "password": DEMO_PASSWORD} for e in EMPLOYEES]
    return rows
