"""Tickets and their children as the JSON API writes them: plain dicts, decimals and times as
strings (daemon.formatting: `plain`, or `json_bytes` when written), and only the columns the query let the principal see."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.formatting import plain
from web.files import safe_filename

_CONTACT = {"contact_name": "name", "account_phone": "phone", "account_email": "email",
            "account_address": "address"}


def ticket_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket as `p` may see it: the query selected only the visible columns, so priority,
    asset and assignee are simply absent when hidden. Its values stay as the database gave
    them (a ticket has no decimal; times are written by daemon.formatting.json_bytes), so a
    page of tickets is converted once, by the JSON writer."""
    data = dict(row.items())  # asyncpg records iterate over values, not keys
    if "contact_name" in data:
        data["contact"] = {name: data.pop(col) for col, name in _CONTACT.items()}
    return data


def note_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "body": row["body"], "created_at": plain(row["created_at"]),
            "author": row["author"], "author_kind": row["author_kind"]}


def charge_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "kind": row["kind"], "description": row["description"],
            "quantity": plain(row["quantity"]), "unit_price": plain(row["unit_price"]),
            "amount": plain(row["amount"]), "employee": row["employee"],
            "created_at": plain(row["created_at"])}


def email_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "from": row["from_addr"], "to": row["to_addr"],
            "subject": row["subject"], "body": row["body"], "public": row["is_public"],
            "created_at": plain(row["created_at"])}


def attachment_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "filename": safe_filename(row["filename"]), "content_type": row["content_type"],
            "size": row["size"], "public": row["is_public"], "uploaded_by": row["uploaded_by"],
            "created_at": plain(row["created_at"]), "download_url": f"/api/v1/attachments/{row['id']}"}


def recipient_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "username": row["username"], "full_name": row["full_name"],
            "email": row["email"], "active": row["active"]}
