"""The chat history: messages in SQLite, each acknowledged only once it is committed.

One writer task owns every write (group commit, as PostgreSQL does it): ``add``
queues the message and waits; the writer takes everything queued, inserts it in
one transaction, and releases each waiter after the commit that holds its row.
A failed commit fails exactly the messages in it, so a 201 always means "on
disk", however many requests write at once. Reads use their own connection
(WAL lets them run beside the writer), and the newest messages are kept in
memory as JSON, so the page nearly every request wants costs no query.

This process must be the only writer of the file (the api runs as one replica
on SQLite); the cache of newest messages relies on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from .database import BUSY_TIMEOUT_MS, MEMORY, check_writable, open_database, utc_now_iso

log = logging.getLogger(__name__)

# The largest page a client may ask for; the newest this many stay in memory.
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# At most this many messages share one commit. A page of the newest 100 then always
# holds every message of the commit that answers it.
MAX_BATCH = DEFAULT_PAGE_SIZE
# After a failed write, readiness stays 503 this long even if a probe write passes: a
# near-full disk can take a probe's few bytes and still refuse messages.
WRITE_FAILURE_MEMORY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    author_username: str
    text: str
    created_at: str
    # The message as the wire carries it, encoded once for pages and streams alike.
    json: str = field(default="", compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        # The original's PascalCase names are the wire contract; id and created_at are ours.
        return {
            "id": self.id,
            "AuthorUsername": self.author_username,
            "Text": self.text,
            "created_at": self.created_at,
        }


def new_message(message_id: int, author_username: str, text: str, created_at: str) -> Message:
    encoded = json.dumps(
        {"id": message_id, "AuthorUsername": author_username, "Text": text, "created_at": created_at},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return Message(message_id, author_username, text, created_at, encoded)


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


class StoreUnavailable(Exception):
    """The database refused a write (full disk, lost volume, locked): nothing was stored."""


@dataclass(slots=True)
class _PendingWrite:
    author_username: str
    text: str
    done: asyncio.Future[tuple[Message, bytes]]


class _Probe:
    """A readiness write, queued like a message so it waits behind the same writer."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done


Listener = Callable[[list[Message]], None]


class MessageStore:
    """The chat history. ``add_and_page`` returns only once the message is committed."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, history_id: str, path: Path | None
    ) -> None:
        self._path = path
        self._writer = writer
        self._reader = reader
        self.history_id = history_id
        self._queue: asyncio.Queue[_PendingWrite | _Probe] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._recent: deque[Message] = deque(maxlen=MAX_PAGE_SIZE)
        self._latest_page = b"[]"
        self._last_id = 0
        self._last_write_failure: float | None = None
        self._listeners: list[Listener] = []

    @classmethod
    async def open(cls, path: str | Path | None) -> MessageStore:
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
        store._task = asyncio.create_task(store._write_forever(), name="synergychat-message-writer")
        return store

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.done.done():
                item.done.set_exception(StoreUnavailable("the message store closed"))
        if self._reader is not self._writer:
            await self._reader.close()
        await self._writer.close()

    def add_listener(self, listener: Listener) -> None:
        """``listener`` gets every committed batch, in order, after its writers are released."""
        self._listeners.append(listener)

    # Writing.

    async def add_and_page(self, author_username: str, text: str) -> tuple[Message, bytes]:
        """Store the message; return it and the latest page as of its commit (it is on it)."""
        if self._task is None or self._task.done():
            raise StoreUnavailable("the message store is not running")
        done: asyncio.Future[tuple[Message, bytes]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_PendingWrite(author_username, text, done))
        return await done

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            writes = [item for item in batch if isinstance(item, _PendingWrite)]
            probes = [item for item in batch if isinstance(item, _Probe)]
            try:
                stored = await self._commit(writes, bool(probes))
            except asyncio.CancelledError:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(StoreUnavailable("the message store closed"))
                raise
            except Exception as exc:
                self._last_write_failure = time.monotonic()
                log.error("could not store %d message(s): %s", len(writes), exc)
                failure = StoreUnavailable(str(exc) or type(exc).__name__)
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(failure)
                continue
            page = self._remember(stored)
            for item, message in zip(writes, stored):
                if not item.done.done():
                    item.done.set_result((message, page))
            for probe in probes:
                if not probe.done.done():
                    probe.done.set_result(None)
            if stored:
                for listener in self._listeners:
                    try:
                        listener(stored)
                    except Exception:
                        log.exception("a message listener failed")

    async def _commit(self, writes: list[_PendingWrite], probe: bool) -> list[Message]:
        """The batch as one INSERT statement, committed on its own (the writer connection
        is in autocommit mode), and the readiness probe's write if one is waiting.

        One trip to the connection's thread for a whole batch: under load each trip waits
        for the busy event loop to run its result, so the number of trips, not SQLite,
        bounds how many commits fit in a second (two trips halved the throughput).
        """
        created_at = utc_now_iso()
        stored: list[Message] = []
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
        return stored

    def _remember(self, stored: Sequence[Message]) -> bytes:
        """Add committed messages to the newest ones in memory; return the latest page."""
        if stored:
            self._recent.extend(stored)
            self._last_id = stored[-1].id
            self._latest_page = self._join(DEFAULT_PAGE_SIZE)
            self._last_write_failure = None  # a message was stored: writes work again
        return self._latest_page

    def _join(self, limit: int) -> bytes:
        newest = list(self._recent)[-limit:]
        return ("[" + ",".join(message.json for message in newest) + "]").encode()

    async def _load_recent(self) -> None:
        rows = await self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages ORDER BY id DESC LIMIT ?", (MAX_PAGE_SIZE,)
        )
        self._remember([new_message(*row) for row in reversed(rows)])

    # Reading.

    async def _read(self, query: str, params: tuple[object, ...]) -> list[aiosqlite.Row]:
        # One trip to the connection's thread (execute, then fetch, would be two or three).
        # In memory the reader is the writer: every write is one autocommitted statement,
        # so a read can't land inside a write's transaction.
        return list(await self._reader.execute_fetchall(query, params))

    async def page_json(self, limit: int, before: int | None = None) -> bytes:
        """The ``limit`` newest messages older than ``before``, oldest first, as a JSON array."""
        if before is None:
            if limit == DEFAULT_PAGE_SIZE:
                return self._latest_page
            return self._join(limit)  # the newest MAX_PAGE_SIZE are all in memory
        # An older page: SQLite builds the JSON, in the same shape as Message.json.
        query = """
            SELECT json_group_array(json_object(
                'id', id, 'AuthorUsername', author_username, 'Text', text, 'created_at', created_at))
            FROM (SELECT * FROM (SELECT * FROM messages WHERE id < ? ORDER BY id DESC LIMIT ?) ORDER BY id)
        """
        [(page,)] = await self._read(query, (before, limit))
        return page.encode() if isinstance(page, str) else bytes(page)

    async def after(self, after_id: int, limit: int) -> list[Message]:
        """Messages newer than ``after_id``, oldest first (a stream catching up)."""
        if self._recent and after_id >= self._recent[0].id - 1:
            newer = [message for message in self._recent if message.id > after_id]
            return newer[:limit]
        rows = await self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        return [new_message(*row) for row in rows]

    async def last_id(self) -> int:
        return self._last_id

    # Readiness.

    async def check(self) -> None:
        """Raise unless a write commits now, and none failed in the last few seconds."""
        if self._task is None or self._task.done():
            raise StoreUnavailable("the message writer is not running")
        if self._path is not None:
            # A lock held by another process shows here, without queueing behind it.
            await check_writable(self._path)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Probe(done))
        await done
        failed_at = self._last_write_failure
        if failed_at is not None and time.monotonic() - failed_at < WRITE_FAILURE_MEMORY_SECONDS:
            raise StoreUnavailable("a message write failed moments ago")
