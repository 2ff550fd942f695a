"""The chat history in SQLite: the default store, for one api process.

The writer task, group commit and the newest messages in memory come from
:class:`GroupCommitStore`; this module says how SQLite stores and reads them.
Reads use their own connection (WAL lets them run beside the writer).

This process must be the only writer of the file (the api runs as one replica
on SQLite); the cache of newest messages relies on it. Several replicas share
a PostgreSQL database instead (``pg_messages.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiosqlite

from .database import BUSY_TIMEOUT_MS, MEMORY, check_writable, open_database, utc_now_iso
from .group_commit import Commit, GroupCommitStore, PendingWrite
from .store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Message, StoreUnavailable, new_message

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MESSAGE_MIGRATIONS",
    "Message",
    "SqliteMessageStore",
    "StoreUnavailable",
    "new_message",
]

log = logging.getLogger(__name__)

MESSAGE_MIGRATIONS = (
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        author_username TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # Which history this is: ids restart in a new database (or in memory after a restart),
    # and a page must not take the new history's ids for the old one's.
    """
    CREATE TABLE history (id TEXT NOT NULL);
    INSERT INTO history (id) VALUES (lower(hex(randomblob(16))));
    """,
    # Readiness commits a real write here: a write lock alone succeeds on a full disk.
    """
    ALTER TABLE history ADD COLUMN checked_at TEXT;
    """,
)

_MESSAGE_COLUMNS = "id, author_username, text, created_at"


class SqliteMessageStore(GroupCommitStore):
    """The chat history in one SQLite file (or memory). ``add_and_page`` returns only once
    the message is committed."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, history_id: str, path: Path | None
    ) -> None:
        super().__init__(history_id)
        self._path = path
        self._writer = writer
        self._reader = reader

    @classmethod
    async def open(cls, path: str | Path | None) -> SqliteMessageStore:
        # Autocommit: each write statement is its own durable transaction (see _commit).
        file = Path(path) if path and str(path) != MEMORY else None
        writer = await open_database(file, MESSAGE_MIGRATIONS, autocommit=True)
        reader = writer  # in memory there is only the one connection
        try:
            if file is not None:
                reader = await aiosqlite.connect(file)
                await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            async with writer.execute("SELECT id FROM history") as cursor:
                row = await cursor.fetchone()
            assert row is not None  # the second migration inserts it
            store = cls(writer, reader, row[0], file)
            await store._load_recent()
        except BaseException:
            if reader is not writer:
                await reader.close()
            await writer.close()
            raise
        store._start_writer()
        return store

    async def close(self) -> None:
        await self._stop_writer()
        if self._reader is not self._writer:
            await self._reader.close()
        await self._writer.close()

    async def _commit(self, writes: list[PendingWrite], probe: bool) -> Commit:
        """The batch as one INSERT statement, committed on its own (the writer connection
        is in autocommit mode), and the readiness probe's write if one is waiting.

        One trip to the connection's thread for a whole batch: under load each trip waits
        for the busy event loop to run its result, so the number of trips, not SQLite,
        bounds how many commits fit in a second (two trips halved the throughput).
        """
        created_at = utc_now_iso()
        stored: list[Message] = []
        first = self._last_id + 1
        if writes:
            # One statement holds the write lock from its first row to its commit, so
            # AUTOINCREMENT gives the batch consecutive ids ending at the last one.
            values = ", ".join(["(?, ?, ?)"] * len(writes))
            params = [value for item in writes for value in (item.author_username, item.text, created_at)]
            row = await self._writer.execute_insert(
                f"INSERT INTO messages (author_username, text, created_at) VALUES {values}", params
            )
            assert row is not None
            first = row[0] - len(writes) + 1
            stored = [
                new_message(first + offset, item.author_username, item.text, created_at)
                for offset, item in enumerate(writes)
            ]
        if probe:
            await self._writer.execute("UPDATE history SET checked_at = ?", (created_at,))
        return Commit(first - 1, stored)

    async def _load_recent(self) -> None:
        rows = await self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages ORDER BY id DESC LIMIT ?", (MAX_PAGE_SIZE,)
        )
        self._remember([new_message(*row) for row in reversed(rows)])

    async def _read(self, query: str, params: tuple[object, ...]) -> list[aiosqlite.Row]:
        # One trip to the connection's thread (execute, then fetch, would be two or three).
        # In memory the reader is the writer: every write is one autocommitted statement,
        # so a read can't land inside a write's transaction.
        return list(await self._reader.execute_fetchall(query, params))

    async def _read_page_before(self, before: int, limit: int) -> bytes:
        # SQLite builds the JSON, in the same shape as Message.json.
        query = """
            SELECT json_group_array(json_object(
                'id', id, 'AuthorUsername', author_username, 'Text', text, 'created_at', created_at))
            FROM (SELECT * FROM (SELECT * FROM messages WHERE id < ? ORDER BY id DESC LIMIT ?) ORDER BY id)
        """
        [(page,)] = await self._read(query, (before, limit))
        return page.encode() if isinstance(page, str) else bytes(page)

    async def _read_after(self, after_id: int, limit: int) -> list[Message]:
        rows = await self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        return [new_message(*row) for row in rows]

    async def _check_connection(self) -> None:
        if self._path is not None:
            # A lock held by another process shows here, without queueing behind it.
            await check_writable(self._path)
