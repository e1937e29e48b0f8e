"""The database connections of mail: the outbox worker's and the inbound listener's own pools.

Everything mail does on them keeps its settings to the transaction (`set_config(..., true)`,
transaction-scoped advisory locks) and never LISTENs on them, so a connection handed back has
nothing of the session to undo: asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN,
RESET ALL) would only cost a round trip per release, several per mail and per reply. A
transaction still open on release is rolled back by asyncpg all the same.
"""

from __future__ import annotations

import asyncpg

from daemon.db.pool import COMMAND_TIMEOUT_S, CONNECT_TIMEOUT_S

INBOUND_POOL_MAX = 6  # the MTA's sessions side by side share these


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing (see the module's words)."""


async def create_inbound_pool(dsn: str) -> asyncpg.Pool:
    """The inbound listener's connections. Unlike the worker's, they commit with the WAL
    flushed: a reply answered 250 is one the MTA forgets, so it must survive a crash."""
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=INBOUND_POOL_MAX, timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S, max_inactive_connection_lifetime=300,
        reset=keep_session, server_settings={"application_name": "portald-inbound"})
