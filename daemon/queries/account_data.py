"""An account's own data beside its tickets: assets, contracts (and their charges), documents,
quotes, and the knowledge base. Conditions come from `daemon.scope`; columns a privilege hides
(an asset's configuration note) are not selected unless the principal has it."""

from __future__ import annotations

import asyncpg

from daemon import scope
from daemon.scope import Params, Principal

Conn = asyncpg.Connection | asyncpg.Pool


class QuoteNotAcceptable(Exception):
    """The quote exists and is in scope but cannot be accepted; the message says why."""


async def list_assets(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    params = Params()
    note = ", c.config_note" if p.is_employee or p.can("asset_config_note") else ""
    return await conn.fetch(
        f"""SELECT c.id, c.account_id, c.name, c.kind, c.serial{note}
              FROM assets c WHERE {scope.accounts(p, params, 'c.account_id')}
             ORDER BY c.name, c.id""", *params.values)


async def list_contracts(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    params = Params()
    return await conn.fetch(
        f"""SELECT c.id, c.account_id, c.name, c.status, c.terms, c.starts_on, c.ends_on
              FROM contracts c WHERE {scope.accounts(p, params, 'c.account_id')}
             ORDER BY c.starts_on DESC NULLS LAST, c.id DESC""", *params.values)


async def get_contract(conn: Conn, p: Principal, contract_id: int) -> asyncpg.Record | None:
    params = Params(contract_id)
    return await conn.fetchrow(
        f"""SELECT c.id, c.account_id, c.name, c.status, c.terms, c.starts_on, c.ends_on
              FROM contracts c WHERE c.id = $1 AND {scope.accounts(p, params, 'c.account_id')}""",
        *params.values)


async def list_contract_charges(conn: Conn, p: Principal, contract_id: int) -> list[asyncpg.Record]:
    params = Params(contract_id)
    return await conn.fetch(
        f"""SELECT ch.id, ch.kind, ch.description, ch.quantity, ch.unit_price, ch.amount, ch.created_at
              FROM charges ch JOIN contracts c ON c.id = ch.contract_id
             WHERE ch.contract_id = $1 AND {scope.accounts(p, params, 'c.account_id')}
             ORDER BY ch.id""", *params.values)


async def list_documents(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    params = Params()
    return await conn.fetch(
        f"""SELECT c.id, c.account_id, c.title, c.filename, c.content_type, c.size, c.created_at
              FROM documents c WHERE {scope.accounts(p, params, 'c.account_id')} AND {scope.public_only(p)}
             ORDER BY c.title, c.id""", *params.values)


async def get_document(conn: Conn, p: Principal, document_id: int) -> asyncpg.Record | None:
    params = Params(document_id)
    return await conn.fetchrow(
        f"""SELECT c.id, c.title, c.filename, c.content_type, c.size, b.data
              FROM documents c JOIN blobs b ON b.id = c.blob_id
             WHERE c.id = $1 AND {scope.accounts(p, params, 'c.account_id')} AND {scope.public_only(p)}""",
        *params.values)


async def list_quotes(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    params = Params()
    return await conn.fetch(
        f"""SELECT c.id, c.account_id, c.number, c.title, c.description, c.amount, c.status,
                   c.valid_until, c.accepted_at, w.username AS accepted_by,
                   (c.status = 'open' AND (c.valid_until IS NULL OR c.valid_until >= current_date))
                       AS acceptable
              FROM quotes c LEFT JOIN customer_web_users w ON w.id = c.accepted_by_webuser
             WHERE {scope.accounts(p, params, 'c.account_id')}
             ORDER BY c.id DESC""", *params.values)


async def accept_quote(conn: asyncpg.Connection, p: Principal, quote_id: int) -> asyncpg.Record | None:
    """Accept once, recording who and when. None if missing or out of scope; raises
    QuoteNotAcceptable (→ 409) if already accepted, declined or expired."""
    params = Params(quote_id)
    row = await conn.fetchrow(
        f"""SELECT c.id, c.number, c.status, c.valid_until < current_date AS expired
              FROM quotes c WHERE c.id = $1 AND {scope.accounts(p, params, 'c.account_id')}
               FOR UPDATE""", *params.values)
    if row is None:
        return None
    if row["status"] == "accepted":
        raise QuoteNotAcceptable(f"quote {row['number']} was already accepted")
    if row["status"] == "declined":
        raise QuoteNotAcceptable(f"quote {row['number']} was declined and cannot be accepted")
    if row["expired"]:
        raise QuoteNotAcceptable(f"quote {row['number']} has expired and cannot be accepted")
    await conn.execute(
        "UPDATE quotes SET status = 'accepted', accepted_at = now(), accepted_by_webuser = $2 WHERE id = $1",
        quote_id, p.id if p.is_customer else None)
    rows = [r for r in await list_quotes(conn, p) if r["id"] == quote_id]
    return rows[0] if rows else None


async def list_kb(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT c.id, c.title, c.is_public, c.updated_at,
                   (SELECT count(*) FROM kb_files f WHERE f.article_id = c.id) AS file_count
              FROM kb_articles c WHERE {scope.public_only(p)} ORDER BY c.title, c.id""")


async def get_kb_article(conn: Conn, p: Principal, article_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT c.id, c.title, c.body, c.is_public, c.updated_at
              FROM kb_articles c WHERE c.id = $1 AND {scope.public_only(p)}""", article_id)


async def list_kb_files(conn: Conn, p: Principal, article_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT f.id, f.filename, f.content_type, f.size
              FROM kb_files f JOIN kb_articles c ON c.id = f.article_id
             WHERE f.article_id = $1 AND {scope.public_only(p)} ORDER BY f.filename""", article_id)


async def get_kb_file(conn: Conn, p: Principal, article_id: int, file_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT f.id, f.filename, f.content_type, f.size, b.data
              FROM kb_files f JOIN kb_articles c ON c.id = f.article_id JOIN blobs b ON b.id = f.blob_id
             WHERE f.id = $2 AND f.article_id = $1 AND {scope.public_only(p)}""", article_id, file_id)


async def account_names(conn: Conn, p: Principal) -> list[asyncpg.Record]:
    """The accounts `p` may see (filters and pickers)."""
    params = Params()
    return await conn.fetch(
        f"SELECT a.id, a.name FROM accounts a WHERE {scope.accounts(p, params, 'a.id')} ORDER BY a.name",
        *params.values)
