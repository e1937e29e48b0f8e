"""Applies the numbered `.sql` files of daemon/db/sql/ in order, each once, in its own
transaction, and records the checksum of each file applied.

A migration is history: once applied, its file must not change (a changed file would mean
databases migrated before and after the change differ without anyone knowing). So every run
compares each applied file's SHA-256 with the one recorded and refuses to go on, naming the
file, when they differ. Databases migrated before checksums were recorded get theirs recorded
the first time they are seen.

Two processes migrating at once serialise on an advisory lock; the second finds nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("portald.migrations")

MIGRATE_LOCK_KEY = 0x706F7274616C64  # "portald" — the portald_migrate advisory lock
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class MigrationMismatch(Exception):
    """An applied migration's file is not the file that was applied; the message names it."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"

    @property
    def filename(self) -> str:
        return f"{self.label}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("daemon.db.sql").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply what is missing; return the migrations applied now. Raises MigrationMismatch,
    before applying anything, when an applied migration's file has changed."""
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK_KEY)
    try:
        await _ensure_table(conn)
        done = await _applied(conn)
        available = available_migrations()
        await _check(conn, available, done)
        for mig in available:
            if mig.version in done:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version, mig.name, mig.checksum)
            log.info("applied migration %s", mig.label)
            applied_now.append(mig)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK_KEY)
    return applied_now


async def _ensure_table(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version    integer PRIMARY KEY,
               name       text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now(),
               checksum   text)"""
    )
    # databases migrated before checksums were recorded
    await conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")


async def _applied(conn: asyncpg.Connection) -> dict[int, str | None]:
    """Applied version → the checksum recorded for it (None: applied before checksums)."""
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def _check(conn: asyncpg.Connection, available: list[Migration],
                 done: dict[int, str | None]) -> None:
    for mig in available:
        if mig.version not in done:
            continue
        recorded = done[mig.version]
        if recorded is None:
            await conn.execute("UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                               mig.version, mig.checksum)
            log.info("recorded the checksum of migration %s", mig.label)
        elif recorded != mig.checksum:
            raise MigrationMismatch(
                f"migration {mig.filename} differs from the file applied to this database "
                f"(checksum {recorded[:12]}… recorded, {mig.checksum[:12]}… now); restore the "
                "applied file and put the change in a new migration")


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = set()
    if exists:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m for m in available_migrations() if m.version not in done]
