"""`portald demo`: the SPEC §9 data set, loaded into real databases (the session's demo
template, cloned per test) and loaded again to prove that a second run changes nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daemon.cli import main
from daemon.dev.demo import load_demo
from daemon.passwords import verify_password
from tests.support.config import write_test_config
from tests.support.db import fingerprint_now, rows_now, val_now


def test_logins_groups_and_accounts(demo_dsn: str) -> None:
    customers = {r["username"]: (r["account"], r["grp"], r["active"]) for r in rows_now(demo_dsn, """
        SELECT u.username, a.name AS account, g.name AS grp, u.active
          FROM customer_web_users u JOIN accounts a ON a.id = u.account_id
          JOIN customer_groups g ON g.id = u.group_id""")}
    assert customers == {"full@acme": ("Acme", "Full", True), "partial@acme": ("Acme", "Partial", True),
                         "limited@acme": ("Acme", "Limited", True), "own@acme": ("Acme", "Own tickets", True),
                         "full@globex": ("Globex", "Full", True)}
    employees = {r["username"]: (r["grp"], r["all_accounts"], list(r["accounts"])) for r in rows_now(demo_dsn, """
        SELECT e.username, g.name AS grp, e.all_accounts,
               array(SELECT a.name FROM employee_accounts ea JOIN accounts a ON a.id = ea.account_id
                      WHERE ea.employee_id = e.id ORDER BY a.name) AS accounts
          FROM employees e JOIN employee_groups g ON g.id = e.group_id
         WHERE e.active AND e.web_access""")}
    assert employees == {"admin": ("Administrators", True, []), "tech": ("Standard", True, []),
                         "sub1": ("Subcontractors", False, ["Acme"]),
                         "sub2": ("Subcontractors", False, ["Globex", "Initech"])}
    hashes = rows_now(demo_dsn, """SELECT password_hash FROM customer_web_users
                            UNION ALL SELECT password_hash FROM employees""")
    assert len(hashes) == 9
    assert all(r[0].startswith("$argon2id$") for r in hashes)
    assert verify_password(hashes[0][0], "demo") and verify_password(hashes[-1][0], "demo")
    assert val_now(demo_dsn, "SELECT seats >= 10 FROM licenses")
    accounts = rows_now(demo_dsn, "SELECT name, contact_name, phone, email, address FROM accounts ORDER BY name")
    assert [a["name"] for a in accounts] == ["Acme", "Globex", "Initech"]
    assert all(a["contact_name"] and a["phone"] and a["email"] and a["address"] for a in accounts)
    assert val_now(demo_dsn, """SELECT count(*) FROM employee_mail_settings m
                             JOIN employees e ON e.id = m.employee_id""") == 4
    assert val_now(demo_dsn, """SELECT alert_created FROM employee_mail_settings m
                             JOIN employees e ON e.id = m.employee_id WHERE e.username = 'admin'""")


def test_own_tickets_group_and_the_tickets_own_at_acme_raised(demo_dsn: str) -> None:
    groups = {r["name"]: dict(r) for r in rows_now(demo_dsn, "SELECT * FROM customer_groups")}
    own, partial = groups["Own tickets"], groups["Partial"]
    assert not own["is_system"] and own["tickets_view"] == "own"
    assert all(g["tickets_view"] == "account" for n, g in groups.items() if n != "Own tickets")
    # Partial in every other privilege
    differing = {k for k in partial if partial[k] != own[k]} - {"id", "name", "is_system", "created_at"}
    assert differing == {"tickets_view"}
    raised = rows_now(demo_dsn, """
        SELECT t.status, e.username AS assignee,
               (SELECT count(*) FROM attachments f WHERE f.ticket_id = t.id AND NOT f.is_public) AS internal
          FROM tickets t JOIN customer_web_users w ON w.id = t.created_by_webuser
          LEFT JOIN employees e ON e.id = t.assigned_to
         WHERE w.username = 'own@acme' ORDER BY t.id""")
    assert [(r["status"], r["assignee"]) for r in raised] == [("open", "sub1"), ("closed", "tech")]
    assert raised[0]["internal"] >= 1
    others = val_now(demo_dsn, """SELECT count(*) FROM tickets t JOIN accounts a ON a.id = t.account_id
                                    WHERE a.name = 'Acme' AND t.created_by_webuser IS DISTINCT FROM
                                          (SELECT id FROM customer_web_users WHERE username = 'own@acme')""")
    assert others >= 4  # Acme's other tickets, which own@acme must not see


def test_every_account_has_tickets_with_every_kind_of_child(demo_dsn: str) -> None:
    per_account = rows_now(demo_dsn, """
        SELECT a.name,
               count(*) FILTER (WHERE t.status <> 'closed') AS open,
               count(*) FILTER (WHERE t.status = 'closed') AS closed,
               count(*) FILTER (WHERE e.username IN ('sub1', 'sub2')) AS for_subs,
               count(*) FILTER (WHERE e.username = 'tech') AS for_tech,
               count(DISTINCT t.priority) AS priorities,
               count(t.asset_id) AS with_asset
          FROM accounts a JOIN tickets t ON t.account_id = a.id
          LEFT JOIN employees e ON e.id = t.assigned_to
         GROUP BY a.name ORDER BY a.name""")
    assert [r["name"] for r in per_account] == ["Acme", "Globex", "Initech"]
    for r in per_account:
        assert r["open"] >= 2 and r["closed"] >= 1 and r["for_subs"] >= 1 and r["for_tech"] >= 1
        assert r["priorities"] >= 2 and r["with_asset"] >= 1
    # subcontractors are assigned only tickets of accounts they may access
    assert val_now(demo_dsn, """
        SELECT count(*) FROM tickets t JOIN employees e ON e.id = t.assigned_to
          JOIN accounts a ON a.id = t.account_id
         WHERE (e.username = 'sub1' AND a.name <> 'Acme')
            OR (e.username = 'sub2' AND a.name NOT IN ('Globex', 'Initech'))""") == 0

    children = rows_now(demo_dsn, """
        SELECT a.name,
          (SELECT count(*) FROM history_notes n JOIN tickets t ON t.id = n.ticket_id
            WHERE t.account_id = a.id AND n.author_employee_id IS NOT NULL) AS notes_by_employees,
          (SELECT count(DISTINCT c.kind) FROM charges c JOIN tickets t ON t.id = c.ticket_id
            WHERE t.account_id = a.id) AS charge_kinds,
          (SELECT count(DISTINCT m.is_public) FROM ticket_emails m JOIN tickets t ON t.id = m.ticket_id
            WHERE t.account_id = a.id) AS email_flags,
          (SELECT count(DISTINCT f.is_public) FROM attachments f JOIN tickets t ON t.id = f.ticket_id
            WHERE t.account_id = a.id) AS attachment_flags,
          (SELECT count(*) FROM ticket_recipients r JOIN tickets t ON t.id = r.ticket_id
            WHERE t.account_id = a.id) AS recipients,
          (SELECT count(*) FROM assets s WHERE s.account_id = a.id AND s.config_note <> '') AS assets,
          (SELECT count(DISTINCT d.is_public) FROM documents d WHERE d.account_id = a.id) AS doc_flags,
          (SELECT count(*) FROM contracts k WHERE k.account_id = a.id) AS contracts,
          (SELECT count(*) FROM quotes o WHERE o.account_id = a.id) AS quotes
        FROM accounts a ORDER BY a.name""")
    for r in children:
        assert r["notes_by_employees"] >= 2 and r["charge_kinds"] == 3, r
        assert r["email_flags"] == 2 and r["attachment_flags"] == 2 and r["doc_flags"] == 2, r
        assert r["recipients"] >= 2 and r["assets"] >= 2 and r["contracts"] >= 2 and r["quotes"] >= 2, r
    # customers wrote history notes and uploaded files too
    assert val_now(demo_dsn, "SELECT count(*) FROM history_notes WHERE author_webuser_id IS NOT NULL") >= 2
    assert val_now(demo_dsn, "SELECT count(*) FROM attachments WHERE uploaded_by_webuser IS NOT NULL") >= 1


def test_own_data_is_visible_on_subcontractor_tickets(demo_dsn: str) -> None:
    """On each subcontractor's main ticket, notes, charges and attachments come from both the
    subcontractor and tech, so the subcontractor's own-data view differs from the full one."""
    for sub in ("sub1", "sub2"):
        row = rows_now(demo_dsn, """
            SELECT
              (SELECT count(DISTINCT n.author_employee_id) FROM history_notes n WHERE n.ticket_id = t.id),
              (SELECT count(DISTINCT c.employee_id) FROM charges c WHERE c.ticket_id = t.id),
              (SELECT count(DISTINCT f.uploaded_by_employee) FROM attachments f WHERE f.ticket_id = t.id),
              (SELECT count(DISTINCT c.kind) FROM charges c JOIN employees e ON e.id = c.employee_id
                WHERE c.ticket_id = t.id AND e.username = $1)
              FROM tickets t JOIN employees e ON e.id = t.assigned_to
             WHERE e.username = $1 ORDER BY (SELECT count(*) FROM charges c WHERE c.ticket_id = t.id) DESC
             LIMIT 1""", sub)[0]
        assert tuple(row) == (2, 2, 2, 3), (sub, tuple(row))
    labor = rows_now(demo_dsn, """SELECT c.unit_price, e.hourly_rate FROM charges c
                             JOIN employees e ON e.id = c.employee_id WHERE c.kind = 'labor'""")
    assert all(r["unit_price"] == r["hourly_rate"] for r in labor)


def test_account_data_quotes_contracts_and_kb(demo_dsn: str) -> None:
    quotes = {r["state"] for r in rows_now(demo_dsn, """
        SELECT CASE WHEN status = 'open' AND valid_until < current_date THEN 'expired'
                    ELSE status END AS state FROM quotes""")}
    assert quotes == {"open", "accepted", "declined", "expired"}
    assert val_now(demo_dsn, """SELECT bool_and(accepted_by_webuser IS NOT NULL AND accepted_at IS NOT NULL)
                             FROM quotes WHERE status = 'accepted'""")
    statuses = {r[0] for r in rows_now(demo_dsn, "SELECT status FROM contracts")}
    assert {"active", "expired"} <= statuses
    assert val_now(demo_dsn, "SELECT count(*) FROM charges WHERE contract_id IS NOT NULL AND ticket_id IS NULL") >= 3
    kb = {r["is_public"]: r["files"] for r in rows_now(demo_dsn, """
        SELECT k.is_public, count(f.id) AS files FROM kb_articles k
          LEFT JOIN kb_files f ON f.article_id = k.id GROUP BY k.is_public""")}
    assert kb[True] >= 1 and kb[False] >= 1
    pngs = rows_now(demo_dsn, """SELECT b.data, d.size FROM documents d JOIN blobs b ON b.id = d.blob_id
                           WHERE d.content_type = 'image/png'""")
    assert pngs and all(r["data"].startswith(b"\x89PNG\r\n\x1a\n") and len(r["data"]) == r["size"]
                        for r in pngs)


def test_second_load_changes_nothing(demo_dsn: str) -> None:
    before = fingerprint_now(demo_dsn)

    async def again() -> dict[str, Any]:
        conn = await asyncpg.connect(demo_dsn)
        try:
            return await load_demo(conn)
        finally:
            await conn.close()

    assert asyncio.run(again())["loaded"] is False
    assert fingerprint_now(demo_dsn) == before


@pytest.fixture
def cfg_path(dsn: str, tmp_path: Path) -> Path:
    cfg = write_test_config(tmp_path, dsn, smtp_port=8025)
    assert cfg.path is not None
    return cfg.path


def test_command_loads_once_and_prints_the_logins(cfg_path: Path, dsn: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--config", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert "demo data loaded" in out and "portal: http://portal.test" in out
    for login in ("full@acme", "partial@acme", "limited@acme", "own@acme", "full@globex", "admin",
                  "tech", "sub1", "sub2"):
        assert login in out
    assert "Subcontractors" in out and "demo" in out
    assert val_now(dsn, "SELECT count(*) FROM audit_log WHERE action = 'demo.load'") == 1
    before = fingerprint_now(dsn)

    assert main(["demo", "--config", str(cfg_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["loaded"] is False and result["portal_url"] == "http://portal.test"
    assert len(result["logins"]) == 9
    assert fingerprint_now(dsn) == before


def test_refuses_a_database_holding_some_demo_names(cfg_path: Path, dsn: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "employee", "create", "--username", "tech", "--name", "Someone",
                 "--email", "someone@example.com", "--config", str(cfg_path)]) == 0
    capsys.readouterr()
    before = fingerprint_now(dsn)
    assert main(["demo", "--config", str(cfg_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("portald: ") and err.count("\n") == 1 and "login tech" in err
    assert fingerprint_now(dsn) == before


async def test_demo_client_serves_the_demo_database(demo_client) -> None:
    resp = await demo_client.get("/readyz")
    assert resp.status == 200
