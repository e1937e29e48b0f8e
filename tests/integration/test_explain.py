"""`portald admin explain USER TICKET_ID`: the verdicts, the deciding rule, the parts of a
ticket with own-data row counts, as a function and through the real command line."""

from __future__ import annotations

import json
import re

import pytest

from daemon.access.explain import explain
from daemon.cli import main
from daemon.services.common import AdminError
from tests.support.config import write_test_config
from tests.support.seed import seeded_database


@pytest.fixture(scope="module")
async def seeded(pg_server: str, template_dsn: str, seed_password_hash: str):
    async with seeded_database(pg_server, template_dsn, seed_password_hash, "explain") as (dsn, conn, seed):
        seed["dsn"] = dsn
        yield conn, seed


def parts(result: dict) -> dict[str, dict]:
    return {p["part"]: p for p in result["parts"]}


async def test_subcontractor_on_own_ticket_sees_only_own_rows(seeded) -> None:
    conn, seed = seeded
    r = await explain(conn, "sub1", seed["t_acme_sub1"])
    assert r["visible"] is True and r["rule"] == "own_ticket"
    assert "assigned to sub1" in r["reason"] and "Subcontractors" in r["reason"]
    p = parts(r)
    assert (p["history_notes"]["rows_visible"], p["history_notes"]["rows_total"]) == (1, 3)
    assert (p["charges"]["rows_visible"], p["charges"]["rows_total"]) == (1, 2)
    assert (p["emails"]["rows_visible"], p["emails"]["rows_total"]) == (1, 3)
    assert (p["attachments"]["rows_visible"], p["attachments"]["rows_total"]) == (1, 2)
    assert "see_others = own" in p["charges"]["reason"] and p["charges"]["can_add"] is True
    assert p["priority"]["shown"] and p["priority"]["can_add"] is False  # no edit_tickets
    assert p["close"]["shown"] is True
    # by number as well as by id
    assert (await explain(conn, "sub1", "t-" + r["ticket"]["number"][2:]))["ticket"]["id"] == seed["t_acme_sub1"]


@pytest.mark.parametrize("user, ticket, rule", [
    ("sub1", "t_acme_tech", "not_assigned"),  # right account, someone else's ticket
    ("sub1", "t_globex_sub1", "account_not_listed"),  # assigned to them, account not in their list
    ("sub2", "t_acme_sub1", "account_not_listed"),  # another subcontractor's ticket
    ("full@globex", "t_acme_sub1", "customer_other_account"),
])
async def test_invisible_tickets_name_their_rule(seeded, user: str, ticket: str, rule: str) -> None:
    conn, seed = seeded
    r = await explain(conn, user, seed[ticket])
    assert r["visible"] is False and r["rule"] == rule and r["parts"] == []
    assert r["answer"].startswith("404")


async def test_customers_parts_follow_their_group(seeded) -> None:
    conn, seed = seeded
    full = parts(await explain(conn, "full@acme", seed["t_acme_sub1"]))
    assert full["priority"]["shown"] and full["priority"]["level"] == "edit"
    assert (full["emails"]["shown"], full["emails"]["rows_visible"], full["emails"]["rows_total"]) == (True, 1, 3)
    assert (full["attachments"]["rows_visible"], full["attachments"]["rows_total"]) == (1, 2)
    assert (full["documents"]["rows_visible"], full["documents"]["rows_total"]) == (1, 2)
    assert full["kb"]["rows_visible"] == 1 and full["quotes"]["can_add"] is True

    r = await explain(conn, "limited@acme", seed["t_acme_sub1"])
    assert r["visible"] and r["rule"] == "customer_account"
    limited = parts(r)
    for hidden in ("priority", "asset", "charges", "history_notes", "emails", "documents", "quotes"):
        assert limited[hidden]["shown"] is False, hidden
    assert limited["charges"]["reason"] == "charges = off" and limited["charges"]["rows_visible"] == 0
    assert limited["kb"]["shown"] and limited["kb"]["level"] == "view"


async def test_employees_account_data_parts_follow_their_rights(seeded) -> None:
    conn, seed = seeded
    sub = parts(await explain(conn, "sub1", seed["t_acme_sub1"]))
    for hidden in ("asset", "assets", "asset_config_note", "contracts", "quotes", "documents"):
        assert sub[hidden]["shown"] is False, hidden
    assert sub["documents"]["reason"] == "documents = none (nothing)"
    assert (sub["documents"]["rows_visible"], sub["documents"]["rows_total"]) == (0, 2)
    assert sub["kb"]["shown"] and sub["kb"]["reason"] == "kb = public (public ones only)"
    assert (sub["kb"]["rows_visible"], sub["kb"]["rows_total"]) == (1, 2)
    tech = parts(await explain(conn, "tech", seed["t_acme_sub1"]))
    for shown in ("asset", "assets", "asset_config_note", "contracts", "quotes", "documents", "kb"):
        assert tech[shown]["shown"] is True, shown
    assert (tech["documents"]["rows_visible"], tech["documents"]["rows_total"]) == (2, 2)
    assert tech["kb"]["reason"] == "kb = all (public and internal)"
    assert (tech["quotes"]["rows_visible"], tech["quotes"]["rows_total"]) == (1, 1)


async def test_inactive_user_sees_nothing(seeded) -> None:
    conn, seed = seeded
    await conn.execute("UPDATE employees SET active = false WHERE username = 'sub2'")
    try:
        r = await explain(conn, "sub2", seed["t_globex_sub2"])
        assert r["visible"] is False and r["rule"] == "inactive"
    finally:
        await conn.execute("UPDATE employees SET active = true WHERE username = 'sub2'")


async def test_without_web_access_the_scope_still_holds_for_mail(seeded) -> None:
    conn, seed = seeded
    await conn.execute("UPDATE employees SET web_access = false WHERE username = 'sub2'")
    try:
        r = await explain(conn, "sub2", seed["t_globex_sub2"])
        assert r["visible"] is True and r["rule"] == "own_ticket"
        assert r["user"]["web_access"] is False
    finally:
        await conn.execute("UPDATE employees SET web_access = true WHERE username = 'sub2'")


async def test_unknown_user_or_ticket(seeded) -> None:
    conn, seed = seeded
    with pytest.raises(AdminError, match="no customer web user or employee"):
        await explain(conn, "nobody", seed["t_acme_sub1"])
    with pytest.raises(AdminError, match="no ticket"):
        await explain(conn, "sub1", 999999)


def test_cli_text_and_json(seeded, tmp_path, capsys) -> None:
    _, seed = seeded
    cfg = write_test_config(tmp_path, seed["dsn"], 2525)
    args = ["admin", "explain", "--config", str(cfg.path)]

    assert main([*args, "sub1", str(seed["t_acme_sub1"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith('sub1 (employee, group "Subcontractors")')
    assert "visible: yes [own_ticket]" in out
    assert re.search(r"charges +yes +1/2 +yes", out) and re.search(r"history_notes +yes +1/3", out)

    assert main([*args, "sub1", str(seed["t_acme_tech"])]) == 0
    out = capsys.readouterr().out
    assert "visible: no [not_assigned]" in out and "assigned to tech" in out

    assert main([*args, "--json", "sub2", str(seed["t_acme_sub1"])]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["visible"] is False and data["rule"] == "account_not_listed"

    assert main([*args, "nobody", "1"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "portald: no customer web user or employee named 'nobody'"
