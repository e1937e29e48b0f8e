"""May this user see this ticket, which rule decides, and for each privilege-gated part of it,
whether and why it is shown (`portald admin explain` and the admin page of the same name).

The verdicts are not a second implementation of the access rule: visibility and every row count
come from running the conditions of daemon/access/scope.py against the database, exactly as the
portal does. The sentences beside them only name which part of that rule decided.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from daemon.access import scope
from daemon.access.principals import find_user
from daemon.access.scope import Principal
from daemon.queries import accounts as accounts_q
from daemon.queries import explain as q
from daemon.queries import tickets as tickets_q
from daemon.services.common import AdminError

# (part, child table, the employee right to add rows, the customer privilege gating the part)
_CHILD_PARTS: tuple[tuple[str, str, str, str | None], ...] = (
    ("history_notes", "history_notes", "add_notes", "history_notes"),
    ("charges", "charges", "log_charges", "charges"),
    ("emails", "ticket_emails", "file_emails", "public_emails"),
    ("attachments", "attachments", "upload_attachments", None),
)


MAX_TICKET_ID = 2**63 - 1
_TICKET_NUMBER = re.compile(r"[A-Za-z0-9-]{1,40}")


async def _ticket(conn: asyncpg.Connection, ticket: str | int) -> asyncpg.Record:
    """A ticket by id (ASCII digits of a bigint) or number; anything else is no ticket (a
    "²" or a 20-digit id would otherwise reach int() or the bigint column)."""
    text = str(ticket).strip()
    row = None
    if text.isascii() and text.isdigit():
        row = await q.ticket_by_id(conn, int(text)) if int(text) <= MAX_TICKET_ID else None
    elif _TICKET_NUMBER.fullmatch(text):
        row = await q.ticket_by_number(conn, text)
    if row is None:
        raise AdminError(f"no ticket {text[:60]}")
    return row


def _who(p: Principal) -> dict[str, Any]:
    data: dict[str, Any] = {"username": p.username, "kind": p.kind, "group": p.group_name,
                            "active": p.active, "web_access": p.web_access}
    if p.is_customer:
        data["account_id"] = p.account_id
    else:
        data["all_accounts"] = p.all_accounts
        data["account_ids"] = sorted(p.account_ids)
    return data


def _visibility_rule(p: Principal, t: asyncpg.Record, names: dict[int, str]) -> tuple[str, str]:
    """(rule id, sentence) naming the part of scope.tickets that decides for this ticket."""
    account = f'account "{t["account"]}"'
    if not p.active:
        why = "deactivated" if p.is_customer else "inactive"
        return "inactive", f"the user is {why}: sees nothing"
    if p.is_customer:
        if p.account_id != t["account_id"]:
            own = names.get(p.account_id or 0, f"#{p.account_id}")
            return "customer_other_account", f'the ticket is of {account}, the user is of account "{own}"'
        if not p.sees_only_raised_tickets:
            return "customer_account", (f'group "{p.group_name}" has tickets_view = account: every '
                                        f"ticket of their account; the ticket is of {account}")
        raiser = f"raised by {t['raised_by']}" if t["raised_by"] else "not raised by a web user"
        rule = "raised_by_user" if t["created_by_webuser"] == p.id else "not_raised_by_user"
        return rule, (f'group "{p.group_name}" has tickets_view = own: only the tickets the user '
                      f"raised; this one is {raiser}")
    if not p.all_accounts and t["account_id"] not in p.account_ids:
        listed = ", ".join(sorted(names.get(a, f"#{a}") for a in p.account_ids)) or "none"
        return "account_not_listed", f"{account} is not in the user's account list ({listed})"
    where = "the user may access all accounts" if p.all_accounts else f"{account} is in the user's account list"
    if p.sees_only_own_tickets:
        holder = t["assigned_username"] or "nobody"
        if t["assigned_to"] == p.id:
            return "own_ticket", (f'group "{p.group_name}" sees only tickets assigned to them; '
                                  f"this one is assigned to {holder}; {where}")
        return "not_assigned", (f'group "{p.group_name}" sees only tickets assigned to them; '
                                f"this one is assigned to {holder}")
    return "all_tickets", f'group "{p.group_name}" sees all tickets of the accounts it may access; {where}'


def _part(name: str, shown: bool, reason: str, *, level: str | None = None,
          rows: tuple[int, int] | None = None, can_add: bool | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"part": name, "shown": shown, "reason": reason}
    if level is not None:
        part["level"] = level
    if rows is not None:
        part["rows_visible"], part["rows_total"] = rows if shown else (0, rows[1])
    if can_add is not None:
        part["can_add"] = can_add
    return part


async def _customer_parts(conn: asyncpg.Connection, p: Principal,
                          t: asyncpg.Record) -> list[dict[str, Any]]:
    parts = []
    for name, identifier in (("priority", "priority"), ("asset", "ticket_asset")):
        level = p.level(identifier) if identifier in p.privileges else "none"
        parts.append(_part(name, level != "none", f"{identifier} = {level}" +
                           (" (may change it)" if level == "edit" else ""), level=level))
    parts.append(_part("description", True, "customers always see their tickets; edit: tickets_edit = "
                       + p.level("tickets_edit"), can_add=p.can("tickets_edit")))
    for name, table, _right, identifier in _CHILD_PARTS:
        rows = await q.count_children(conn, p, table, t["id"])
        public = " (public ones only)" if table in ("ticket_emails", "attachments") else ""
        if identifier is None:  # attachments: shown to every customer; uploading is a privilege
            parts.append(_part(name, True, f"customers see attachments{public}; upload: upload_files = "
                               f"{p.level('upload_files')}", rows=rows, can_add=p.can("upload_files")))
            continue
        on = p.can(identifier)
        parts.append(_part(name, on, f"{identifier} = {p.level(identifier)}{public if on else ''}",
                           level=p.level(identifier), rows=rows,
                           can_add=on if name == "history_notes" else None))
    docs = await q.count_account_rows(conn, p, "documents", t["account_id"])
    parts.append(_part("documents", p.can("documents"),
                       f"documents = {p.level('documents')} (the account's public documents)",
                       level=p.level("documents"), rows=docs))
    quotes = await q.count_account_rows(conn, p, "quotes", t["account_id"])
    quotes_level = p.privileges.get("quotes", "none")
    parts.append(_part("quotes", quotes_level != "none", f"quotes = {quotes_level}",
                       level=quotes_level, rows=quotes, can_add=quotes_level == "accept"))
    kb = await q.count_kb(conn, p)
    kb_level = p.privileges.get("kb", "none")
    parts.append(_part("kb", kb_level != "none", f"kb = {kb_level} (public articles only"
                       + ("; may download files)" if kb_level == "download" else ")"),
                       level=kb_level, rows=kb))
    return parts


async def _employee_parts(conn: asyncpg.Connection, p: Principal,
                          t: asyncpg.Record) -> list[dict[str, Any]]:
    edit = p.can("edit_tickets")
    how = f"edit: edit_tickets = {p.level('edit_tickets')}"
    parts = [_part(name, True, f"employees see it on every ticket in scope; {how}", can_add=edit)
             for name in ("priority", "description")]
    parts.append(_part("asset", p.can("assets"), f"assets = {p.level('assets')}; {how}",
                       level=p.level("assets"), can_add=edit and p.can("assets")))
    own_only = p.sees_only_own_children
    for name, table, right, _identifier in _CHILD_PARTS:
        rows = await q.count_children(conn, p, table, t["id"])
        reason = (f'see_others = own: only rows the user added ({rows[0]} of {rows[1]})' if own_only
                  else "see_others = all")
        parts.append(_part(name, True, f"{reason}; add: {right} = {p.level(right)}", rows=rows,
                           can_add=p.can(right)))
    parts += await _employee_account_parts(conn, p, t)
    parts.append(_part("close", p.can("close_tickets"), f"close_tickets = {p.level('close_tickets')}"))
    return parts


# what an employee's documents and kb levels let through
_FLAGGED_LEVELS = {"none": "nothing", "public": "public ones only", "all": "public and internal"}


async def _employee_account_parts(conn: asyncpg.Connection, p: Principal,
                                  t: asyncpg.Record) -> list[dict[str, Any]]:
    """The ticket's account data as the rights of the employee's group show it (SPEC §3)."""
    parts = []
    for name in ("assets", "contracts", "quotes"):
        rows = await q.count_account_rows(conn, p, name, t["account_id"])
        parts.append(_part(name, p.can(name), f"{name} = {p.level(name)}", level=p.level(name),
                           rows=rows))
    note = p.level("asset_config_note")
    parts.append(_part("asset_config_note", p.can("assets") and p.can("asset_config_note"),
                       f"asset_config_note = {note}" + ("" if p.can("assets") else " (needs assets)"),
                       level=note))
    docs = await q.count_account_rows(conn, p, "documents", t["account_id"])
    level = scope.documents_level(p)
    parts.append(_part("documents", level != "none",
                       f"documents = {level} ({_FLAGGED_LEVELS[level]})", level=level, rows=docs))
    level = scope.kb_level(p)
    parts.append(_part("kb", level != "none", f"kb = {level} ({_FLAGGED_LEVELS[level]})",
                       level=level, rows=await q.count_kb(conn, p)))
    return parts


async def explain(conn: asyncpg.Connection, username: str, ticket_id: str | int) -> dict[str, Any]:
    """Why `username` does or does not see ticket `ticket_id` (an id or a number like T-1000),
    and what of it. Raises AdminError for an unknown user or ticket."""
    # a NUL cannot be in any name, and PostgreSQL refuses to even compare one
    p = await find_user(conn, username) if "\x00" not in username and username.isprintable() else None
    if p is None:
        raise AdminError(f"no customer web user or employee named {username[:100]!r}")
    t = await _ticket(conn, ticket_id)
    ids = {t["account_id"], *(p.account_ids or ()), *([p.account_id] if p.account_id else [])}
    names = await accounts_q.names_by_ids(conn, sorted(ids))
    rule, reason = _visibility_rule(p, t, names)
    visible = await tickets_q.ticket_in_scope(conn, p, t["id"])
    result: dict[str, Any] = {
        "user": _who(p),
        "ticket": {"id": t["id"], "number": t["number"], "account_id": t["account_id"],
                   "account": t["account"], "status": t["status"],
                   "assigned_to": t["assigned_username"]},
        "visible": visible,
        "rule": rule,
        "reason": reason,
        "answer": "shown" if visible else "404 not found (out of scope looks like missing)",
    }
    if visible:
        parts = await (_customer_parts if p.is_customer else _employee_parts)(conn, p, t)
    else:
        parts = []
    result["parts"] = parts
    return result

