"""Words a person reads beside levels and mail settings on the admin pages (the words beside
each privilege are in daemon/access/kinds.py, with the kind of group it belongs to)."""

from __future__ import annotations

LEVEL_LABELS: dict[str, str] = {
    "none": "none", "view": "view", "edit": "view and edit", "download": "view and download",
    "accept": "view and accept", "off": "off", "on": "on", "own": "own", "all": "all",
    "public": "public only", "account": "the whole account",
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
