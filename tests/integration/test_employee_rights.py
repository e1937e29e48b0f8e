"""Employee rights over account data (SPEC §3): the system groups' levels, each right on where
granted and off where not on every route, page tab and mail that shows account data, the
documents and kb levels as row boundaries, and all of it live at the next request."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from daemon.access.scope import EMPLOYEE_PRIVILEGES
from tests.support.accounts import nav_of
from tests.support.api import Api, demo_ids
from tests.support.mail import running_worker, wait_until

ACCOUNT_RIGHTS = ("assets", "asset_config_note", "contracts", "quotes", "documents", "kb")
SPEC_LEVELS = {
    "Administrators": dict(assets="on", asset_config_note="on", contracts="on", quotes="on",
                           documents="all", kb="all"),
    "Standard": dict(assets="on", asset_config_note="on", contracts="on", quotes="on",
                     documents="all", kb="all"),
    "Subcontractors": dict(assets="off", asset_config_note="off", contracts="off", quotes="off",
                           documents="none", kb="public"),
}
TAB_OF = {"assets": "/assets", "contracts": "/contracts", "quotes": "/quotes",
          "documents": "/documents", "kb": "/kb"}


async def test_system_groups_have_the_levels_of_the_spec(demo_db: asyncpg.Connection) -> None:
    for name, levels in SPEC_LEVELS.items():
        row = await demo_db.fetchrow("SELECT * FROM employee_groups WHERE name = $1", name)
        got = {r: ("on" if row[r] else "off") if isinstance(row[r], bool) else row[r]
               for r in ACCOUNT_RIGHTS}
        assert got == levels, name
    # and the database refuses to change them, whoever asks
    with pytest.raises(asyncpg.RaiseError, match="system group"):
        await demo_db.execute("UPDATE employee_groups SET documents = 'all' WHERE name = 'Subcontractors'")
    # a new group starts with the least
    row = await demo_db.fetchrow("INSERT INTO employee_groups (name) VALUES ('New') RETURNING *")
    assert [row[r] for r in ACCOUNT_RIGHTS] == [False, False, False, False, "none", "public"]


async def _employee_in_new_group(db: asyncpg.Connection, username: str, **rights: Any) -> int:
    """A custom group `username`-group with `rights` (the rest at their defaults: off) and an
    employee of it with the demo password, for all accounts."""
    group_id = await db.fetchval(
        f"""INSERT INTO employee_groups (name, ticket_scope, see_others{''.join(', ' + r for r in rights)})
            VALUES ($1, 'all', 'all'{''.join(f', ${i}' for i in range(2, len(rights) + 2))})
            RETURNING id""", f"{username} group", *rights.values())
    await db.execute(
        """INSERT INTO employees (username, full_name, email, group_id, all_accounts, password_hash)
           SELECT $1, $2, $3, $4, true, password_hash FROM employees WHERE username = 'tech'""",
        username, username.title(), f"{username}@msp.example", group_id)
    return group_id


async def _set(db: asyncpg.Connection, group_id: int, **rights: Any) -> None:
    sets = ", ".join(f"{r} = ${i}" for i, r in enumerate(rights, start=2))
    await db.execute(f"UPDATE employee_groups SET {sets} WHERE id = $1", group_id, *rights.values())


def _routes(ids: dict[str, Any]) -> dict[str, list[str]]:
    """Every route (API and page) each on/off right opens."""
    return {
        "assets": ["/api/v1/assets", "/assets"],
        "contracts": ["/api/v1/contracts", f"/api/v1/contracts/{ids['contract']}", "/contracts",
                      f"/contracts/{ids['contract']}"],
        "quotes": ["/api/v1/quotes", "/quotes"],
        "documents": ["/api/v1/documents", f"/api/v1/documents/{ids['document']}", "/documents",
                      f"/documents/{ids['document']}"],
    }


async def _tabs(api: Api) -> set[str]:
    html = (await api.get("/")).body.decode()
    return {tab for tab, path in TAB_OF.items() if f'href="{path}"' in nav_of(html)}


async def test_each_on_off_right_opens_its_routes_and_tabs_live(users, demo_db) -> None:
    ids = await demo_ids(demo_db)
    group_id = await _employee_in_new_group(demo_db, "rights")
    api = await users.login("rights")
    routes = _routes(ids)
    assert await _tabs(api) == {"kb"}  # every employee reads public KB articles
    for right, paths in routes.items():
        for path in paths:
            reply = await api.get(path)
            assert reply.status == 403, (right, path, reply)
    for right, paths in routes.items():
        on = {"documents": "public"}.get(right, True)
        await _set(demo_db, group_id, **{right: on})  # the next request sees it (SPEC §5)
        for path in paths:
            assert (await api.get(path)).status == 200, (right, path)
        assert await _tabs(api) == {"kb", right}
        for other, other_paths in routes.items():
            if other != right:
                assert (await api.get(other_paths[0])).status == 403, (right, other)
        await _set(demo_db, group_id, **{right: {"documents": "none"}.get(right, False)})
        assert (await api.get(paths[0])).status == 403, right
    # employees never accept quotes, whatever their rights
    await _set(demo_db, group_id, quotes=True)
    assert (await api.post(f"/api/v1/quotes/{ids['Q-1001']}/accept")).status == 403


async def test_the_configuration_note_needs_its_right_and_the_assets_tab(users, demo_db) -> None:
    group_id = await _employee_in_new_group(demo_db, "notes", assets=True)
    api = await users.login("notes")
    items = (await api.get("/api/v1/assets")).body["items"]
    assert items and not any("config_note" in a for a in items)
    page = (await api.get("/assets")).body.decode()
    assert "RAID 1" not in page and "Configuration note" not in page
    await _set(demo_db, group_id, asset_config_note=True)
    items = (await api.get("/api/v1/assets")).body["items"]
    assert any("RAID 1" in a["config_note"] for a in items)
    assert "RAID 1" in (await api.get("/assets")).body.decode()
    # the note alone opens nothing: it needs the assets tab itself
    await _set(demo_db, group_id, assets=False)
    assert (await api.get("/api/v1/assets")).status == 403


async def _document_ids(db: asyncpg.Connection) -> tuple[int, int]:
    row = await db.fetchrow(
        """SELECT max(d.id) FILTER (WHERE d.is_public) AS public, max(d.id) FILTER (WHERE NOT d.is_public) AS internal
             FROM documents d JOIN accounts a ON a.id = d.account_id WHERE a.name = 'Acme'""")
    return row["public"], row["internal"]


async def test_documents_none_public_all(users, demo_db, walls) -> None:
    public, internal = await _document_ids(demo_db)
    group_id = await _employee_in_new_group(demo_db, "docs", documents="public")
    api = await users.login("docs")
    missing = await api.get(f"/api/v1/documents/{10**12}")
    listed = {d["id"] for d in (await api.get("/api/v1/documents", limit=200)).body["items"]}
    assert public in listed and internal not in listed
    # an internal document is out of scope: exactly like a missing one, on both paths
    for path in (f"/api/v1/documents/{internal}",):
        reply = await api.get(path)
        assert (reply.status, reply.body) == (404, missing.body)
    assert (await api.get(f"/documents/{internal}")).status == 404
    assert (await api.get(f"/api/v1/documents/{public}")).status == 200
    assert "Firewall change log (internal)" not in (await api.get("/documents")).body.decode()

    await _set(demo_db, group_id, documents="all")
    listed = {d["id"] for d in (await api.get("/api/v1/documents", limit=200)).body["items"]}
    assert {public, internal} <= listed
    assert (await api.get(f"/api/v1/documents/{internal}")).status == 200
    assert "Firewall change log (internal)" in (await api.get("/documents")).body.decode()

    await _set(demo_db, group_id, documents="none")
    for path in ("/api/v1/documents", f"/api/v1/documents/{public}", "/documents"):
        assert (await api.get(path)).status == 403, path


async def test_kb_public_all(users, demo_db, walls) -> None:
    internal = await demo_db.fetchrow(
        """SELECT k.id, f.id AS file_id FROM kb_articles k JOIN kb_files f ON f.article_id = k.id
            WHERE NOT k.is_public LIMIT 1""")
    group_id = await _employee_in_new_group(demo_db, "reader")
    api = await users.login("reader")
    missing = await api.get(f"/api/v1/kb/{10**12}")
    listed = (await api.get("/api/v1/kb", limit=200)).body["items"]
    assert listed and all(a["is_public"] for a in listed)
    for path in (f"/api/v1/kb/{internal['id']}",
                 f"/api/v1/kb/{internal['id']}/files/{internal['file_id']}"):
        reply = await api.get(path)
        assert (reply.status, reply.body) == (404, missing.body), path
    for path in (f"/kb/{internal['id']}", f"/kb/{internal['id']}/files/{internal['file_id']}"):
        assert (await api.get(path)).status == 404, path
    await _set(demo_db, group_id, kb="all")
    assert any(not a["is_public"] for a in (await api.get("/api/v1/kb", limit=200)).body["items"])
    for path in (f"/api/v1/kb/{internal['id']}",
                 f"/api/v1/kb/{internal['id']}/files/{internal['file_id']}",
                 f"/kb/{internal['id']}"):
        assert (await api.get(path)).status == 200, path


async def test_a_subcontractor_reaches_no_record_of_the_customer(users, demo_db, walls) -> None:
    """What issue 12 found open: sub1 read the internal document, the internal KB articles and
    their files, the assets with their notes, the contracts and the quotes."""
    ids = await demo_ids(demo_db)
    sub1 = await users.login("sub1")
    firewall_log = await demo_db.fetchval(
        "SELECT id FROM documents WHERE title = 'Firewall change log (internal)'")
    for path in (f"/api/v1/documents/{firewall_log}", "/api/v1/documents", "/api/v1/assets",
                 "/api/v1/contracts", f"/api/v1/contracts/{ids['contract']}", "/api/v1/quotes",
                 f"/documents/{firewall_log}", "/assets", "/contracts", "/quotes", "/documents"):
        assert (await sub1.get(path)).status == 403, path
    internal = await demo_db.fetch(
        """SELECT k.id, f.id AS file_id FROM kb_articles k LEFT JOIN kb_files f ON f.article_id = k.id
            WHERE NOT k.is_public""")
    titles = {a["title"] for a in (await sub1.get("/api/v1/kb", limit=200)).body["items"]}
    assert "Onboarding a new subcontractor" not in titles and "Firewall change procedure" not in titles
    for r in internal:
        assert (await sub1.get(f"/api/v1/kb/{r['id']}")).status == 404
        if r["file_id"]:
            assert (await sub1.get(f"/api/v1/kb/{r['id']}/files/{r['file_id']}")).status == 404


async def test_the_asset_of_a_ticket_follows_the_assets_right(users, demo_db) -> None:
    ids = await demo_ids(demo_db)
    main = ids["t_acme_main"]  # sub1's, linked to ACME-FS01
    firewall = await demo_db.fetchval("SELECT id FROM assets WHERE name = 'ACME-FW'")
    tech, sub1 = await users.login("tech"), await users.login("sub1")
    shown = (await tech.get(f"/api/v1/tickets/{main}")).body
    assert shown["asset_name"] == "ACME-FS01"
    assert "ACME-FS01" in (await tech.get(f"/tickets/{main}")).body.decode()
    hidden = (await sub1.get(f"/api/v1/tickets/{main}")).body
    assert "asset_id" not in hidden and "asset_name" not in hidden
    listed = next(t for t in (await sub1.get("/api/v1/tickets", limit=200)).body["items"]
                  if t["id"] == main)
    assert "asset_id" not in listed
    assert "ACME-FS01" not in (await sub1.get(f"/tickets/{main}")).body.decode()
    # a field one may not see cannot be set either, whatever its value
    group_id = await demo_db.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, edit_tickets)
           VALUES ('Editing subs', 'own', 'own', true) RETURNING id""")
    await demo_db.execute("UPDATE employees SET group_id = $1 WHERE username = 'sub1'", group_id)
    refused = await sub1.patch(f"/api/v1/tickets/{main}", {"asset_id": firewall})
    assert refused.status == 403 and refused.body["error"]["field"] == "asset_id"
    await _set(demo_db, group_id, assets=True)
    assert (await sub1.patch(f"/api/v1/tickets/{main}", {"asset_id": firewall})).status == 200
    assert (await sub1.get(f"/api/v1/tickets/{main}")).body["asset_name"] == "ACME-FW"


async def test_mail_names_the_asset_only_to_whom_the_portal_shows_it(demo_db, demo_config,
                                                                      demo_dsn, smtp_sink) -> None:
    ids = await demo_ids(demo_db)
    main = ids["t_acme_main"]  # recipients sub1 and tech; asset ACME-FS01
    await demo_db.execute("DELETE FROM outbox")
    await demo_db.execute("UPDATE mail_events SET fanned_out = true")

    async def status_mails(status: str, count: int) -> dict[str, str]:
        # a status change: news of the ticket itself, which both recipients may see
        await demo_db.execute("UPDATE tickets SET status = $2 WHERE id = $1", main, status)
        async with running_worker(demo_config, demo_dsn):
            got = await smtp_sink.wait_for_async(count)
            assert await wait_until(lambda: _sent(demo_db, count))
        return {m.rcpt_tos[0].split("@")[0]: m.message.get_body(("plain",)).get_content()
                + m.message.get_body(("html",)).get_content() for m in got[-2:]}

    mails = await status_mails("waiting", 2)
    assert "asset ACME-FS01" in mails["tech"]
    assert "ACME-FS01" not in mails["sub1"] and "waiting" in mails["sub1"]
    # granted through a custom group: the next mail names it
    group_id = await demo_db.fetchval(
        """INSERT INTO employee_groups (name, ticket_scope, see_others, assets)
           VALUES ('Asset subs', 'own', 'own', true) RETURNING id""")
    await demo_db.execute("UPDATE employees SET group_id = $1 WHERE username = 'sub1'", group_id)
    mails = await status_mails("in_progress", 4)
    assert "asset ACME-FS01" in mails["sub1"]


async def _sent(db: asyncpg.Connection, count: int) -> bool:
    return await db.fetchval("SELECT count(*) FROM outbox WHERE status = 'sent'") >= count


def test_every_account_right_is_a_privilege_of_the_one_vocabulary() -> None:
    assert set(ACCOUNT_RIGHTS) <= set(EMPLOYEE_PRIVILEGES)
    assert EMPLOYEE_PRIVILEGES["documents"] == ("none", "public", "all")
    assert EMPLOYEE_PRIVILEGES["kb"] == ("public", "all")
