"""`portald admin …` in-process through daemon.__main__.main, against a real database.

Every refusal must exit 1 with one line on stderr and leave the database exactly as it was
(compared table by table with `database_fingerprint`); every change writes an audit row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from daemon.passwords import verify_password
from tests.support.cli import Cli
from tests.support.config import write_test_config
from tests.support.db import fingerprint_now, rows_now, val_now


@pytest.fixture
def cfg_path(dsn: str, tmp_path: Path) -> Path:
    """A config file for this test's database (sync, so the tests can call main())."""
    cfg = write_test_config(tmp_path, dsn, smtp_port=8025)
    assert cfg.path is not None
    return cfg.path


@pytest.fixture
def cli(cfg_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(cfg_path, capsys, monkeypatch)


def refused(cli: Cli, dsn: str, *argv: str, says: str, stdin: str | None = None) -> None:
    """The command exits 1 with one line naming the reason, and nothing changed."""
    before = fingerprint_now(dsn)
    code, out, err = cli(*argv, stdin=stdin)
    assert code == 1, (out, err)
    assert err.startswith("portald: ") and err.count("\n") == 1, err
    assert says in err, err
    assert "Traceback" not in err
    assert fingerprint_now(dsn) == before


def audit(dsn: str, action: str) -> list[dict[str, Any]]:
    rows = rows_now(dsn, "SELECT actor, target, before, after FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [{"actor": r["actor"], "target": r["target"],
             "before": json.loads(r["before"]) if r["before"] else None,
             "after": json.loads(r["after"]) if r["after"] else None} for r in rows]


# -- accounts -------------------------------------------------------------------------------


def test_account_create_and_list(cli: Cli, dsn: str) -> None:
    made = cli.json("account", "create", "Acme", "--contact", "Alice", "--email", "it@acme.example")
    assert made["name"] == "Acme" and made["contact_name"] == "Alice"
    assert val_now(dsn, "SELECT email FROM accounts WHERE name = 'Acme'") == "it@acme.example"
    [row] = audit(dsn, "account.create")
    assert row["target"] == "account:Acme" and row["after"]["name"] == "Acme"
    assert row["actor"].startswith("cli:") and row["before"] is None

    code, out, _ = cli("account", "create", "Globex")
    assert code == 0 and 'account "Globex" created' in out
    listed = cli.json("account", "list")
    assert [a["name"] for a in listed] == ["Acme", "Globex"]
    code, out, _ = cli("account", "list")
    assert code == 0 and "Acme" in out and "web users" in out

    refused(cli, dsn, "account", "create", "Acme", says='account "Acme" already exists')
    refused(cli, dsn, "account", "create", "  ", says="must not be empty")


# -- customer groups ------------------------------------------------------------------------


def test_group_list_shows_system_groups_with_all_levels(cli: Cli) -> None:
    groups = {g["name"]: g for g in cli.json("group", "list")}
    assert set(groups) == {"Full", "Partial", "Limited"}
    assert groups["Full"]["is_default"] and groups["Full"]["is_system"]
    assert len(groups["Full"]["privileges"]) == 16  # SPEC §2's 15 rows, the first with two
    assert groups["Full"]["privileges"]["quotes"] == "accept"
    assert groups["Limited"]["privileges"] == {
        "tickets_add": "on", "tickets_edit": "off", "priority": "none", "ticket_asset": "none",
        "charges": "off", "assets": "off", "asset_config_note": "off", "history_notes": "off",
        "contracts": "off", "public_emails": "off", "documents": "off", "upload_files": "off",
        "kb": "view", "quotes": "none", "change_password": "on", "tickets_view": "account"}
    assert groups["Partial"]["users"] == 0
    code, out, _ = cli("group", "list")
    assert code == 0 and "system, default" in out and "change_password" in out


def test_group_create_set_rename_default_delete(cli: Cli, dsn: str) -> None:
    made = cli.json("group", "create", "Helpdesk", "--copy-from", "Partial")
    partial = {g["name"]: g for g in cli.json("group", "list")}["Partial"]
    assert made["privileges"] == partial["privileges"] and not made["is_system"]

    changed = cli.json("group", "set", "Helpdesk", "charges=on", "quotes=accept", "kb=view")
    assert changed["changed"] == ["charges", "kb", "quotes"]
    row = rows_now(dsn, "SELECT charges, quotes, kb FROM customer_groups WHERE name = 'Helpdesk'")[0]
    assert (row["charges"], row["quotes"], row["kb"]) == (True, "accept", "view")
    [entry] = audit(dsn, "group.set")
    assert entry["target"] == "customer_group:Helpdesk"
    assert entry["before"]["charges"] == "off" and entry["after"]["charges"] == "on"
    assert entry["before"]["kb"] == "download" and entry["after"]["kb"] == "view"

    code, out, _ = cli("group", "set", "Helpdesk", "charges=on")
    assert code == 0 and "no change" in out
    assert len(audit(dsn, "group.set")) == 1  # nothing changed, nothing audited

    code, out, _ = cli("group", "rename", "Helpdesk", "Support")
    assert code == 0 and '"Support"' in out
    assert val_now(dsn, "SELECT count(*) FROM customer_groups WHERE name = 'Support'") == 1

    assert cli.json("group", "default", "Support")["previous"] == "Full"
    assert [r["name"] for r in rows_now(dsn, "SELECT name FROM customer_groups WHERE is_default")] == ["Support"]
    assert audit(dsn, "group.default")[0]["after"] == {"default": "Support"}
    refused(cli, dsn, "group", "delete", "Support", says="is the default group")

    cli.json("group", "default", "Full")
    code, out, _ = cli("group", "delete", "Support")
    assert code == 0 and "deleted" in out
    assert val_now(dsn, "SELECT count(*) FROM customer_groups WHERE name = 'Support'") == 0
    assert audit(dsn, "group.delete")[0]["before"]["name"] == "Support"
    code, out, _ = cli("group", "create", "Blank")
    assert code == 0
    blank = {g["name"]: g for g in cli.json("group", "list")}["Blank"]
    # everything off, but every customer sees the account's tickets unless a group narrows it
    assert blank["privileges"].pop("tickets_view") == "account"
    assert set(blank["privileges"].values()) <= {"off", "none"}


def test_group_tickets_view(cli: Cli, dsn: str) -> None:
    cli.json("group", "create", "Own only", "--copy-from", "Limited")
    changed = cli.json("group", "set", "Own only", "tickets_view=own")
    assert changed["changed"] == ["tickets_view"] and changed["privileges"]["tickets_view"] == "own"
    assert val_now(dsn, "SELECT tickets_view FROM customer_groups WHERE name = 'Own only'") == "own"
    refused(cli, dsn, "group", "set", "Own only", "tickets_view=mine",
            says='unknown level "mine" for tickets_view (levels: own, account)')
    refused(cli, dsn, "group", "set", "Full", "tickets_view=own", says="system group and cannot be modified")


def test_group_bad_inputs(cli: Cli, dsn: str) -> None:
    cli.json("group", "create", "Custom")
    refused(cli, dsn, "group", "set", "Custom", "nosuch=on", says='unknown identifier "nosuch"')
    refused(cli, dsn, "group", "set", "Custom", "charges=maybe", says='unknown level "maybe" for charges')
    refused(cli, dsn, "group", "set", "Custom", "quotes=on", says="levels: none, view, accept")
    refused(cli, dsn, "group", "set", "Custom", "charges", says="IDENTIFIER=LEVEL")
    refused(cli, dsn, "group", "set", "Custom", "charges=on", "charges=off", says="given twice")
    refused(cli, dsn, "group", "set", "Nope", "charges=on", says='unknown customer group "Nope"')
    refused(cli, dsn, "group", "set", "Full", "charges=off", says="system group and cannot be modified")
    # even a "change" to the value it already has is refused on a system group
    refused(cli, dsn, "group", "set", "Full", "charges=on", says="system group and cannot be modified")
    refused(cli, dsn, "group", "rename", "Partial", "Half", says="system group and cannot be modified")
    refused(cli, dsn, "group", "delete", "Limited", says="system group and cannot be deleted")
    refused(cli, dsn, "group", "delete", "Nope", says='unknown customer group "Nope"')
    refused(cli, dsn, "group", "create", "Custom", says='customer group "Custom" already exists')
    refused(cli, dsn, "group", "create", "Other", "--copy-from", "Nope", says='unknown customer group "Nope"')
    refused(cli, dsn, "group", "rename", "Custom", "Full", says='customer group "Full" already exists')
    refused(cli, dsn, "group", "default", "Nope", says='unknown customer group "Nope"')

    cli.json("account", "create", "Acme")
    for name in ("a@acme", "b@acme", "c@acme"):
        cli.json("webuser", "create", "--account", "Acme", "--username", name, "--group", "Custom")
    refused(cli, dsn, "group", "delete", "Custom", says='"Custom" is assigned to 3 users')


# -- customer web users ---------------------------------------------------------------------


def test_webuser_lifecycle(cli: Cli, dsn: str) -> None:
    cli.json("account", "create", "Acme")
    cli.json("account", "create", "Globex")
    made = cli.json("webuser", "create", "--account", "Acme", "--username", "full@acme",
                    "--name", "Alice Anders", "--email", "alice@acme.example", "--password-stdin",
                    stdin="correct horse battery\n")
    assert made["group"] == "Full"  # the default group
    assert made["account"] == "Acme" and made["has_password"] and made["active"]
    stored = val_now(dsn, "SELECT password_hash FROM customer_web_users WHERE username = 'full@acme'")
    assert stored.startswith("$argon2id$") and verify_password(stored, "correct horse battery")
    entry = audit(dsn, "webuser.create")[0]
    assert entry["target"] == "webuser:full@acme" and "password_hash" not in json.dumps(entry)

    code, out, _ = cli("webuser", "create", "--account", "Globex", "--username", "g@globex",
                       "--group", "Limited")
    assert code == 0 and "g@globex (Globex, group Limited, active)" in out and "no password" in out

    assert cli.json("webuser", "set-group", "full@acme", "Partial")["group"] == "Partial"
    assert audit(dsn, "webuser.set_group")[0]["before"] == {"group": "Full"}
    assert audit(dsn, "webuser.set_group")[0]["after"] == {"group": "Partial"}

    user_id = val_now(dsn, "SELECT id FROM customer_web_users WHERE username = 'full@acme'")
    rows_now(dsn, """INSERT INTO sessions (token_hash, webuser_id, csrf_token, expires_at)
              VALUES ('\\x01', $1, 'x', now() + interval '1 hour')""", user_id)
    code, out, _ = cli("webuser", "deactivate", "FULL@acme")  # names are case-insensitive
    assert code == 0 and "inactive" in out
    assert val_now(dsn, "SELECT active FROM customer_web_users WHERE id = $1", user_id) is False
    assert val_now(dsn, "SELECT count(*) FROM sessions") == 0  # its sessions ended at once
    code, out, _ = cli("webuser", "deactivate", "full@acme")
    assert code == 0 and "unchanged" in out
    assert len(audit(dsn, "webuser.deactivate")) == 1
    assert cli.json("webuser", "activate", "full@acme")["active"] is True

    cli.json("webuser", "set-password", "full@acme", "--password-stdin", stdin="another secret\n")
    stored = val_now(dsn, "SELECT password_hash FROM customer_web_users WHERE id = $1", user_id)
    assert verify_password(stored, "another secret")
    assert audit(dsn, "webuser.set_password")[0]["after"] == {"has_password": True, "sessions_ended": 0}

    assert [u["username"] for u in cli.json("webuser", "list", "--account", "Acme")] == ["full@acme"]
    assert len(cli.json("webuser", "list")) == 2
    code, out, _ = cli("webuser", "list")
    assert code == 0 and "g@globex" in out and "full@acme" in out


def test_webuser_bad_inputs(cli: Cli, dsn: str) -> None:
    cli.json("account", "create", "Acme")
    cli.json("webuser", "create", "--account", "Acme", "--username", "taken@acme")
    cli.json("employee", "create", "--username", "tech", "--name", "Toby", "--email", "t@msp.example")
    refused(cli, dsn, "webuser", "create", "--account", "Nope", "--username", "x@nope",
            says='unknown account "Nope"')
    refused(cli, dsn, "webuser", "create", "--account", "Acme", "--username", "x@acme", "--group", "Nope",
            says='unknown customer group "Nope"')
    refused(cli, dsn, "webuser", "create", "--account", "Acme", "--username", "TAKEN@acme",
            says='username "TAKEN@acme" is already taken')
    refused(cli, dsn, "webuser", "create", "--account", "Acme", "--username", "tech",
            says='username "tech" is already taken')
    refused(cli, dsn, "webuser", "create", "--account", "Acme", "--username", "bad name",
            says='invalid username "bad name"')
    refused(cli, dsn, "webuser", "create", "--account", "Acme", "--username", "x@acme",
            "--password-stdin", stdin="short\n", says="at least 8 characters")
    refused(cli, dsn, "webuser", "create", "--account", "Acme", "--username", "x@acme",
            "--password-stdin", stdin="", says="no password on standard input")
    refused(cli, dsn, "webuser", "set-group", "nobody", "Full", says='unknown customer web user "nobody"')
    refused(cli, dsn, "webuser", "set-group", "taken@acme", "Nope", says='unknown customer group "Nope"')
    refused(cli, dsn, "webuser", "deactivate", "tech", says='unknown customer web user "tech"')
    refused(cli, dsn, "webuser", "set-password", "taken@acme", "--password-stdin", stdin="tiny\n",
            says="at least 8 characters")
    refused(cli, dsn, "webuser", "list", "--account", "Nope", says='unknown account "Nope"')


# -- employees and licenses -----------------------------------------------------------------


def test_employee_lifecycle(cli: Cli, dsn: str) -> None:
    for name in ("Acme", "Globex", "Initech"):
        cli.json("account", "create", name)
    made = cli.json("employee", "create", "--username", "sub1", "--name", "Sam Sub",
                    "--email", "sub1@msp.example", "--group", "Subcontractors", "--rate", "65.5",
                    "--password-stdin", stdin="subcontractor pass\n")
    assert made["group"] == "Subcontractors" and made["hourly_rate"] == "65.50"
    assert made["accounts"] == [] and not made["all_accounts"] and made["has_password"]
    plain = cli.json("employee", "create", "--username", "tech", "--name", "Toby Tech",
                     "--email", "tech@msp.example")
    assert plain["group"] == "Standard" and plain["hourly_rate"] == "0.00"  # the documented default

    access = cli.json("employee", "access", "sub1", "--accounts", "Globex,Acme")
    assert access["accounts"] == ["Acme", "Globex"] and not access["all_accounts"]
    assert audit(dsn, "employee.access")[0]["after"] == {"all_accounts": False,
                                                          "accounts": ["Acme", "Globex"]}
    access = cli.json("employee", "access", "sub1", "--accounts", "Initech")
    assert access["accounts"] == ["Initech"]
    code, out, _ = cli("employee", "access", "tech", "--all")
    assert code == 0 and "all accounts" in out
    assert val_now(dsn, "SELECT all_accounts FROM employees WHERE username = 'tech'") is True
    assert cli.json("employee", "access", "sub1", "--none")["accounts"] == []

    assert cli.json("employee", "set-group", "tech", "Administrators")["group"] == "Administrators"
    assert audit(dsn, "employee.set_group")[0]["before"] == {"group": "Standard"}

    result = cli.json("employee", "deactivate", "sub1")
    assert result["active"] is False and result["seats"]["in_use"] == 1
    assert audit(dsn, "employee.deactivate")[0]["after"] == {"active": False}
    code, out, _ = cli("employee", "activate", "sub1")
    assert code == 0 and "2 of 10 seats in use" in out

    cli.json("employee", "set-rate", "sub1", "70")
    assert str(val_now(dsn, "SELECT hourly_rate FROM employees WHERE username = 'sub1'")) == "70.00"
    cli.json("employee", "set-password", "sub1", "--password-stdin", stdin="new sub password\n")
    assert verify_password(val_now(dsn, "SELECT password_hash FROM employees WHERE username = 'sub1'"),
                           "new sub password")

    listed = cli.json("employee", "list")
    assert [e["username"] for e in listed["employees"]] == ["sub1", "tech"]
    assert listed["seats"]["summary"] == "2 of 10 seats in use"
    code, out, _ = cli("employee", "list")
    assert code == 0 and out.rstrip().endswith("2 of 10 seats in use")


def test_employee_bad_inputs(cli: Cli, dsn: str) -> None:
    cli.json("account", "create", "Acme")
    cli.json("employee", "create", "--username", "tech", "--name", "Toby", "--email", "t@msp.example")
    base = ("employee", "create", "--username", "new", "--name", "New One", "--email", "n@msp.example")
    refused(cli, dsn, *base, "--group", "Nope", says='unknown employee group "Nope"')
    refused(cli, dsn, *base, "--rate", "cheap", says='invalid hourly rate "cheap"')
    refused(cli, dsn, *base, "--rate", "-1", says='invalid hourly rate "-1"')
    refused(cli, dsn, "employee", "create", "--username", "x", "--name", "X", "--email", "nope",
            says='invalid email address "nope"')
    refused(cli, dsn, "employee", "create", "--username", "TECH", "--name", "X", "--email", "x@msp.example",
            says='username "TECH" is already taken')
    refused(cli, dsn, "employee", "access", "tech", "--accounts", "Acme,Nope", says='unknown account "Nope"')
    refused(cli, dsn, "employee", "access", "nobody", "--all", says='unknown employee "nobody"')
    refused(cli, dsn, "employee", "set-group", "tech", "Nope", says='unknown employee group "Nope"')
    refused(cli, dsn, "employee", "activate", "nobody", says='unknown employee "nobody"')


def test_license_seats(cli: Cli, dsn: str) -> None:
    assert cli.json("license", "show") == {"seats": 10, "in_use": 0, "free": 10,
                                           "summary": "0 of 10 seats in use"}
    code, out, _ = cli("license", "set", "2")
    assert code == 0 and out.strip() == "0 of 2 seats in use"
    assert audit(dsn, "license.set")[0]["before"] == {"seats": 10}
    assert audit(dsn, "license.set")[0]["after"] == {"seats": 2}
    for name in ("e1", "e2"):
        cli.json("employee", "create", "--username", name, "--name", name, "--email", f"{name}@msp.example")
    refused(cli, dsn, "employee", "create", "--username", "e3", "--name", "e3", "--email", "e3@msp.example",
            says="no free license seat: 2 of 2 seats in use")
    # without web access an employee takes no seat
    assert cli.json("employee", "create", "--username", "e3", "--name", "e3", "--email",
                    "e3@msp.example", "--no-web-access")["web_access"] is False
    cli.json("employee", "deactivate", "e1")
    cli.json("employee", "create", "--username", "e4", "--name", "e4", "--email", "e4@msp.example")
    refused(cli, dsn, "employee", "activate", "e1", says="no free license seat: 2 of 2 seats in use")
    refused(cli, dsn, "license", "set", "1", says="cannot set 1 seats: 2 seats are in use")
    refused(cli, dsn, "license", "set", "-3", says="invalid number of seats")
    cli.json("employee", "deactivate", "e2")  # frees a seat at once for someone else
    assert cli.json("employee", "activate", "e1")["active"] is True
    assert cli.json("license", "show")["summary"] == "2 of 2 seats in use"


# -- employee groups and mail settings ------------------------------------------------------


def test_employee_groups(cli: Cli, dsn: str) -> None:
    groups = {g["name"]: g for g in cli.json("employee-group", "list")}
    assert set(groups) == {"Administrators", "Standard", "Subcontractors"}
    assert groups["Subcontractors"]["rights"]["ticket_scope"] == "own"
    made = cli.json("employee-group", "create", "Trusted subs", "--copy-from", "Subcontractors")
    assert made["rights"] == groups["Subcontractors"]["rights"]
    changed = cli.json("employee-group", "set", "Trusted subs", "see_others=all", "file_emails=on")
    assert changed["changed"] == ["file_emails", "see_others"]
    assert audit(dsn, "employee_group.set")[0]["after"]["see_others"] == "all"
    cli.json("employee", "create", "--username", "s", "--name", "S", "--email", "s@msp.example",
             "--group", "Trusted subs")
    refused(cli, dsn, "employee-group", "delete", "Trusted subs", says="is assigned to 1 employee;")
    refused(cli, dsn, "employee-group", "set", "Standard", "admin=on", says="system group and cannot be modified")
    refused(cli, dsn, "employee-group", "delete", "Administrators", says="cannot be deleted")
    refused(cli, dsn, "employee-group", "set", "Trusted subs", "ticket_scope=some",
            says='unknown level "some" for ticket_scope')
    refused(cli, dsn, "employee-group", "set", "Trusted subs", "fly=on", says='unknown right "fly"')
    cli.json("employee", "set-group", "s", "Standard")
    cli.json("employee-group", "rename", "Trusted subs", "Senior subs")
    code, out, _ = cli("employee-group", "delete", "Senior subs")
    assert code == 0 and "deleted" in out
    code, out, _ = cli("employee-group", "list")
    assert code == 0 and "ticket_scope" in out and "Senior subs" not in out


def test_employee_group_account_data_rights(cli: Cli, dsn: str) -> None:
    groups = {g["name"]: g["rights"] for g in cli.json("employee-group", "list")}
    assert {k: groups["Subcontractors"][k] for k in ("assets", "documents", "kb")} == {
        "assets": "off", "documents": "none", "kb": "public"}
    assert {k: groups["Standard"][k] for k in ("contracts", "documents", "kb")} == {
        "contracts": "on", "documents": "all", "kb": "all"}
    cli.json("employee-group", "create", "Field techs", "--copy-from", "Subcontractors")
    changed = cli.json("employee-group", "set", "Field techs", "contracts=on", "documents=public",
                       "kb=all", "asset_config_note=on")
    assert changed["changed"] == ["asset_config_note", "contracts", "documents", "kb"]
    row = rows_now(dsn, "SELECT contracts, documents, kb, asset_config_note, assets "
                        "FROM employee_groups WHERE name = 'Field techs'")[0]
    assert dict(row) == {"contracts": True, "documents": "public", "kb": "all",
                         "asset_config_note": True, "assets": False}
    assert audit(dsn, "employee_group.set")[0]["after"]["documents"] == "public"
    refused(cli, dsn, "employee-group", "set", "Field techs", "documents=on",
            says='unknown level "on" for documents (levels: none, public, all)')
    refused(cli, dsn, "employee-group", "set", "Field techs", "kb=none",
            says='unknown level "none" for kb (levels: public, all)')
    refused(cli, dsn, "employee-group", "set", "Subcontractors", "documents=all",
            says="system group and cannot be modified")
    code, out, _ = cli("employee-group", "list")
    assert code == 0 and "asset_config_note" in out and "public" in out


def test_mail_settings(cli: Cli, dsn: str) -> None:
    cli.json("employee", "create", "--username", "sub1", "--name", "Sam", "--email", "s@msp.example",
             "--group", "Subcontractors")
    shown = cli.json("employee", "mail-settings", "sub1")
    assert shown["settings"]["alert_assigned"] == "on" and shown["settings"]["recv_charge"] == "off"
    changed = cli.json("employee", "mail-settings", "sub1", "recv_charge=on", "alert_assigned=off")
    assert changed["changed"] == ["alert_assigned", "recv_charge"]
    row = rows_now(dsn, """SELECT alert_assigned, recv_charge FROM employee_mail_settings
                     WHERE employee_id = (SELECT id FROM employees WHERE username = 'sub1')""")[0]
    assert (row["alert_assigned"], row["recv_charge"]) == (False, True)
    assert audit(dsn, "employee.mail_settings")[0]["before"]["recv_charge"] == "off"
    refused(cli, dsn, "employee", "mail-settings", "sub1", "recv_spam=on", says='unknown mail setting "recv_spam"')
    refused(cli, dsn, "employee", "mail-settings", "nobody", says='unknown employee "nobody"')


# -- outbox ---------------------------------------------------------------------------------


def test_outbox_list_and_retry(cli: Cli, dsn: str) -> None:
    rows_now(dsn, """INSERT INTO outbox (event, message_id, status, attempts, last_code, last_error,
                                  next_attempt_at, payload)
              VALUES ('test', '<a@portal.test>', 'failed', 4, 550, '550 mailbox unavailable',
                      now() - interval '1 day', '{"to": "x@example.com"}'),
                     ('test', '<b@portal.test>', 'queued', 0, NULL, NULL, now(), '{}'),
                     ('test', '<c@portal.test>', 'sent', 1, 250, NULL, now(), '{}')""")
    failed_id = val_now(dsn, "SELECT id FROM outbox WHERE status = 'failed'")
    queued_id = val_now(dsn, "SELECT id FROM outbox WHERE status = 'queued'")

    assert len(cli.json("outbox", "list")) == 3
    [row] = cli.json("outbox", "list", "--status", "failed")
    assert row["id"] == failed_id and row["payload"] == {"to": "x@example.com"}
    assert row["last_error"] == "550 mailbox unavailable" and row["message_id"] == "<a@portal.test>"
    code, out, _ = cli("outbox", "list", "--status", "failed")
    assert code == 0 and "550 mailbox unavailable" in out

    code, out, _ = cli("outbox", "retry", str(failed_id))
    assert code == 0 and "queued again" in out
    row = rows_now(dsn, """SELECT status, attempts, last_error, next_attempt_at > now() - interval '1 minute' AS due
                      FROM outbox WHERE id = $1""", failed_id)[0]
    assert (row["status"], row["attempts"], row["last_error"], row["due"]) == \
        ("queued", 4, "550 mailbox unavailable", True)
    entry = audit(dsn, "outbox.retry")[0]
    assert entry["target"] == f"outbox:{failed_id}"
    assert entry["before"]["status"] == "failed" and entry["after"]["status"] == "queued"

    refused(cli, dsn, "outbox", "retry", str(queued_id), says="is queued, not failed")
    refused(cli, dsn, "outbox", "retry", "999999", says="unknown outbox mail 999999")
    refused(cli, dsn, "outbox", "list", "--status", "lost", says='unknown outbox status "lost"')


# -- the command line itself ----------------------------------------------------------------


def test_usage_errors_exit_2(cli: Cli) -> None:
    for argv in (("group", "set", "Full"), ("employee", "access", "x"), ("license", "set", "many"),
                 ("outbox", "retry", "abc"), ("nothing",)):
        with pytest.raises(SystemExit) as exc:
            cli(*argv)
        assert exc.value.code == 2


def test_missing_config_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["admin", "license", "show", "--config", str(tmp_path / "none.toml")])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("portald: ") and "Traceback" not in err


def test_console_script(cfg_path: Path, dsn: str) -> None:
    script = Path(sys.executable).with_name("portald")
    assert script.exists(), "the portald console script is installed next to the interpreter"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run([str(script), "admin", "account", "create", "Acme", "--json", "--config",
                         str(cfg_path)], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["name"] == "Acme"
    bad = subprocess.run([str(script), "--config", str(cfg_path), "admin", "group", "set", "Full",
                          "charges=off"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr == 'portald: customer privilege group "Full" is a system group and cannot be modified\n'
    # `python -m daemon` runs the module as __main__: the mapping of refusals must hold there too
    module = subprocess.run([sys.executable, "-m", "daemon", "admin", "group", "delete", "Limited",
                             "--config", str(cfg_path)], capture_output=True, text=True, env=env,
                            timeout=60)
    assert module.returncode == 1
    assert module.stderr == 'portald: customer privilege group "Limited" is a system group and cannot be deleted\n'
    assert val_now(dsn, "SELECT charges FROM customer_groups WHERE name = 'Full'") is True
