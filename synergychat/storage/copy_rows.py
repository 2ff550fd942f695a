"""What copying a SQLite store into PostgreSQL needs whatever the store: the file read without
changing it, its rows in batches, and rows compared and written batch by batch.

``copy_messages.py`` and ``copy_counts.py`` copy one store each with these; the command
that runs them is ``copy_to_postgres.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

import asyncpg
from asyncpg.exceptions import LockNotAvailableError
from asyncpg.pool import PoolConnectionProxy

from .legacy_import import SQLITE_HEADER
from .postgres import text

# Rows read from SQLite and written to PostgreSQL at a time: memory stays the same however
# long the history, and each COPY is big enough that its round trip costs nothing.
BATCH_ROWS = 10_000
# A progress line on stderr after each this many rows.
PROGRESS_ROWS = 50_000
# Longest one statement of the copy may take (a COPY of a batch, a count of a big table);
# the pools' own limit (5 s) is for requests.
STATEMENT_TIMEOUT_SECONDS = 600.0
# How long the copy waits for a lock an api or a crawler holds before it gives up.
LOCK_TIMEOUT = "10s"
# Shown as the client's application_name: not counted as an api or a crawler.
APPLICATION_NAME = "synergychat-copy"

Row = tuple[Any, ...]
if TYPE_CHECKING:  # asyncpg's proxy is generic only to type checkers
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:
    Connection = PoolConnectionProxy


class CopyRefused(Exception):
    """The copy can't or must not happen (a file it can't read, a database holding another
    history, ...): one line for the user, naming the variable or argument; nothing changed."""


def optional_text(value: object) -> object:
    """A value as PostgreSQL stores it: text without NUL (``postgres.text``), anything else as is."""
    return text(value) if isinstance(value, str) else value


async def stored_rows(
    batches: AsyncIterator[list[Row]], replaced: list[int] | None = None
) -> AsyncIterator[list[Row]]:
    """Rows as PostgreSQL stores them (no NUL in text); ``replaced`` counts the rows changed."""
    async for batch in batches:
        rows = []
        for row in batch:
            stored = tuple(optional_text(value) for value in row)
            if replaced is not None and stored != row:
                replaced[0] += 1
            rows.append(stored)
        yield rows


def nul_note(replaced: int) -> str:
    """What a copy's summary adds when ``replaced`` rows held a NUL character."""
    if not replaced:
        return ""
    return (
        f"; {replaced:,} of them held a NUL character, which PostgreSQL's text can't:"
        " stored with U+FFFD in its place"
    )


class SqliteSnapshot:
    """A user's SQLite file, opened read-only, in one read transaction: every read sees the
    file as it was when the first one began.

    Nothing is written to the file, and it is never migrated. Without a ``-wal`` or
    ``-journal`` beside it no process has changes pending in it (an open WAL database
    always has its ``-wal``), so it is opened immutable: SQLite then creates nothing
    beside it either, and a read-only volume works. With one, SQLite must read the
    write-ahead log (committed messages may be only there): read-only mode, which needs
    the folder writable for the ``-shm`` index, as any reader of a WAL file does.
    """

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        # How the user named it, for every line about it: ``API_DB_FILEPATH='/data/messages.db'``.
        self.label = label
        self._conn: sqlite3.Connection | None = None

    def read_header(self) -> bytes:
        """The file's first bytes (SQLite's header, or what else it is)."""
        try:
            with self.path.open("rb") as file:
                return file.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            raise CopyRefused(f"{self.label}: no such file") from None
        except IsADirectoryError:
            raise CopyRefused(f"{self.label}: is a folder, not a database file") from None
        except OSError as exc:
            raise CopyRefused(f"{self.label}: cannot read it: {exc.strerror or exc}") from None

    def open(self) -> None:
        pending = any(
            self.path.with_name(self.path.name + suffix).exists() for suffix in ("-wal", "-journal")
        )
        uri = self.path.absolute().as_uri() + ("?mode=ro" if pending else "?mode=ro&immutable=1")
        try:
            # Autocommit, so the BEGIN below is the one transaction, and the thread-pool may
            # use the connection from any of its threads (one at a time).
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5)
        except sqlite3.Error as exc:
            raise CopyRefused(f"{self.label}: cannot open it: {exc}") from None
        try:
            conn.execute("BEGIN")
            # The first read: SQLite reads the write-ahead log now, or fails.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            hint = ""
            if pending and "readonly" in str(exc):
                hint = (
                    ": its write-ahead log (-wal) can only be read in a writable folder; mount it"
                    " writable, or start and stop the api on it once (which folds the log into the file)"
                )
            raise CopyRefused(f"{self.label}: cannot read it: {exc}{hint}") from None
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        assert self._conn is not None, "open() first"
        return self._conn

    def one(self, query: str, params: Sequence[object] = ()) -> Row:
        try:
            row = self._connection().execute(query, params).fetchone()
        except sqlite3.Error as exc:
            raise CopyRefused(f"{self.label}: cannot read it: {exc}") from None
        assert row is not None, query
        return tuple(row)

    def user_version(self) -> int:
        return int(self.one("PRAGMA user_version")[0])

    def tables(self) -> set[str]:
        try:
            rows = self._connection().execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {row[0] for row in rows}
        except sqlite3.Error as exc:
            raise CopyRefused(f"{self.label}: cannot read it: {exc}") from None

    async def batches(self, query: str, params: Sequence[object] = ()) -> AsyncIterator[list[Row]]:
        """The rows of ``query``, ``BATCH_ROWS`` at a time, each read in a worker thread."""
        conn = self._connection()
        try:
            cursor = await asyncio.to_thread(conn.execute, query, params)
            while rows := await asyncio.to_thread(cursor.fetchmany, BATCH_ROWS):
                yield rows
        except sqlite3.Error as exc:
            raise CopyRefused(f"{self.label}: cannot read it: {exc}") from None

    def one_after_snapshot(self, query: str, params: Sequence[object] = ()) -> Row:
        """``query`` answered as the file is now, not as the snapshot had it (ends the snapshot)."""
        self._connection().execute("COMMIT")
        return self.one(query, params)


async def database_row(conn: Connection, query: str, *args: object) -> Row:
    """The one row ``query`` answers (in the caller's transaction)."""
    row = await conn.fetchrow(query, *args, timeout=STATEMENT_TIMEOUT_SECONDS)
    assert row is not None, query
    return tuple(row)


async def postgres_batches(conn: Connection, query: str, *args: object) -> AsyncIterator[list[Row]]:
    """The rows of ``query`` from a cursor (in the caller's transaction), a batch at a time."""
    cursor = await conn.cursor(query, *args, timeout=STATEMENT_TIMEOUT_SECONDS)
    while rows := await cursor.fetch(BATCH_ROWS, timeout=STATEMENT_TIMEOUT_SECONDS):
        yield [tuple(row) for row in rows]


async def first_difference(
    left: AsyncIterator[list[Row]], right: AsyncIterator[list[Row]]
) -> tuple[Row | None, Row | None] | None:
    """The first pair of rows that differ, in order (None for a side that ended), or None
    when both give the same rows. Batch by batch: memory stays small."""
    left_rows: list[Row] = []
    right_rows: list[Row] = []
    while True:
        if not left_rows:
            left_rows = list(reversed(await anext(left, [])))
        if not right_rows:
            right_rows = list(reversed(await anext(right, [])))
        if not left_rows and not right_rows:
            return None
        if not left_rows or not right_rows or left_rows[-1] != right_rows[-1]:
            return (left_rows[-1] if left_rows else None, right_rows[-1] if right_rows else None)
        left_rows.pop()
        right_rows.pop()


class Progress:
    """Rows written so far, said on stderr every ``PROGRESS_ROWS``."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._next_report = PROGRESS_ROWS

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.done >= self._next_report and self.done < self.total:
            percent = 100 * self.done // max(self.total, 1)
            print(
                f"synergychat: {self.what}: {self.done:,} of {self.total:,} ({percent} %)", file=self._stream
            )
            self._stream.flush()
            while self._next_report <= self.done:
                self._next_report += PROGRESS_ROWS


async def copy_batches(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    batches: AsyncIterator[list[Row]],
    progress: Progress,
) -> None:
    """Each batch into ``table`` with one binary COPY, in the caller's transaction."""
    async for batch in batches:
        await conn.copy_records_to_table(
            table, records=batch, columns=list(columns), timeout=STATEMENT_TIMEOUT_SECONDS
        )
        progress.advance(len(batch))


async def hold_locks(conn: Connection, label: str, *statements: str) -> None:
    """Run the locking ``statements`` in the caller's transaction; a lock still held by someone
    else after ``LOCK_TIMEOUT`` is a refusal (a running api or crawler, most likely), said
    about the database ``label`` names."""
    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        for statement in statements:
            await conn.execute(statement, timeout=STATEMENT_TIMEOUT_SECONDS)
    except LockNotAvailableError:
        raise CopyRefused(
            f"{label}: another process held the tables for more than {LOCK_TIMEOUT}: stop the api"
            " and the crawlers using the database, then run this again; nothing was changed"
        ) from None
    await conn.execute("SET LOCAL lock_timeout = DEFAULT")


async def other_sessions(conn: Connection, application_name: str) -> int:
    """How many other connections to this database say they are ``application_name``."""
    (found,) = await database_row(
        conn,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = $1 AND pid <> pg_backend_pid()",
        application_name,
    )
    return int(found)
