"""The JSON Schemas of the API's answers (and of the multipart upload), the `components` of
the OpenAPI document (web/openapi.py) beside those of the request models (web/schemas/), which
come from the models themselves."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def items_of(schema: JSON) -> JSON:
    return {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": schema}}}


def offset_page_of(schema: JSON) -> JSON:
    return {"type": "object", "required": ["items", "next_offset"],
            "properties": {"items": {"type": "array", "items": schema},
                           "next_offset": {"type": ["integer", "null"],
                                           "description": "the `offset` of the next page; null on the last"}}}


ID = {"type": "integer", "minimum": 1}
NULLABLE_ID = {"type": ["integer", "null"], "minimum": 1}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
DATE = {"type": ["string", "null"], "format": "date"}
MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "decimal as a string"}
DECIMAL_IN = {"type": ["string", "number"], "description": "at most 2 decimals, e.g. \"1.50\""}
PRIORITY = {"type": "string", "enum": ["low", "normal", "high", "urgent"]}
STATUS = {"type": "string", "enum": ["open", "in_progress", "waiting", "closed"]}
LEVEL = {"type": "string", "description": "the level of one identifier (SPEC §2/§3)"}
SETTING_NAMES = ("alert_assigned", "alert_created", "alert_reminder", "alert_digest", "recv_note",
                 "recv_status", "recv_closed", "recv_email", "recv_charge", "recv_own_changes")

SCHEMAS: dict[str, JSON] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string", "examples": ["not_found", "invalid"]},
                           "message": {"type": "string"},
                           "field": {"type": "string", "description": "the input field at fault (422)"}}}}},
    "Me": {
        "type": "object",
        "required": ["kind", "id", "username", "email", "display_name", "group", "privileges",
                     "csrf_token"],
        "properties": {
            "kind": {"type": "string", "enum": ["customer", "employee"]},
            "id": ID, "username": {"type": "string"},
            "email": {"type": "string", "description": "the user's mail address as the portal has it; "
                                                       "empty for a customer web user without one"},
            "display_name": {"type": "string"},
            "group": {"type": "string"},
            "privileges": {"type": "object", "additionalProperties": LEVEL,
                           "description": "every identifier of the user's kind → effective level"},
            "csrf_token": {"type": "string", "description": "send back as X-CSRF-Token"},
            "account_id": {**ID, "description": "customers: their account"},
            "all_accounts": {"type": "boolean", "description": "employees"},
            "account_ids": {"type": "array", "items": ID,
                            "description": "employees without all_accounts: the accounts they may access"}}},
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "TotpRequired": {"type": "object", "required": ["totp_required"],
                     "properties": {"totp_required": {"type": "boolean", "const": True}}},
    "TotpStatus": {
        "type": "object", "required": ["enabled", "setup_pending", "required", "recovery_codes_left"],
        "properties": {"enabled": {"type": "boolean"}, "setup_pending": {"type": "boolean"},
                       "required": {"type": "boolean", "description": "your employee group requires it"},
                       "recovery_codes_left": {"type": "integer", "minimum": 0}}},
    "TotpSetup": {"type": "object", "required": ["secret", "otpauth_uri"],
                  "properties": {"secret": {"type": "string", "description": "base32"},
                                 "otpauth_uri": {"type": "string"}}},
    "RecoveryCodes": {"type": "object", "required": ["recovery_codes"],
                      "properties": {"status": {"type": "string"},
                                     "recovery_codes": {"type": "array", "items": {"type": "string"},
                                                        "minItems": 10, "maxItems": 10}}},
    "MailSettings": {
        "type": "object", "required": list(SETTING_NAMES),
        "properties": {n: {"type": "boolean"} for n in SETTING_NAMES}},
    "Ticket": {
        "type": "object",
        "required": ["id", "number", "account_id", "status", "description", "created_at",
                     "updated_at", "closed_at"],
        "properties": {
            "id": ID, "number": {"type": "string", "examples": ["T-1000"]}, "account_id": ID,
            "account_name": {"type": "string"}, "status": STATUS,
            "description": {"type": "string", "description": "plain text, exactly as entered"},
            "created_at": TIME, "updated_at": TIME, "closed_at": NULLABLE_TIME,
            "priority": {**PRIORITY, "description": "only where the user may see it (customers: priority ≥ view)"},
            "asset_id": {**NULLABLE_ID, "description": "only where the user may see it (customers: ticket_asset ≥ view)"},
            "asset_name": {"type": ["string", "null"]},
            "assigned_to": {**NULLABLE_ID, "description": "employees only"},
            "assigned_name": {"type": ["string", "null"]},
            "contact": {"type": "object", "description": "employees, on one ticket: the account's contact",
                        "properties": {k: {"type": ["string", "null"]}
                                       for k in ("name", "phone", "email", "address")}}}},
    "TicketPage": {
        "type": "object", "required": ["items", "next_cursor", "next"],
        "properties": {"items": {"type": "array", "items": ref("Ticket")},
                       "next_cursor": {"type": ["string", "null"],
                                       "description": "pass as `cursor` for the next page; null on the last"},
                       "next": {"type": ["string", "null"],
                                "description": "the URL of the next page (same filters)"}}},
    "Note": {
        "type": "object", "required": ["id", "body", "created_at", "author", "author_kind"],
        "properties": {"id": ID, "body": {"type": "string"}, "created_at": TIME,
                       "author": {"type": "string"},
                       "author_kind": {"type": "string", "enum": ["customer", "employee", "system"]}}},
    "Charge": {
        "type": "object",
        "required": ["id", "kind", "description", "quantity", "unit_price", "amount", "created_at"],
        "properties": {"id": ID, "kind": {"type": "string", "enum": ["labor", "expense", "part"]},
                       "description": {"type": "string"}, "quantity": MONEY, "unit_price": MONEY,
                       "amount": MONEY, "employee": {"type": ["string", "null"]},
                       "created_at": TIME}},
    "Email": {
        "type": "object", "required": ["id", "from", "to", "subject", "body", "public", "created_at"],
        "properties": {"id": ID, "from": {"type": "string"}, "to": {"type": "string"},
                       "subject": {"type": "string"}, "body": {"type": "string"},
                       "public": {"type": "boolean"}, "created_at": TIME}},
    "Attachment": {
        "type": "object",
        "required": ["id", "filename", "content_type", "size", "public", "created_at", "download_url"],
        "properties": {"id": ID, "filename": {"type": "string"}, "content_type": {"type": "string"},
                       "size": {"type": "integer", "minimum": 0}, "public": {"type": "boolean"},
                       "uploaded_by": {"type": ["string", "null"]}, "created_at": TIME,
                       "download_url": {"type": "string"}}},
    "Upload": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"},
                       "public": {"type": "boolean",
                                  "description": "employees: default false; customers' files are always public"}}},
    "Recipient": {
        "type": "object", "required": ["id", "username", "full_name", "email", "active"],
        "properties": {"id": ID, "username": {"type": "string"}, "full_name": {"type": "string"},
                       "email": {"type": "string"}, "active": {"type": "boolean"}}},
    "Asset": {
        "type": "object", "required": ["id", "account_id", "name"],
        "properties": {"id": ID, "account_id": ID, "name": {"type": "string"},
                       "kind": {"type": "string"}, "serial": {"type": "string"},
                       "config_note": {"type": "string", "description": "only with asset_config_note"}}},
    "Contract": {
        "type": "object", "required": ["id", "account_id", "name", "status"],
        "properties": {"id": ID, "account_id": ID, "name": {"type": "string"},
                       "status": {"type": "string", "enum": ["pending", "active", "expired", "cancelled"]},
                       "terms": {"type": "string"}, "starts_on": DATE, "ends_on": DATE}},
    "ContractDetail": {
        "allOf": [ref("Contract"), {
            "type": "object",
            "properties": {"charges": {"type": "array", "items": ref("Charge"),
                                       "description": "only with the charges privilege"},
                           "charges_total": MONEY}}]},
    "Document": {
        "type": "object", "required": ["id", "account_id", "title", "filename"],
        "properties": {"id": ID, "account_id": ID, "title": {"type": "string"},
                       "filename": {"type": "string"}, "content_type": {"type": "string"},
                       "size": {"type": "integer"}, "is_public": {"type": "boolean"},
                       "created_at": TIME}},
    "KbArticleSummary": {
        "type": "object", "required": ["id", "title"],
        "properties": {"id": ID, "title": {"type": "string"}, "is_public": {"type": "boolean"},
                       "updated_at": TIME, "file_count": {"type": "integer"}}},
    "KbArticle": {
        "type": "object", "required": ["id", "title", "body"],
        "properties": {"id": ID, "title": {"type": "string"}, "body": {"type": "string"},
                       "is_public": {"type": "boolean"}, "updated_at": TIME,
                       "files": {"type": "array", "description": "only with kb=download",
                                 "items": {"type": "object", "required": ["id", "filename"],
                                           "properties": {"id": ID, "filename": {"type": "string"},
                                                          "content_type": {"type": "string"},
                                                          "size": {"type": "integer"}}}}}},
    "Quote": {
        "type": "object", "required": ["id", "account_id", "number", "title", "amount", "status"],
        "properties": {"id": ID, "account_id": ID, "number": {"type": "string"},
                       "title": {"type": "string"}, "description": {"type": "string"},
                       "amount": MONEY,
                       "status": {"type": "string", "enum": ["open", "accepted", "declined"]},
                       "valid_until": DATE, "accepted_at": NULLABLE_TIME,
                       "accepted_by": {"type": ["string", "null"]},
                       "expired": {"type": ["boolean", "null"]}, "acceptable": {"type": ["boolean", "null"]}}},
}
