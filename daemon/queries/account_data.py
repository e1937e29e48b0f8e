"""An account's own data beside its tickets: assets, contracts (and their charges), documents,
quotes, and the knowledge base. Conditions come from `daemon.access.scope`; columns and rows a
privilege hides (an asset's configuration note, a contract's charges, a KB article's files) are
not selected unless the principal has it, so hidden data is never fetched.

Who sees what (`shows`): customers as their privilege group says (SPEC §2), employees as the
rights of theirs do (SPEC §3: assets, asset_config_note, contracts, quotes, documents, kb), each
for the accounts they may access. Which documents and KB articles a level lets through is a row
condition of `scope` (public only, or all). Own-data employees (subcontractors) see only the
contract charges they logged themselves, as with ticket charges. Accepting a quote is the
customer's act; employees only read quotes.

Lists are pages: `limit` rows from `offset`, in a stable order (id as the last key); one extra
row is fetched to know whether a next page exists."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from daemon.access import scope
from daemon.access.scope import Params, Principal

Conn = asyncpg.Connection | asyncpg.Pool


class QuoteNotAcceptable(Exception):
    """The quote exists and is in scope but cannot be accepted; the message says why."""


@dataclass(frozen=True)
class Page:
    items: list[asyncpg.Record]
    next_offset: int | None


# The employee right and level that stand for a customer privilege and level in `shows`.
# Employees have no `charges` right (a contract's charges come with `contracts`) and at least
# kb=public, which includes the files of the articles they see.
_EMPLOYEE_EQUIVALENT: dict[tuple[str, str], tuple[str, str] | None] = {
    ("assets", "on"): ("assets", "on"),
    ("asset_config_note", "on"): ("asset_config_note", "on"),
    ("contracts", "on"): ("contracts", "on"),
    ("charges", "on"): None,
    ("documents", "on"): ("documents", "public"),
    ("kb", "view"): None,
    ("kb", "download"): None,
    ("quotes", "view"): ("quotes", "on"),
}


def shows(p: Principal, identifier: str, level: str = "on") -> bool:
    """Whether `p` sees the part of the account data that the customer privilege
    `identifier` (at `level`) governs; employees are asked the right that stands for it."""
    if not p.active:
        return False
    if identifier == "asset_config_note" and not shows(p, "assets"):
        return False  # the note needs the assets tab itself (SPEC §2, row 6)
    if p.is_customer:
        return p.can(identifier, level)
    if (identifier, level) not in _EMPLOYEE_EQUIVALENT:
        raise ValueError(f"no employee right stands for {identifier}={level}")
    right = _EMPLOYEE_EQUIVALENT[identifier, level]
    return right is None or p.can(*right)


async def _page(conn: Conn, sql: str, params: Params, limit: int, offset: int) -> Page:
    if limit < 1 or offset < 0:
        raise ValueError("limit must be positive and offset not negative")
    rows = await conn.fetch(f"{sql} LIMIT {params.add(limit + 1)} OFFSET {params.add(offset)}",
                            *params.values)
    more = len(rows) > limit
    return Page(rows[:limit], offset + limit if more else None)


# -- assets ---------------------------------------------------------------------------------


def _assets_sql(p: Principal, params: Params) -> str:
    note = ", c.config_note" if shows(p, "asset_config_note") else ""
    return f"""SELECT c.id, c.account_id, c.name, c.kind, c.serial{note}
                 FROM assets c WHERE {scope.accounts(p, params, 'c.account_id')}
                ORDER BY c.name, c.id"""


async def list_assets(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    """Every asset in scope (pickers, e.g. a ticket's linked asset)."""
    params = Params()
    return await conn.fetch(_assets_sql(p, params), *params.values)


async def assets_page(conn: Conn, p: Principal, *, limit: int, offset: int) -> Page:
    params = Params()
    return await _page(conn, _assets_sql(p, params), params, limit, offset)


# -- contracts ------------------------------------------------------------------------------

_CONTRACT_COLUMNS = "c.id, c.account_id, c.name, c.status, c.terms, c.starts_on, c.ends_on"


async def contracts_page(conn: Conn, p: Principal, *, limit: int, offset: int) -> Page:
    params = Params()
    return await _page(conn, f"""
        SELECT {_CONTRACT_COLUMNS} FROM contracts c
         WHERE {scope.accounts(p, params, 'c.account_id')}
         ORDER BY c.starts_on DESC NULLS LAST, c.id DESC""", params, limit, offset)


async def get_contract(conn: Conn, p: Principal, contract_id: int) -> asyncpg.Record | None:
    params = Params(contract_id)
    return await conn.fetchrow(
        f"""SELECT {_CONTRACT_COLUMNS}
              FROM contracts c WHERE c.id = $1 AND {scope.accounts(p, params, 'c.account_id')}""",
        *params.values)


async def list_contract_charges(conn: Conn, p: Principal, contract_id: int) -> list[asyncpg.Record]:
    """The contract's charges, or none at all without the `charges` privilege."""
    if not shows(p, "charges"):
        return []
    params = Params(contract_id)
    return await conn.fetch(
        f"""SELECT ch.id, ch.kind, ch.description, ch.quantity, ch.unit_price, ch.amount, ch.created_at
              FROM charges ch JOIN contracts c ON c.id = ch.contract_id
             WHERE ch.contract_id = $1 AND {scope.accounts(p, params, 'c.account_id')}
               AND {scope.children(p, params, 'charges', 'ch')}
             ORDER BY ch.created_at, ch.id""", *params.values)


# -- documents ------------------------------------------------------------------------------


async def documents_page(conn: Conn, p: Principal, *, limit: int, offset: int) -> Page:
    params = Params()
    return await _page(conn, f"""
        SELECT c.id, c.account_id, c.title, c.filename, c.content_type, c.size, c.is_public,
               c.created_at
          FROM documents c
         WHERE {scope.accounts(p, params, 'c.account_id')} AND {scope.documents(p)}
         ORDER BY c.title, c.id""", params, limit, offset)


async def get_document(conn: Conn, p: Principal, document_id: int) -> asyncpg.Record | None:
    """The document with its content, for a download."""
    params = Params(document_id)
    return await conn.fetchrow(
        f"""SELECT c.id, c.title, c.filename, c.content_type, c.size, b.data
              FROM documents c JOIN blobs b ON b.id = c.blob_id
             WHERE c.id = $1 AND {scope.accounts(p, params, 'c.account_id')} AND {scope.documents(p)}""",
        *params.values)


# -- quotes ---------------------------------------------------------------------------------

_QUOTE_SQL = """
    SELECT c.id, c.account_id, c.number, c.title, c.description, c.amount, c.status,
           c.valid_until, c.accepted_at, w.username AS accepted_by,
           coalesce(nullif(w.full_name, ''), w.username) AS accepted_by_name,
           (c.status = 'open' AND coalesce(c.valid_until < current_date, false)) AS expired,
           (c.status = 'open' AND (c.valid_until IS NULL OR c.valid_until >= current_date))
               AS acceptable
      FROM quotes c LEFT JOIN customer_web_users w ON w.id = c.accepted_by_webuser"""


async def quotes_page(conn: Conn, p: Principal, *, limit: int, offset: int) -> Page:
    params = Params()
    return await _page(conn, f"""{_QUOTE_SQL}
         WHERE {scope.accounts(p, params, 'c.account_id')}
         ORDER BY c.id DESC""", params, limit, offset)


async def get_quote(conn: Conn, p: Principal, quote_id: int) -> asyncpg.Record | None:
    params = Params(quote_id)
    return await conn.fetchrow(
        f"{_QUOTE_SQL} WHERE c.id = $1 AND {scope.accounts(p, params, 'c.account_id')}",
        *params.values)


async def accept_quote(conn: asyncpg.Connection, p: Principal, quote_id: int) -> asyncpg.Record | None:
    """Accept once, recording who and when; call inside a transaction. None if missing or out
    of scope; raises QuoteNotAcceptable (→ 409) if already accepted, declined or expired."""
    params = Params(quote_id)
    # FOR UPDATE: of two simultaneous acceptances the second waits and then sees 'accepted'.
    row = await conn.fetchrow(
        f"""SELECT c.id, c.number, c.status, coalesce(c.valid_until < current_date, false) AS expired
              FROM quotes c WHERE c.id = $1 AND {scope.accounts(p, params, 'c.account_id')}
               FOR UPDATE""", *params.values)
    if row is None:
        return None
    if not p.is_customer:
        # the record of who accepted names a customer web user
        raise QuoteNotAcceptable(f"quote {row['number']} can only be accepted by the customer")
    if row["status"] == "accepted":
        raise QuoteNotAcceptable(f"quote {row['number']} was already accepted")
    if row["status"] == "declined":
        raise QuoteNotAcceptable(f"quote {row['number']} was declined and cannot be accepted")
    if row["expired"]:
        raise QuoteNotAcceptable(f"quote {row['number']} has expired and cannot be accepted")
    await conn.execute(
        "UPDATE quotes SET status = 'accepted', accepted_at = now(), accepted_by_webuser = $2 WHERE id = $1",
        quote_id, p.id)
    return await get_quote(conn, p, quote_id)


# -- knowledge base (not tied to an account: customers see the public articles) -------------


async def kb_page(conn: Conn, p: Principal, *, limit: int, offset: int) -> Page:
    files = (", (SELECT count(*) FROM kb_files f WHERE f.article_id = c.id) AS file_count"
             if shows(p, "kb", "download") else "")
    return await _page(conn, f"""
        SELECT c.id, c.title, c.is_public, c.updated_at{files}
          FROM kb_articles c WHERE {scope.kb(p)}
         ORDER BY c.title, c.id""", Params(), limit, offset)


async def get_kb_article(conn: Conn, p: Principal, article_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT c.id, c.title, c.body, c.is_public, c.updated_at
              FROM kb_articles c WHERE c.id = $1 AND {scope.kb(p)}""", article_id)


async def list_kb_files(conn: Conn, p: Principal, article_id: int) -> list[asyncpg.Record]:
    """The article's files, or none at all below kb=download."""
    if not shows(p, "kb", "download"):
        return []
    return await conn.fetch(
        f"""SELECT f.id, f.filename, f.content_type, f.size
              FROM kb_files f JOIN kb_articles c ON c.id = f.article_id
             WHERE f.article_id = $1 AND {scope.kb(p)} ORDER BY f.filename, f.id""",
        article_id)


async def get_kb_file(conn: Conn, p: Principal, article_id: int, file_id: int) -> asyncpg.Record | None:
    """A file of the article with its content, for a download."""
    if not shows(p, "kb", "download"):
        return None
    return await conn.fetchrow(
        f"""SELECT f.id, f.filename, f.content_type, f.size, b.data
              FROM kb_files f JOIN kb_articles c ON c.id = f.article_id JOIN blobs b ON b.id = f.blob_id
             WHERE f.id = $2 AND f.article_id = $1 AND {scope.kb(p)}""", article_id, file_id)


# -- accounts -------------------------------------------------------------------------------


async def account_names(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    """The accounts `p` may see (filters and pickers)."""
    params = Params()
    return await conn.fetch(
        f"SELECT a.id, a.name FROM accounts a WHERE {scope.accounts(p, params, 'a.id')} ORDER BY a.name",
        *params.values)
