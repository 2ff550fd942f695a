"""SQLite stores through aiosqlite: opening, versioned migrations, the message store.

Every store opens its own file (or memory) with :func:`open_database` and brings
its schema up to date with :func:`migrate`, which applies the numbered steps the
file has not seen yet (``PRAGMA user_version`` remembers how far it got).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

MEMORY = ":memory:"


async def open_database(path: str | Path | None) -> aiosqlite.Connection:
    """Open (creating parent folders) a SQLite file tuned for a small, durable service.

    WAL lets readers run beside the writer; ``synchronous=FULL`` makes a commit
    durable before we acknowledge it, so a 201 survives a kill or power loss.
    """
    target = str(path) if path else MEMORY
    if target != MEMORY:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(target)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA busy_timeout = 5000")
        if target != MEMORY:
            await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


async def migrate(conn: aiosqlite.Connection, steps: Sequence[str]) -> int:
    """Apply the schema steps after ``user_version``, each in its own transaction."""
    async with conn.execute("PRAGMA user_version") as cursor:
        (version,) = await cursor.fetchone()
    if version > len(steps):
        raise RuntimeError(
            f"database schema version {version} is newer than this program knows ({len(steps)})"
        )
    for number, step in enumerate(steps[version:], start=version + 1):
        # executescript would commit on its own; BEGIN ... COMMIT keeps a step atomic.
        await conn.executescript(f"BEGIN;\n{step}\nPRAGMA user_version = {number};\nCOMMIT;")
        log.info("database migrated to schema version %d", number)
    return len(steps)


# Readiness must not wait long behind another writer: that *is* the failure it reports.
PROBE_BUSY_TIMEOUT_SECONDS = 1.0


async def check_writable(conn: aiosqlite.Connection) -> None:
    """Raise unless the database file can take a write lock right now (readiness).

    The probe uses its own short-lived connection: a write lock taken and rolled
    back on the store's shared connection could roll back a concurrent insert.
    """
    async with conn.execute("PRAGMA database_list") as cursor:
        rows = await cursor.fetchall()
    path = next((row[2] for row in rows if row[1] == "main"), "")
    if not path:  # in memory: nothing else can lock it
        await conn.execute("SELECT 1")
        return
    async with aiosqlite.connect(path, timeout=PROBE_BUSY_TIMEOUT_SECONDS) as probe:
        await probe.execute("BEGIN IMMEDIATE")
        await probe.rollback()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    author_username: str
    text: str
    created_at: str

    def to_json(self) -> dict[str, object]:
        # The original's PascalCase names are the wire contract; id and created_at are ours.
        return {
            "id": self.id,
            "AuthorUsername": self.author_username,
            "Text": self.text,
            "created_at": self.created_at,
        }


MESSAGE_MIGRATIONS = (
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        author_username TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
)

_MESSAGE_COLUMNS = "id, author_username, text, created_at"


def _message(row: aiosqlite.Row) -> Message:
    return Message(row["id"], row["author_username"], row["text"], row["created_at"])


class MessageStore:
    """The chat history. ``add`` returns only once the message is committed."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: str | Path | None) -> MessageStore:
        conn = await open_database(path)
        try:
            await migrate(conn, MESSAGE_MIGRATIONS)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def check(self) -> None:
        await check_writable(self._conn)

    async def add(self, author_username: str, text: str) -> Message:
        created_at = utc_now_iso()
        async with self._conn.execute(
            "INSERT INTO messages (author_username, text, created_at) VALUES (?, ?, ?)",
            (author_username, text, created_at),
        ) as cursor:
            message_id = cursor.lastrowid
        await self._conn.commit()
        return Message(message_id, author_username, text, created_at)

    async def page_json(self, limit: int, before: int | None = None) -> str:
        """The ``limit`` newest messages older than ``before``, oldest first, as a JSON array.

        SQLite builds the JSON (the same shape as ``Message.to_json``): this is the
        hot path of GET and POST /messages, and it is three times faster than
        building Python objects row by row.
        """
        where, params = ("WHERE id < ?", (before, limit)) if before is not None else ("", (limit,))
        query = f"""
            SELECT json_group_array(json_object(
                'id', id, 'AuthorUsername', author_username, 'Text', text, 'created_at', created_at))
            FROM (SELECT * FROM (SELECT * FROM messages {where} ORDER BY id DESC LIMIT ?) ORDER BY id)
        """
        async with self._conn.execute(query, params) as cursor:
            (page,) = await cursor.fetchone()
        return page

    async def after(self, after_id: int, limit: int) -> list[Message]:
        """Messages newer than ``after_id``, oldest first (a stream catching up)."""
        async with self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_message(row) for row in rows]

    async def last_id(self) -> int:
        async with self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages") as cursor:
            (last,) = await cursor.fetchone()
        return last
