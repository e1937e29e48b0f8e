"""The access rule without a database: `Principal.can` for every identifier and level, and the
SQL conditions daemon/access/scope.py writes for each kind of principal (run against rows in
tests/integration/test_privileges.py)."""

from __future__ import annotations

import pytest

from daemon.access import scope
from daemon.access.scope import CUSTOMER_PRIVILEGES, EMPLOYEE_PRIVILEGES, Params, Principal

# -- Principal.can: the table -------------------------------------------------------------


def customer(privileges: dict[str, str], **kw) -> Principal:
    return Principal(kind="customer", id=1, username="u", display_name="U", group_name="G",
                     privileges=privileges, account_id=1, **kw)


def employee(privileges: dict[str, str], **kw) -> Principal:
    return Principal(kind="employee", id=1, username="e", display_name="E", group_name="G",
                     privileges=privileges, **kw)


def _cases(table: dict[str, tuple[str, ...]]) -> list[tuple[str, str, str]]:
    return [(ident, have, ask) for ident, levels in table.items() for have in levels for ask in levels]


@pytest.mark.parametrize("identifier, have, ask", _cases(CUSTOMER_PRIVILEGES))
def test_customer_can(identifier: str, have: str, ask: str) -> None:
    levels = CUSTOMER_PRIVILEGES[identifier]
    expected = levels.index(have) >= levels.index(ask)
    # with the privilege at `have`, every other identifier at its top level
    others = {i: lv[-1] for i, lv in CUSTOMER_PRIVILEGES.items()}
    assert customer({**others, identifier: have}).can(identifier, ask) is expected
    # without it (missing from the group): only the lowest level
    assert customer({}).can(identifier, ask) is (ask == levels[0])
    # a deactivated user can do nothing at all
    assert customer({identifier: have}, active=False).can(identifier, ask) is False
    # customer identifiers mean nothing for employees, unless an employee right has the same
    # name (assets, documents, …): that one is read with the employee right's own levels
    if identifier not in EMPLOYEE_PRIVILEGES or ask not in EMPLOYEE_PRIVILEGES[identifier]:
        assert employee({identifier: have}).can(identifier, ask) is False


@pytest.mark.parametrize("right, have, ask", _cases(EMPLOYEE_PRIVILEGES))
def test_employee_can(right: str, have: str, ask: str) -> None:
    levels = EMPLOYEE_PRIVILEGES[right]
    assert employee({right: have}).can(right, ask) is (levels.index(have) >= levels.index(ask))
    assert employee({}).can(right, ask) is (ask == levels[0])
    assert employee({right: have}, active=False).can(right, ask) is False
    if right not in CUSTOMER_PRIVILEGES:
        assert customer({right: have}).can(right, ask) is False


def test_unknown_identifiers_and_levels_are_refused() -> None:
    p = customer({i: lv[-1] for i, lv in CUSTOMER_PRIVILEGES.items()})
    assert not p.can("nonsense")
    assert not p.can("kb", "on")  # kb has none/view/download
    assert not customer({"kb": "bogus"}).can("kb", "none")




# -- the conditions written ---------------------------------------------------------------


def test_nobody_inactive_sees_anything() -> None:
    for p in (customer({}, active=False), employee({"ticket_scope": "all"}, all_accounts=True,
                                                   active=False)):
        params = Params()
        assert scope.tickets(p, params) == "false"
        assert scope.accounts(p, params, "c.account_id") == "false"
        assert scope.children(p, params, "history_notes") == "false"
        assert params.values == []


def test_customers_see_their_account_and_public_children() -> None:
    p = Principal(kind="customer", id=2, username="c", display_name="C", group_name="G",
                  privileges={"tickets_view": "account"}, account_id=7)
    params = Params(99)  # a statement's own first parameter stays first
    assert scope.tickets(p, params) == "t.account_id = $2"
    assert scope.accounts(p, params, "a.id") == "a.id = $3"
    assert params.values == [99, 7, 7]
    assert scope.children(p, params, "attachments") == "c.is_public"
    assert scope.children(p, params, "ticket_emails", "e") == "e.is_public"
    assert scope.children(p, params, "history_notes") == "true"
    assert scope.documents(p) == "false"  # documents=off: none at all
    assert scope.kb(p) == "false"  # kb=none
    reader = Principal(kind="customer", id=2, username="c", display_name="C", group_name="G",
                       privileges={"documents": "on", "kb": "view"}, account_id=7)
    assert scope.documents(reader) == "c.is_public"
    assert scope.kb(reader, "k") == "k.is_public"


def test_own_tickets_customers_see_only_what_they_raised() -> None:
    own = customer({"tickets_view": "own"})
    params = Params()
    assert scope.tickets(own, params) == "t.account_id = $1 AND t.created_by_webuser = $2"
    assert params.values == [1, 1]
    # a principal without the identifier falls to the lowest level: own, never the account
    assert "created_by_webuser" in scope.tickets(customer({}), Params())
    # the children and the account data stay as for the account: the ticket decides
    assert scope.children(own, Params(), "history_notes") == "true"
    assert scope.accounts(own, Params(), "c.account_id") == "c.account_id = $1"


def test_employees_see_their_accounts_and_by_their_group_their_own() -> None:
    everything = employee({"ticket_scope": "all", "see_others": "all"}, all_accounts=True)
    params = Params()
    assert scope.tickets(everything, params) == "true"
    assert scope.accounts(everything, params, "c.account_id") == "true"
    assert scope.children(everything, params, "charges") == "true"
    assert scope.documents(everything) == "false"  # documents=none unless the group says
    assert scope.kb(everything) == "false"
    readers = employee({"documents": "all", "kb": "all"}, all_accounts=True)
    assert scope.documents(readers) == scope.kb(readers) == "true"
    public = employee({"documents": "public", "kb": "public"}, all_accounts=True)
    assert scope.documents(public) == scope.kb(public) == "c.is_public"
    assert params.values == []

    sub = Principal(kind="employee", id=5, username="s", display_name="S", group_name="G",
                    privileges={"ticket_scope": "own", "see_others": "own"},
                    account_ids=frozenset({3, 1}))
    params = Params()
    assert scope.tickets(sub, params, "x") == "x.account_id = ANY($1::bigint[]) AND x.assigned_to = $2"
    assert scope.children(sub, params, "charges") == "c.employee_id = $3"
    assert scope.children(sub, params, "attachments") == "c.uploaded_by_employee = $4"
    assert params.values == [[1, 3], 5, 5, 5]


def test_only_ticket_children_have_a_child_condition() -> None:
    with pytest.raises(ValueError, match="not a ticket child table"):
        scope.children(customer({}), Params(), "documents")
