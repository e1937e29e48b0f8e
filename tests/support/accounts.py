"""Shared by the account-data tests (test_account_data.py, test_account_pages.py): the levels
each tested user should have, written out from SPEC §2 rather than read from the database, a
custom group made through the admin operations, and what full@acme must not reach."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.access.kinds import CUSTOMER_GROUPS
from daemon.access.scope import CUSTOMER_PRIVILEGES
from daemon.dev.demo_data import DEMO_PASSWORD
from daemon.passwords import hash_password
from daemon.services.groups import create_group, set_group_levels
from daemon.services.webusers import create_webuser
from tests.support.db import rows, val

# The identifiers these pages and routes are governed by.
GATED = ("assets", "asset_config_note", "contracts", "charges", "documents", "kb", "quotes",
         "change_password")

LEVELS: dict[str, dict[str, str]] = {
    # SPEC §2: "Full: everything at its highest level"
    "full@acme": {i: levels[-1] for i, levels in CUSTOMER_PRIVILEGES.items()},
    # "Partial: … assets tab, contracts, …, documents, …, KB view+download, quotes view,
    # change password" — no charges, no configuration note
    "partial@acme": {"assets": "on", "asset_config_note": "off", "contracts": "on",
                     "charges": "off", "documents": "on", "kb": "download", "quotes": "view",
                     "change_password": "on"},
    # "Limited: tickets add, KB view, change password"
    "limited@acme": {"assets": "off", "asset_config_note": "off", "contracts": "off",
                     "charges": "off", "documents": "off", "kb": "view", "quotes": "none",
                     "change_password": "on"},
    # a custom group covering what no system group has: charges and quote acceptance without
    # documents, no knowledge base at all, no password change
    "custom@acme": {"assets": "on", "asset_config_note": "on", "contracts": "on",
                    "charges": "on", "documents": "off", "kb": "none", "quotes": "accept",
                    "change_password": "off"},
}
USERS = tuple(LEVELS)
CUSTOM_GROUP = "Custom account data"


def allowed(username: str, identifier: str, level: str = "on") -> bool:
    levels = CUSTOMER_PRIVILEGES[identifier]
    have = LEVELS[username][identifier]
    return levels.index(have) >= levels.index(level)


async def add_custom_user(dsn: str) -> None:
    """The custom group (all else off) and custom@acme in it, through daemon.services."""
    conn = await asyncpg.connect(dsn)
    try:
        await create_group(conn, CUSTOMER_GROUPS, actor="test", name=CUSTOM_GROUP)
        await set_group_levels(conn, CUSTOMER_GROUPS, actor="test", name=CUSTOM_GROUP,
                               levels=LEVELS["custom@acme"])
        await create_webuser(conn, actor="test", account="Acme", username="custom@acme",
                             group=CUSTOM_GROUP, full_name="Cora Custom")
        # the demo password is shorter than the admin layer accepts; set it as the demo does
        await conn.execute("UPDATE customer_web_users SET password_hash = $1 WHERE username = $2",
                           hash_password(DEMO_PASSWORD), "custom@acme")
    finally:
        await conn.close()


def nav_of(html: str) -> str:
    """The main navigation of a portal page."""
    start = html.index('<nav class="tabs"')
    return html[start:html.index("</nav>", start)]


def user_menu_of(html: str) -> str:
    start = html.index('class="user-menu"')
    return html[start:html.index("</details>", start)]


async def out_of_scope_for_acme(dsn: str) -> dict[str, Any]:
    """What full@acme must not reach: Globex (its id) and its contracts, assets and quotes;
    every Globex document and Acme's non-public ones; the internal KB articles with their files
    (one row per file, `file_id` None for an article without)."""
    globex = await val(dsn, "SELECT id FROM accounts WHERE name = 'Globex'")
    found: dict[str, Any] = {"globex": globex}
    for table in ("contracts", "assets", "quotes"):
        found[table] = [r["id"] for r in await rows(
            dsn, f"SELECT id FROM {table} WHERE account_id = $1", globex)]
    found["documents"] = [r["id"] for r in await rows(dsn, """
        SELECT d.id FROM documents d JOIN accounts a ON a.id = d.account_id
         WHERE a.name = 'Globex' OR (a.name = 'Acme' AND NOT d.is_public)""")]
    found["internal_kb"] = await rows(dsn, """
        SELECT k.id, f.id AS file_id FROM kb_articles k LEFT JOIN kb_files f ON f.article_id = k.id
         WHERE NOT k.is_public""")
    return found
