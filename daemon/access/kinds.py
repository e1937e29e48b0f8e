"""The two kinds of privilege group, customer and employee: one descriptor each, read by the
queries (which table), the services (which words and audit names) and the admin pages (which
labels), so that what sets the kinds apart is written once.

Both kinds have the same shape: a table of groups with one column per privilege and a table
of members pointing at it by `group_id`. Table and column names are spliced into SQL, so they
come from these two fixed descriptors only, never from input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES, Kind


@dataclass(frozen=True)
class GroupKind:
    name: Kind  # as messages name the kind: "customer group", "employee group"
    table: str
    members: str  # the table whose rows belong to a group
    levels: Mapping[str, tuple[str, ...]]  # one column per privilege, with the levels it allows
    labels: Mapping[str, str]  # what a person reads beside each privilege
    level_word: str  # what a privilege of this kind is called in messages
    levels_key: str  # the key of a group's levels in its dict
    count_key: str  # the key of its member count in its dict
    member_word: str  # a member, in the messages of the admin operations
    member_title: str  # a member, on the admin pages
    audit_action: str  # audit action prefix
    audit_target: str  # audit target prefix
    has_default: bool = False  # one group of the kind is the default for new members
    # the privileges a system group's administrator may still set: policies, not rights
    system_editable: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.levels)

    @property
    def title(self) -> str:
        return f"{self.name.capitalize()} privilege groups"

    @property
    def group_word(self) -> str:
        return f"{self.name} group"


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
    "tickets_view": "Tickets seen (own: only those they raised)",
}

EMPLOYEE_LABELS: dict[str, str] = {
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
    "assets": "Assets tab",
    "asset_config_note": "Asset configuration note (needs Assets)",
    "contracts": "Contracts tab, with their charges",
    "quotes": "Quotes tab",
    "documents": "The account's documents",
    "kb": "Knowledge base articles",
    "admin": "Administration",
    "require_2fa": "Two-factor login required",
}

CUSTOMER_GROUPS = GroupKind(
    name="customer", table="customer_groups", members="customer_web_users",
    levels=CUSTOMER_PRIVILEGES, labels=CUSTOMER_LABELS, level_word="identifier",
    levels_key="privileges", count_key="users", member_word="user", member_title="web user",
    audit_action="group", audit_target="customer_group", has_default=True)

EMPLOYEE_GROUPS = GroupKind(
    name="employee", table="employee_groups", members="employees",
    levels=EMPLOYEE_PRIVILEGES, labels=EMPLOYEE_LABELS, level_word="right",
    levels_key="rights", count_key="employees", member_word="employee", member_title="employee",
    audit_action="employee_group", audit_target="employee_group",
    system_editable=("require_2fa",))

GROUP_KINDS: dict[Kind, GroupKind] = {k.name: k for k in (CUSTOMER_GROUPS, EMPLOYEE_GROUPS)}
