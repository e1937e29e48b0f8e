"""The one access rule: who a principal is, and what they may see as SQL conditions.

Every query of tickets, their children and account data takes its WHERE conditions from here,
so data a user may not see is never fetched. Out-of-scope rows simply do not match, which is
why the portal answers 404 for them exactly as for missing ones.

This is the first wall. The second is the database's row-level security
(daemon/db/sql/008_row_level_security.sql), which says the same rule for the role the web
requests run as (daemon/access/acting.py), so that a query which forgets these conditions still
fetches nothing outside the scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# the two kinds of principal (and of privilege group)
Kind = Literal["customer", "employee"]

# One vocabulary for both kinds: a privilege group holds a level of each privilege. Each
# privilege's identifier maps to its levels, lowest first; the customer ones are SPEC §2's,
# the employee ones (which SPEC §3 calls the rights of a group) are §3's.
CUSTOMER_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "tickets_add": ("off", "on"),
    "tickets_edit": ("off", "on"),
    "priority": ("none", "view", "edit"),
    "ticket_asset": ("none", "view", "edit"),
    "charges": ("off", "on"),
    "assets": ("off", "on"),
    "asset_config_note": ("off", "on"),
    "history_notes": ("off", "on"),
    "contracts": ("off", "on"),
    "public_emails": ("off", "on"),
    "documents": ("off", "on"),
    "upload_files": ("off", "on"),
    "kb": ("none", "view", "download"),
    "quotes": ("none", "view", "accept"),
    "change_password": ("off", "on"),
    "tickets_view": ("own", "account"),
}

EMPLOYEE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "ticket_scope": ("own", "all"),
    "see_others": ("own", "all"),
    "add_notes": ("off", "on"),
    "log_charges": ("off", "on"),
    "upload_attachments": ("off", "on"),
    "close_tickets": ("off", "on"),
    "edit_tickets": ("off", "on"),
    "create_tickets": ("off", "on"),
    "assign_tickets": ("off", "on"),
    "file_emails": ("off", "on"),
    "edit_recipients": ("off", "on"),
    # the account data of the accounts the employee may access
    "assets": ("off", "on"),
    "asset_config_note": ("off", "on"),
    "contracts": ("off", "on"),
    "quotes": ("off", "on"),
    "documents": ("none", "public", "all"),
    "kb": ("public", "all"),
    "admin": ("off", "on"),
    # a policy rather than a right: members log in with a second factor (TOTP), and set one
    # up before they may do anything else
    "require_2fa": ("off", "on"),
}


@dataclass(frozen=True)
class Principal:
    """A logged-in person, as of one privilege snapshot."""

    kind: Kind
    id: int
    username: str
    display_name: str
    group_name: str
    # privilege identifier → level name (of the customer or the employee privileges)
    privileges: dict[str, str]
    email: str = ""  # as the user's row has it (customers may have none)
    account_id: int | None = None  # customers: their one account
    all_accounts: bool = False  # employees
    account_ids: frozenset[int] = field(default_factory=frozenset)  # employees without all_accounts
    # `active` is what counts for data and mail; `web_access` (employees) only for logging in:
    # an active employee without web access still gets their mail (SPEC §4)
    active: bool = True
    web_access: bool = True
    totp_enabled: bool = False  # two-factor login set up and confirmed

    @property
    def may_log_in(self) -> bool:
        return self.active and self.web_access

    @property
    def must_enrol(self) -> bool:
        """Their group requires two-factor login and they have not set it up yet: until they
        do, they may only set it up or log out (web/middleware/access.py)."""
        return self.is_employee and self.can("require_2fa") and not self.totp_enabled

    @property
    def is_customer(self) -> bool:
        return self.kind == "customer"

    @property
    def is_employee(self) -> bool:
        return self.kind == "employee"

    def level(self, identifier: str) -> str:
        return self.privileges.get(identifier, "off")

    def can(self, identifier: str, level: str = "on") -> bool:
        """At least `level` of `identifier` (levels are ordered lowest first)."""
        levels = (CUSTOMER_PRIVILEGES if self.is_customer else EMPLOYEE_PRIVILEGES).get(identifier)
        if levels is None or not self.active:
            return False
        have = self.privileges.get(identifier, levels[0])
        if level not in levels or have not in levels:
            return False
        return levels.index(have) >= levels.index(level)

    def may_access_account(self, account_id: int) -> bool:
        if not self.active:
            return False
        if self.is_customer:
            return self.account_id == account_id
        return self.all_accounts or account_id in self.account_ids

    @property
    def sees_only_own_children(self) -> bool:
        return self.is_employee and self.level("see_others") != "all"

    @property
    def sees_only_own_tickets(self) -> bool:
        """An employee who sees only the tickets assigned to them (ticket_scope=own)."""
        return self.is_employee and self.level("ticket_scope") != "all"

    @property
    def sees_only_raised_tickets(self) -> bool:
        """A customer who sees only the tickets they raised (tickets_view=own)."""
        return self.is_customer and self.level("tickets_view") != "account"


# The test suite's switch, never a setting: False takes the first wall down (every condition
# below lets everything through) to show that the second one alone keeps every boundary.
FIRST_WALL = True


class Params:
    """Positional parameters of one asyncpg statement, numbered as they are added."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def tickets(p: Principal, params: Params, t: str = "t") -> str:
    """Condition on a `tickets` row aliased `t`: the tickets `p` may see."""
    if not FIRST_WALL:
        return "true"
    if not p.active:
        return "false"
    if p.is_customer:
        account = f"{t}.account_id = {params.add(p.account_id)}"
        if p.sees_only_raised_tickets:
            return f"{account} AND {t}.created_by_webuser = {params.add(p.id)}"
        return account
    parts = []
    if not p.all_accounts:
        parts.append(f"{t}.account_id = ANY({params.add(sorted(p.account_ids))}::bigint[])")
    if p.sees_only_own_tickets:
        parts.append(f"{t}.assigned_to = {params.add(p.id)}")
    return " AND ".join(parts) or "true"


def accounts(p: Principal, params: Params, column: str) -> str:
    """Condition on an account id column: the accounts whose data `p` may see."""
    if not FIRST_WALL:
        return "true"
    if not p.active:
        return "false"
    if p.is_customer:
        return f"{column} = {params.add(p.account_id)}"
    if p.all_accounts:
        return "true"
    return f"{column} = ANY({params.add(sorted(p.account_ids))}::bigint[])"


# Children of a ticket: which column says who added a row, and which says it is public.
_CHILD_AUTHOR = {
    "history_notes": "author_employee_id",
    "charges": "employee_id",
    "attachments": "uploaded_by_employee",
    "ticket_emails": "filed_by",
}
_CHILD_PUBLIC = {"attachments": "is_public", "ticket_emails": "is_public"}


def children(p: Principal, params: Params, table: str, c: str = "c") -> str:
    """Condition on a child row (`table` aliased `c`) of a ticket already in scope: customers
    see public rows only; own-data employees see only what they added themselves."""
    if table not in _CHILD_AUTHOR:
        raise ValueError(f"not a ticket child table: {table}")
    if not FIRST_WALL:
        return "true"
    if not p.active:
        return "false"
    if p.is_customer:
        public = _CHILD_PUBLIC.get(table)
        return f"{c}.{public}" if public else "true"
    if p.sees_only_own_children:
        return f"{c}.{_CHILD_AUTHOR[table]} = {params.add(p.id)}"
    return "true"


def documents_level(p: Principal) -> str:
    """none · public · all: which of an account's documents `p` sees. Customers: the public
    ones with `documents`; employees: their group's `documents` level."""
    if not p.active:
        return "none"
    if p.is_customer:
        return "public" if p.can("documents") else "none"
    return p.level("documents")


def kb_level(p: Principal) -> str:
    """none · public · all: which knowledge-base articles `p` sees. Customers: the public
    ones from kb=view; employees: their group's `kb` level (public at least)."""
    if not p.active:
        return "none"
    if p.is_customer:
        return "public" if p.can("kb", "view") else "none"
    return p.level("kb")


def _flagged(level: str, c: str) -> str:
    if not FIRST_WALL:
        return "true"
    return {"all": "true", "public": f"{c}.is_public"}.get(level, "false")


def documents(p: Principal, c: str = "c") -> str:
    """Condition on a `documents` row aliased `c` (beside `accounts()` on its account)."""
    return _flagged(documents_level(p), c)


def kb(p: Principal, c: str = "c") -> str:
    """Condition on a `kb_articles` row aliased `c`."""
    return _flagged(kb_level(p), c)
