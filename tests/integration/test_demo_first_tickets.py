"""The demo shows its features on the first ticket each login opens: for every demo login, the
top of its default ticket list (as the portal serves it) has every section that login may see
filled — history notes, emails, attachments, charges — on the page and in the API alike."""

from __future__ import annotations

import re

import pytest

from tests.support.api import Api

# section heading id on the ticket page → (API list, the page's text when the list is empty)
SECTIONS = {
    "notes": ("notes", "No notes yet."),
    "emails": ("emails", "No emails."),
    "files": ("attachments", "No files."),
    "charges": ("charges", "No charges."),
}
EVERYTHING = frozenset(SECTIONS)
# what each login's privileges show on a ticket (SPEC §2, §3; daemon/dev/demo_data.py)
SHOWN = {
    "full@acme": EVERYTHING,
    "partial@acme": frozenset({"notes", "emails", "files"}),
    "limited@acme": frozenset(),
    "own@acme": frozenset({"notes", "emails", "files"}),
    "full@globex": EVERYTHING,
    "admin": EVERYTHING,
    "tech": EVERYTHING,
    "sub1": EVERYTHING,
    "sub2": EVERYTHING,
}

FIRST_TICKET = re.compile(r'href="/tickets/([0-9]+)"')


def section(page: str, key: str) -> str | None:
    """The HTML of one card of the ticket page, or None when the page has none."""
    found = re.search(rf'<section[^>]*aria-labelledby="h-{key}"[^>]*>(.*?)</section>', page, re.S)
    return found.group(1) if found else None


async def first_ticket(api: Api) -> int:
    listing = await api.get("/")
    assert listing.status == 200, listing
    found = FIRST_TICKET.search(listing.body.decode())
    assert found, f"{api.username}: the default ticket list is empty"
    return int(found.group(1))


@pytest.mark.parametrize("username", list(SHOWN))
async def test_the_first_ticket_of_the_list_has_every_section_filled(users, username: str) -> None:
    api = await users.login(username)
    ticket = await first_ticket(api)
    reply = await api.get(f"/tickets/{ticket}")
    assert reply.status == 200, reply
    page = reply.body.decode()
    for key, (listed, empty_text) in SECTIONS.items():
        html = section(page, key)
        if key not in SHOWN[username]:
            assert html is None, f"{username} sees the {key} section"
            continue
        assert html is not None, f"{username}: no {key} section on ticket {ticket}"
        assert empty_text not in html, f"{username}: ticket {ticket} has no {key}"
        items = await api.get(f"/api/v1/tickets/{ticket}/{listed}")
        assert items.status == 200 and items.body["items"], (username, key, items)
