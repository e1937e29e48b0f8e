"""The access rule against the database: the system groups as SPEC §2 defines them, the bulk
snapshot against single reads, the privilege cache's single flight, and the SQL scope
conditions of daemon/access/scope.py run against seeded rows (`Principal.can` itself is
tests/unit/test_scope.py)."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from daemon.access import scope
from daemon.access.cache import PrivilegeCache, Snapshot, load_snapshot
from daemon.access.principals import find_user, level_name, load_principal
from daemon.access.scope import CUSTOMER_PRIVILEGES, Params, Principal
from tests.support.seed import seeded_database

# -- the database's groups and the bulk snapshot --------------------------------------------

TOP = {i: lv[-1] for i, lv in CUSTOMER_PRIVILEGES.items()}
LOW = {i: lv[0] for i, lv in CUSTOMER_PRIVILEGES.items()}
SPEC_GROUPS = {
    "Full": TOP,
    "Partial": {**TOP, "priority": "view", "ticket_asset": "view", "charges": "off",
                "asset_config_note": "off", "quotes": "view"},
    "Limited": {**LOW, "tickets_add": "on", "kb": "view", "change_password": "on"},
}
# and every system group sees every ticket of the account (SPEC §2, tickets_view)
SPEC_GROUPS = {name: {**levels, "tickets_view": "account"} for name, levels in SPEC_GROUPS.items()
}


@pytest.fixture(scope="module")
async def seeded(pg_server: str, template_dsn: str, seed_password_hash: str):
    """One seeded database for this module's read-only tests: (conn, seed)."""
    async with seeded_database(pg_server, template_dsn, seed_password_hash, "priv") as (dsn, conn, seed):
        seed["dsn"] = dsn
        yield conn, seed


async def test_system_groups_are_as_specified(seeded) -> None:
    conn, _ = seeded
    rows = await conn.fetch("SELECT * FROM customer_groups WHERE is_system")
    found = {r["name"]: {i: level_name(r[i]) for i in CUSTOMER_PRIVILEGES} for r in rows}
    assert found == SPEC_GROUPS


async def test_snapshot_equals_single_reads(seeded) -> None:
    conn, seed = seeded
    snap = await load_snapshot(conn)
    assert snap.version == await conn.fetchval("SELECT version FROM privilege_state")
    # four web users; four employees and one inactive (seeded inactive, still a principal)
    assert len(snap.customers) == 4 and len(snap.employees) == 5
    for kind, table in (("customer", snap.customers), ("employee", snap.employees)):
        for user_id, p in table.items():
            assert p == await load_principal(conn, kind, user_id)
    assert snap.get("employee", seed["sub2"]).account_ids == {seed["globex"], seed["initech"]}
    assert snap.get("customer", seed["custom@acme"]).group_name == "Custom"
    with pytest.raises(TypeError):
        snap.customers[999] = snap.customers[seed["full@acme"]]  # read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.version = 0


async def test_cache_reloads_once_for_many_waiting_requests(seeded) -> None:
    conn, seed = seeded
    pool = await asyncpg.create_pool(seed["dsn"], min_size=1, max_size=4)
    try:
        cache = PrivilegeCache(pool)
        await cache.reload()
        cache.mark_valid()
        await conn.execute("UPDATE customer_groups SET charges = NOT charges WHERE name = 'Custom'")
        version = await conn.fetchval("SELECT version FROM privilege_state")
        before = cache.reloads
        got = await asyncio.gather(*(cache.principal("customer", seed["custom@acme"], version)
                                     for _ in range(20)))
        assert cache.reloads == before + 1
        assert cache.snapshot.version == version
        assert {p.privileges["charges"] for p in got} == {level_name(await conn.fetchval(
            "SELECT charges FROM customer_groups WHERE name = 'Custom'"))}
        # an explicit reload always reads anew: callers that arrive while one runs share the next
        before = cache.reloads
        await asyncio.gather(*(cache.reload() for _ in range(10)))
        assert cache.reloads == before + 2
        # an invalid cache is not trusted: the principal comes straight from the database
        cache.invalidate()
        direct = cache.direct_reads
        await conn.execute("UPDATE customer_groups SET charges = NOT charges WHERE name = 'Custom'")
        p = await cache.principal("customer", seed["custom@acme"], 0)
        assert cache.direct_reads == direct + 1
        assert p.privileges["charges"] != got[0].privileges["charges"]
        assert isinstance(cache.snapshot, Snapshot)
    finally:
        await pool.close()


# -- the SQL scope conditions ---------------------------------------------------------------


async def visible(conn, p: Principal, sql_from: str, cond, key_of: dict[int, str],
                  *extra_params) -> set[str]:
    params = Params(*extra_params)
    rows = await conn.fetch(f"SELECT c.id FROM {sql_from} WHERE {cond(params)}", *params.values)
    return {key_of[r["id"]] for r in rows}


async def principal_of(conn, name: str) -> Principal:
    p = await find_user(conn, name)
    assert p is not None
    return p


TICKETS = {"t_acme_sub1", "t_acme_tech", "t_acme_none", "t_globex_sub2", "t_globex_sub1", "t_initech_sub2"}


@pytest.mark.parametrize("user, expected", [
    ("full@acme", {"t_acme_sub1", "t_acme_tech", "t_acme_none"}),
    ("limited@acme", {"t_acme_sub1", "t_acme_tech", "t_acme_none"}),  # tickets need no privilege
    ("full@globex", {"t_globex_sub2", "t_globex_sub1"}),  # never another account's
    ("admin", TICKETS),
    ("tech", TICKETS),
    # assigned to them *and* of an account they may access: t_globex_sub1 is assigned to sub1,
    # but Globex is not in sub1's list
    ("sub1", {"t_acme_sub1"}),
    ("sub2", {"t_globex_sub2", "t_initech_sub2"}),  # never another subcontractor's ticket
])
async def test_ticket_scope(seeded, user: str, expected: set[str]) -> None:
    conn, seed = seeded
    p = await principal_of(conn, user)
    key_of = {seed[k]: k for k in TICKETS}
    assert await visible(conn, p, "tickets c", lambda ps: scope.tickets(p, ps, "c"), key_of) == expected
    gone = dataclasses.replace(p, active=False)
    assert await visible(conn, gone, "tickets c", lambda ps: scope.tickets(gone, ps, "c"), key_of) == set()


CHILDREN = {
    "history_notes": {"n_sub1", "n_tech", "n_customer"},
    "charges": {"c_sub1", "c_tech"},
    "ticket_emails": {"e_public_tech", "e_private_tech", "e_private_sub1"},
    "attachments": {"a_public_sub1", "a_private_tech"},
}


@pytest.mark.parametrize("user, expected", [
    # customers: only rows flagged public (notes and charges have no flag)
    ("full@acme", {"history_notes": CHILDREN["history_notes"], "charges": CHILDREN["charges"],
                   "ticket_emails": {"e_public_tech"}, "attachments": {"a_public_sub1"}}),
    # own-data employees: only what they added themselves, public or not
    ("sub1", {"history_notes": {"n_sub1"}, "charges": {"c_sub1"}, "ticket_emails": {"e_private_sub1"},
              "attachments": {"a_public_sub1"}}),
    ("tech", CHILDREN),
])
async def test_child_scope(seeded, user: str, expected: dict[str, set[str]]) -> None:
    conn, seed = seeded
    p = await principal_of(conn, user)
    for table, names in CHILDREN.items():
        key_of = {seed[k]: k for k in names}
        got = await visible(
            conn, p, f"{table} c JOIN tickets t ON t.id = c.ticket_id",
            lambda ps, table=table: f"c.ticket_id = $1 AND {scope.tickets(p, ps)} AND {scope.children(p, ps, table)}",
            key_of, seed["t_acme_sub1"])
        assert got == expected[table], table


async def test_children_of_an_out_of_scope_ticket_stay_hidden(seeded) -> None:
    conn, seed = seeded
    sub2 = await principal_of(conn, "sub2")
    key_of = {seed[k]: k for k in CHILDREN["history_notes"]}
    got = await visible(conn, sub2, "history_notes c JOIN tickets t ON t.id = c.ticket_id",
                        lambda ps: f"{scope.tickets(sub2, ps)} AND {scope.children(sub2, ps, 'history_notes')}",
                        key_of)
    assert got == set()


@pytest.mark.parametrize("user, documents, quotes, kb", [
    ("full@acme", {"d_acme_public"}, {"q_acme"}, {"kb_public"}),
    ("full@globex", {"d_globex_public"}, {"q_globex"}, {"kb_public"}),
    # Subcontractors: documents=none, kb=public (quotes=off is the route's 403, not a row rule)
    ("sub1", set(), {"q_acme"}, {"kb_public"}),
    ("tech", {"d_acme_public", "d_acme_private", "d_globex_public"}, {"q_acme", "q_globex"},
     {"kb_public", "kb_internal"}),
])
async def test_account_data_scope(seeded, user: str, documents: set, quotes: set, kb: set) -> None:
    conn, seed = seeded
    p = await principal_of(conn, user)
    docs = {seed[k]: k for k in ("d_acme_public", "d_acme_private", "d_globex_public")}
    assert await visible(conn, p, "documents c",
                         lambda ps: f"{scope.accounts(p, ps, 'c.account_id')} AND {scope.documents(p)}",
                         docs) == documents
    assert await visible(conn, p, "quotes c", lambda ps: scope.accounts(p, ps, "c.account_id"),
                         {seed[k]: k for k in ("q_acme", "q_globex")}) == quotes
    assert await visible(conn, p, "kb_articles c", lambda ps: scope.kb(p),
                         {seed[k]: k for k in ("kb_public", "kb_internal")}) == kb
