"""Opening a SQLite database and bringing its schema up to date (shared by every store).

Every store opens its own file (or memory) with :func:`open_database` and brings
its schema up to date with :func:`migrate`, which applies the numbered steps the
file has not seen yet (``PRAGMA user_version`` remembers how far it got).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

MEMORY = ":memory:"
# How long a connection waits for another one's write lock before "database is locked".
BUSY_TIMEOUT_MS = 5000


async def open_database(
    path: str | Path | None, migrations: Sequence[str], *, autocommit: bool = False
) -> aiosqlite.Connection:
    """Open (creating parent folders) a SQLite file tuned for a small, durable service,
    with its schema brought up to date by ``migrations``.

    ``autocommit``: no implicit transactions; each statement commits on its own unless
    the caller says ``BEGIN``.

    WAL lets readers run beside the writer; ``synchronous=FULL`` makes a commit
    durable before we acknowledge it, so a 201 survives a kill or power loss.
    """
    target = str(path) if path else MEMORY
    if target != MEMORY:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        # Opened once here first: when aiosqlite fails to open a file, its worker thread
        # outlives the failure and later reports to a closed event loop (a second,
        # confusing traceback after the real error).
        sqlite3.connect(target).close()
    conn = (
        await aiosqlite.connect(target, isolation_level=None)
        if autocommit
        else await aiosqlite.connect(target)
    )
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if target != MEMORY:
            await use_wal(conn)
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await migrate(conn, migrations)
    except BaseException:
        await conn.close()
        raise
    return conn


async def use_wal(conn: aiosqlite.Connection) -> None:
    """Switch the file to WAL (a property of the file: whoever opens it first sets it).

    The switch needs an exclusive lock, and SQLite answers "database is locked"
    at once, without waiting on busy_timeout, when another connection holds the
    file at that moment (crawlers sharing a fresh folder): so wait here instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or loop.time() > deadline:
                raise
        await asyncio.sleep(0.01)


async def _user_version(conn: aiosqlite.Connection) -> int:
    """How many schema steps the file has had (``migrate`` keeps it)."""
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    assert row is not None  # the pragma always answers one row
    return int(row[0])


async def migrate(conn: aiosqlite.Connection, steps: Sequence[str]) -> int:
    """Apply the schema steps after ``user_version``, all in one write transaction.

    Several processes may open one fresh file at the same moment (two crawlers
    sharing CRAWLER_DB_PATH): ``BEGIN IMMEDIATE`` takes the write lock first
    (waiting up to busy_timeout), and ``user_version`` is read again inside it,
    so whoever comes second sees the first one's steps and applies none twice.
    """
    version = await _user_version(conn)
    if version == len(steps):
        return version  # up to date: no write lock taken on every start
    await conn.execute("BEGIN IMMEDIATE")
    try:
        version = await _user_version(conn)
        if version > len(steps):
            raise RuntimeError(
                f"database schema version {version} is newer than this program knows ({len(steps)})"
            )
        for number, step in enumerate(steps[version:], start=version + 1):
            # Statement by statement: executescript would commit, ending the lock early.
            for statement in split_statements(step):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number}")
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    if version < len(steps):
        log.info("database migrated from schema version %d to %d", version, len(steps))
    return len(steps)


def split_statements(script: str) -> list[str]:
    """The complete SQL statements of ``script`` (semicolons inside strings or triggers kept)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\n;"):
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()!r}")
    return statements


# Readiness must not wait long behind another writer: that *is* the failure it reports.
PROBE_BUSY_TIMEOUT_SECONDS = 0.8


def existing_file_uri(path: Path) -> str:
    """A URI that opens ``path`` only if it exists: a lost volume must not pass for an empty one."""
    return f"{path.absolute().as_uri()}?mode=rw"


def _probe_write_lock(path: Path) -> None:
    conn = sqlite3.connect(existing_file_uri(path), timeout=PROBE_BUSY_TIMEOUT_SECONDS, uri=True)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
    finally:
        conn.close()


async def check_writable(path: Path) -> None:
    """Raise unless the database file exists and can take a write lock right now (readiness).

    One trip to a worker thread, on a short-lived connection of its own: a lock taken
    and rolled back on a store's connection could roll back its writes, and waiting for
    that connection would make a busy store look unready.
    """
    await asyncio.to_thread(_probe_write_lock, path)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
