"""Words a person reads beside the identifiers (which stay visible: they are the names the CLI
and the API use too)."""

from __future__ import annotations

CUSTOMER_LABELS: dict[str, str] = {
    "tickets_add": "Add new tickets",
    "tickets_edit": "Edit a ticket's description",
    "priority": "Ticket priority",
    "ticket_asset": "Asset linked to a ticket",
    "charges": "Charges on tickets and contracts",
    "assets": "Assets tab",
    "asset_config_note": "Asset configuration note (needs Assets)",
    "history_notes": "History notes: view and add",
    "contracts": "Contracts tab",
    "public_emails": "Public emails under tickets",
    "documents": "Download public documents",
    "upload_files": "Upload files to tickets",
    "kb": "Knowledge base (public articles)",
    "quotes": "Quotes",
    "change_password": "Change own password",
}

LEVEL_LABELS: dict[str, str] = {
    "none": "none", "view": "view", "edit": "view and edit", "download": "view and download",
    "accept": "view and accept", "off": "off", "on": "on", "own": "own", "all": "all",
}

EMPLOYEE_RIGHT_LABELS: dict[str, str] = {
    "ticket_scope": "Tickets seen (own: only assigned to them)",
    "see_others": "Others' notes, charges, attachments",
    "add_notes": "Add history notes",
    "log_charges": "Log charges",
    "upload_attachments": "Upload attachments",
    "close_tickets": "Close tickets",
    "edit_tickets": "Edit ticket fields",
    "create_tickets": "Create tickets",
    "assign_tickets": "Assign tickets",
    "file_emails": "File emails under tickets",
    "edit_recipients": "Edit ticket recipients",
    "admin": "Administration",
}

ALERT_LABELS: dict[str, str] = {
    "alert_assigned": "A ticket is assigned to them",
    "alert_created": "A new ticket is created",
    "alert_reminder": "Reminder for assigned tickets left untouched",
    "alert_digest": "Daily digest",
}

RECIPIENT_LABELS: dict[str, str] = {
    "recv_note": "A history note is added",
    "recv_status": "The status changes",
    "recv_closed": "The ticket is closed",
    "recv_email": "A public email is filed",
    "recv_charge": "A charge is logged",
    "recv_own_changes": "Also for changes they made themselves",
}
