"""The one way a principal's database work is opened: a transaction that runs as the role
`portald_web` with the principal named for the row-level security policies of
daemon/db/sql/008_row_level_security.sql, the second wall behind daemon/access/scope.py.

Both settings are transaction-local (`set_config(…, true)`), so the connection goes back to the
pool as the owner it was, naming nobody. The web layer's access middleware opens one such
transaction per request (`settled`, naming the principal in the statement that resolves the
session), on the connection it then hands to the handler. Work that serves no
principal (the mail worker, the scheduler, the CLI, migrations, the demo loader, the session
lookup before anyone is known) runs as the owner of the tables, which the policies let through.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from daemon.access.scope import Principal
from daemon.db.pool import user_error
from daemon.queries import principals as q

WEB_ROLE = "portald_web"


class CommitRefused(Exception):
    """The database refused the transaction at its end (a deferred check); the message is
    its own words, for the user."""


def principal_setting(p: Principal) -> str:
    """What `portald.principal` holds for `p`: `customer:<web user id>` or `employee:<id>`."""
    return f"{p.kind}:{p.id}"


@contextlib.asynccontextmanager
async def acting_as(conn: asyncpg.Connection, p: Principal, *,
                    commit_despite: tuple[type[BaseException], ...] = ()
                    ) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on `conn` as portald_web for `p`. It commits when the block ends, and also
    when it ends by one of `commit_despite` (the web layer's answers that are not failures of
    the work done: a redirect, a refusal whose own changes were already undone); anything else
    rolls it back. Raises CommitRefused when the commit itself is refused by a check the user
    can cause."""
    async with settled(conn, commit_despite=commit_despite):
        await q.act_as(conn, WEB_ROLE, principal_setting(p))
        yield conn


@contextlib.asynccontextmanager
async def settled(conn: asyncpg.Connection, *,
                  commit_despite: tuple[type[BaseException], ...] = ()
                  ) -> AsyncIterator[asyncpg.transaction.Transaction]:
    """A transaction on `conn`, ended as `acting_as` ends its own; the block names the
    principal itself (the web layer does so in its first statement, web/sessions.py
    `resolve_acting`)."""
    tr = conn.transaction()
    await tr.start()
    try:
        yield tr
    except commit_despite:
        await _commit(tr)
        raise
    except BaseException:
        # a connection that broke cannot roll back; the pool discards it on release
        with contextlib.suppress(Exception):
            await tr.rollback()
        raise
    await _commit(tr)


async def _commit(tr: asyncpg.transaction.Transaction) -> None:
    try:
        await tr.commit()
    except asyncpg.PostgresError as exc:
        message = user_error(exc)
        if message is None:
            raise
        raise CommitRefused(message) from None
