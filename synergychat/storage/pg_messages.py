"""The chat history in PostgreSQL: any number of api replicas, one chat.

Writes go through the same writer task and group commit as SQLite's (see
``group_commit.py``): one INSERT per batch, one transaction, each waiter released
after the commit holding its row.

Ids increase in commit order, as every reader sees them. A sequence would not do
that: two replicas can take ids 7 and 8 and commit 8 first, and a stream that
resumes "after 8" would never see 7. So every write transaction takes one
transaction-level advisory lock (``MESSAGE_ID_LOCK``) before it picks its ids as
``max(id) + 1 ...`` and holds it to its commit: id assignment and commit happen in
one order for all replicas, and a reader that sees id N has seen every smaller
one. It costs one lock per batch, not per message.

Every replica keeps the newest messages in memory. They stay right when other
replicas write because each commit sends ``NOTIFY synergychat_messages`` with its
newest id (ids only, never bodies), and each replica's :class:`~.pg_follow.Follower`
then reads what it has not seen, by id, from the database. A lost notification
costs latency, never a message: the follower also reads after reconnecting and
once a second regardless.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .database import utc_now_iso
from .group_commit import Commit, GroupCommitStore, PendingWrite
from .pg_follow import NOTIFY_CHANNEL, Follower
from .postgres import DATABASE_ERRORS, MESSAGE_ID_LOCK, connect, migrate, open_pool
from .store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    CommitOutcomeUnknown,
    Message,
    StoreUnavailable,
    new_message,
)

log = logging.getLogger(__name__)

# The same tables as SQLite's MESSAGE_MIGRATIONS, step for step.
PG_MESSAGE_MIGRATIONS = (
    # Ids are picked under MESSAGE_ID_LOCK (see the module's doc), not by a sequence.
    """
    CREATE TABLE messages (
        id BIGINT PRIMARY KEY,
        author_username TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # Which history this is: ids restart in a new database, and a page must not take the
    # new history's ids for the old one's.
    """
    CREATE TABLE history (id TEXT NOT NULL);
    INSERT INTO history (id) VALUES (replace(gen_random_uuid()::text, '-', ''));
    """,
    # Readiness commits a real write here: a connection alone doesn't prove writes work.
    """
    ALTER TABLE history ADD COLUMN checked_at TEXT;
    """,
)
STORE_NAME = "messages"
APPLICATION_NAME = "synergychat-api"

_MESSAGE_COLUMNS = "id, author_username, text, created_at"
# Reads the newest id under the lock, so the ids follow every commit before this one.
_INSERT_BATCH = """
    WITH inserted AS (
        INSERT INTO messages (id, author_username, text, created_at)
        SELECT previous.id + item.number, item.author_username, item.text, $3
        FROM (SELECT coalesce(max(id), 0) AS id FROM messages) AS previous,
             unnest($1::text[], $2::text[]) WITH ORDINALITY AS item(author_username, text, number)
        RETURNING id
    )
    SELECT min(id) - 1 FROM inserted
"""


class PostgresMessageStore(GroupCommitStore):
    """The chat history in a PostgreSQL database that other api replicas share."""

    def __init__(self, pool: asyncpg.Pool, url: str, history_id: str) -> None:
        super().__init__(history_id)
        self._pool = pool
        # Whoever updates the newest messages in memory (the writer after a commit, the
        # follower after a notification) holds this, so they are added in id order.
        self._sync_lock = asyncio.Lock()
        self._follower = Follower(
            lambda: connect(url, APPLICATION_NAME), self.catch_up, lambda: self._last_id
        )

    @classmethod
    async def open(cls, url: str, pool_size: int) -> PostgresMessageStore:
        pool = await open_pool(url, pool_size, APPLICATION_NAME)
        try:
            await migrate(pool, STORE_NAME, PG_MESSAGE_MIGRATIONS)
            history_id = await pool.fetchval("SELECT id FROM history")
            store = cls(pool, url, history_id)
            async with store._sync_lock:
                rows = await pool.fetch(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages ORDER BY id DESC LIMIT $1", MAX_PAGE_SIZE
                )
                store._remember([new_message(*row) for row in reversed(rows)])
            await store._follower.start()
        except BaseException:
            await pool.close()
            raise
        store._start_writer()
        return store

    async def close(self) -> None:
        await self._stop_writer()
        await self._follower.stop()
        await self._pool.close()

    # Writing.

    async def _commit(self, writes: list[PendingWrite], probe: bool) -> Commit:
        created_at = utc_now_iso()
        # One round trip opens the transaction and takes the id lock; one inserts; one
        # notifies and commits (NOTIFY is sent at commit, and only if it commits).
        opening = ["BEGIN"]
        if writes:
            opening.append(f"SELECT pg_advisory_xact_lock({MESSAGE_ID_LOCK})")
        if probe:
            opening.append("UPDATE history SET checked_at = now()::text")
        async with self._pool.acquire() as conn:
            try:
                await conn.execute("; ".join(opening))
                previous_id = self._last_id
                if writes:
                    authors = [item.author_username for item in writes]
                    texts = [item.text for item in writes]
                    previous_id = await conn.fetchval(_INSERT_BATCH, authors, texts, created_at)
            except BaseException:
                await _roll_back(conn)
                raise
            stored = [
                new_message(previous_id + offset, item.author_username, item.text, created_at)
                for offset, item in enumerate(writes, start=1)
            ]
            notify = f"NOTIFY {NOTIFY_CHANNEL}, '{stored[-1].id}'; " if stored else ""
            try:
                await conn.execute(notify + "COMMIT")
            except DATABASE_ERRORS as exc:
                # The COMMIT may have happened with its answer lost on the way back: look.
                stored_after_all = await self._were_stored(stored)
                if stored_after_all is None:
                    raise CommitOutcomeUnknown(
                        f"the database connection broke during the commit ({exc or type(exc).__name__})"
                    ) from exc
                if not stored_after_all:
                    raise
        return Commit(previous_id, stored)

    async def _were_stored(self, stored: list[Message]) -> bool | None:
        """Whether ``stored`` was committed after all (None: the database can't say now).

        Looked up under the id lock, which the lost transaction held to its end: once this
        one has it, that one is over, committed or rolled back, and the rows tell which.
        """
        if not stored:
            return False
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MESSAGE_ID_LOCK)
                rows = await conn.fetch(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id BETWEEN $1 AND $2 ORDER BY id",
                    stored[0].id,
                    stored[-1].id,
                )
        except DATABASE_ERRORS:
            return None
        expected = [(m.id, m.author_username, m.text, m.created_at) for m in stored]
        return [tuple(row) for row in rows] == expected

    async def _settle(self, commit: Commit) -> tuple[bytes, list[Message]]:
        """Other replicas may have committed since this one last looked (ids between what
        it holds and this commit's): read those first, so the page and the listeners see
        every message, in order."""
        async with self._sync_lock:
            if commit.messages and commit.previous_id > self._last_id:
                try:
                    await self._read_newer(through=commit.previous_id)
                except StoreUnavailable as exc:
                    # Committed all the same: answer with what is known; the follower reads
                    # the gap (and this batch) from the database when it can.
                    log.warning("could not read the messages before a commit: %s", exc)
                    self._follower.wake()
                    room = max(DEFAULT_PAGE_SIZE - len(commit.messages), 0)
                    newest = list(self._recent)[len(self._recent) - room :]
                    joined = ",".join(message.json for message in [*newest, *commit.messages])
                    return f"[{joined}]".encode(), []
            page, new = self._remember(commit.messages)
        return page, new

    # Following other replicas.

    async def catch_up(self) -> None:
        """Add every message committed since the newest one in memory, and pass it on."""
        async with self._sync_lock:
            await self._read_newer()

    async def _read_newer(self, through: int | None = None) -> None:
        # The sync lock is held. Published chunk by chunk, as each is remembered: streams
        # must get what the memory gets, in order.
        while True:
            rows = await self._read_after(self._last_id, MAX_PAGE_SIZE, through)
            _, new = self._remember(rows)
            self._publish(new)
            if len(rows) < MAX_PAGE_SIZE:
                return

    # Reading.

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(query, *args)
        except DATABASE_ERRORS as exc:
            raise StoreUnavailable(f"the database did not answer: {exc or type(exc).__name__}") from exc

    async def _read_after(self, after_id: int, limit: int, through: int | None = None) -> list[Message]:
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3",
            after_id,
            through if through is not None else 2**63 - 1,
            limit,
        )
        return [new_message(*row) for row in rows]

    async def _read_page_before(self, before: int, limit: int) -> bytes:
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id < $1 ORDER BY id DESC LIMIT $2", before, limit
        )
        return ("[" + ",".join(new_message(*row).json for row in reversed(rows)) + "]").encode()

    async def last_id(self) -> int:
        # Another replica may have issued newer ids than this one has heard of: a stream
        # resuming from one must not be told its history was replaced.
        await self.catch_up()
        return self._last_id

    async def _check_connection(self) -> None:
        await self._fetch("SELECT 1")


async def _roll_back(conn: PoolConnectionProxy[asyncpg.Record]) -> None:
    if conn.is_closed():
        return
    try:
        await conn.execute("ROLLBACK")
    except DATABASE_ERRORS:
        conn.terminate()  # the pool replaces it
