"""The database connections of mail: the outbox worker's and the inbound listener's own pools.

Like the request pool they skip asyncpg's reset on release (`daemon.db.pool.keep_session`
says why): it would cost a round trip per release, several per mail and per reply.
"""

from __future__ import annotations

import asyncpg

from daemon.db.pool import COMMAND_TIMEOUT_S, CONNECT_TIMEOUT_S, keep_session

INBOUND_POOL_MAX = 6  # the MTA's sessions side by side share these


async def create_inbound_pool(dsn: str) -> asyncpg.Pool:
    """The inbound listener's connections. Unlike the worker's, they commit with the WAL
    flushed: a reply answered 250 is one the MTA forgets, so it must survive a crash."""
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=INBOUND_POOL_MAX, timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S, max_inactive_connection_lifetime=300,
        reset=keep_session, server_settings={"application_name": "portald-inbound"})
