"""The crawler's store in SQLite: keyword counts per book, which books are done, the crawl position.

One crawler (or several on one machine, sharing the file). ``count_store.py`` says what
every count store promises; ``pg_counts.py`` keeps the same in PostgreSQL for many replicas.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import aiosqlite

from ..stats import KeywordCount, KeywordTotals
from .count_store import CountedBook, CrawlFleet, CrawlPosition
from .database import check_writable, open_database, utc_now_iso
from .stats_reader import StatsFileReader

# The crawler's counts. Books are keyed by their Gutenberg id; a count row exists
# only where the keyword occurs (zero needs no row) and is replaced, never added to.
# `crawl_state` is one row: where the walk of the catalogue stands.
COUNT_MIGRATIONS = (
    """
    CREATE TABLE crawl_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        source_url TEXT,
        next_page_url TEXT,
        pass_number INTEGER NOT NULL DEFAULT 0,
        pass_finished_at TEXT,
        pages_done INTEGER NOT NULL DEFAULT 0,
        last_success_at TEXT,
        last_error_at TEXT,
        last_error_message TEXT
    );
    INSERT INTO crawl_state (id) VALUES (1);
    CREATE TABLE books (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        title_folded TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('counted', 'skipped')),
        keywords TEXT NOT NULL DEFAULT '[]',
        text_url TEXT,
        charset TEXT,
        reason TEXT,
        pass_number INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE counts (
        keyword TEXT NOT NULL,
        book_id INTEGER NOT NULL REFERENCES books (id) ON DELETE CASCADE,
        count INTEGER NOT NULL CHECK (count > 0),
        PRIMARY KEY (keyword, book_id)
    ) WITHOUT ROWID;
    CREATE INDEX counts_by_book ON counts (book_id);
    """,
    # /stats in Count order without sorting every row first: a download streams from
    # its first milliseconds, and its sort holds only the rows of one count at a time.
    """
    CREATE INDEX counts_by_count ON counts (count);
    """,
    # The catalogue's size (its pages' `count`), so the crawl's progress is known after a
    # restart that does not read a page for a while (waiting between passes, catalogue down).
    """
    ALTER TABLE crawl_state ADD COLUMN books_total INTEGER;
    """,
)


def _keyword_set(keywords: Sequence[str]) -> str:
    return json.dumps(sorted(set(keywords)), ensure_ascii=False)


def _matching_counts(keywords: Sequence[str], title: str, index: str = "") -> tuple[str, list[object]]:
    """``FROM ... WHERE ...`` of the counts of ``keywords`` in books whose title contains
    ``title`` (``c`` = counts, ``b`` = books), and its parameters."""
    source = (
        f"FROM counts AS c{index} JOIN books AS b ON b.id = c.book_id"
        f" WHERE c.keyword IN ({', '.join('?' * len(keywords))})"
    )
    params: list[object] = list(keywords)
    if title:
        # instr, not LIKE: no wildcards to escape, and lower() folds beyond ASCII.
        source += " AND instr(b.title_folded, ?) > 0"
        params.append(title.lower())
    return source, params


def _stats_query(
    columns: str, keywords: Sequence[str], title: str, in_count_order: bool = False
) -> tuple[str, list[object]]:
    """The rows of ``/stats`` in their order (``columns`` over ``c`` = counts, ``b`` = books),
    and the query's parameters.

    ``in_count_order``: walk the counts by the ``count`` index (the planner would rather
    look the keywords up and sort everything, which is quicker to the last row for one
    keyword, but nothing comes out until all of it is sorted).
    """
    index = " INDEXED BY counts_by_count" if in_count_order else ""
    source, params = _matching_counts(keywords, title, index)
    return f"SELECT {columns} {source} ORDER BY c.count, b.title, c.keyword, b.id", params


# One /stats row as SQLite writes it: the JSON object, as bytes (no decode, no re-encode).
_ROW_JSON = "CAST(json_object('Keyword', c.keyword, 'BookTitle', b.title, 'Count', c.count) AS BLOB)"


class SqliteCountStore:
    """Keyword counts per book, which books are done, and the crawl position, in SQLite.

    One connection, and a lock around every use of it: the crawl's multi-statement
    writes must not interleave with each other or let a ``/stats`` read see a book
    half-replaced. Two things stay off that lock, because they can be slow or must
    be quick: streaming ``/stats`` from a file (a connection of its own per
    download) and the readiness probe on a file (a short-lived connection).
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path | None = None) -> None:
        self._conn = conn
        self._path = path
        self._lock = asyncio.Lock()
        self._reader = StatsFileReader(path) if path else None
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path | None) -> SqliteCountStore:
        return cls(await open_database(path, COUNT_MIGRATIONS), Path(path) if path else None)

    async def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.close()
        await self._conn.close()

    async def check(self) -> None:
        """Raise unless the store is open and its file can take a write lock now (readiness).

        Nothing here waits for the store's connection or its lock: a long ``/stats/totals``
        or a crawl write there is no reason to call the crawler unready (ten whole
        ``/stats`` built under that lock made /readyz 503 in 7 of 11 probes). The probe
        is one trip to a worker thread, on a short-lived connection of its own.
        """
        self._require_open()
        if self._path is None:  # in memory: nothing else can lock it
            await self._conn.execute("SELECT 1")
            return
        await check_writable(self._path)

    def fleet(self) -> CrawlFleet | None:
        # One crawler walks the catalogue of a file (several sharing it each walk it whole).
        return None

    def _require_open(self) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError("the count store is closed")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.rollback()
                raise
            await self._conn.commit()

    async def position(self) -> CrawlPosition:
        async with (
            self._lock,
            self._conn.execute(
                "SELECT source_url, next_page_url, pass_number, pass_finished_at, pages_done,"
                " last_success_at, last_error_at, last_error_message, books_total"
                " FROM crawl_state WHERE id = 1"
            ) as cursor,
        ):
            row = await cursor.fetchone()
        assert row is not None  # the first migration inserts the one row
        return CrawlPosition(*row)

    async def start_pass(self, source_url: str, first_page_url: str, pass_number: int) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE crawl_state SET source_url = ?, next_page_url = ?, pass_number = ?,"
                " pass_finished_at = NULL WHERE id = 1",
                (source_url, first_page_url, pass_number),
            )

    async def page_done(self, next_page_url: str | None) -> None:
        """One more page finished; ``None`` ends the pass (the catalogue has no next page)."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE crawl_state SET next_page_url = ?, pages_done = pages_done + 1,"
                " pass_finished_at = ? WHERE id = 1",
                (next_page_url, None if next_page_url else utc_now_iso()),
            )

    async def record_books_total(self, books_total: int | None) -> None:
        """The catalogue's size as its latest page said (None: unknown, a new catalogue)."""
        async with self._transaction() as conn:
            await conn.execute("UPDATE crawl_state SET books_total = ? WHERE id = 1", (books_total,))

    async def record_error(self, message: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE crawl_state SET last_error_at = ?, last_error_message = ? WHERE id = 1",
                (utc_now_iso(), message),
            )

    async def needs_counting(self, book_id: int, keywords: Sequence[str], pass_number: int) -> bool:
        """False if the book is counted for all ``keywords``, or was tried and given up this pass."""
        async with (
            self._lock,
            self._conn.execute(
                "SELECT status, keywords, pass_number FROM books WHERE id = ?", (book_id,)
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None:
            return True
        if row["status"] == "counted" and set(keywords) <= set(json.loads(row["keywords"])):
            return False
        return bool(row["pass_number"] != pass_number)

    async def save_counts(
        self,
        book: CountedBook,
        keywords: Sequence[str],
        counts: dict[str, int],
        pass_number: int,
    ) -> None:
        """Replace the book's counts with these, in one transaction (a restart never sees half)."""
        now = utc_now_iso()
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO books (id, title, title_folded, status, keywords, text_url, charset, reason,"
                " pass_number, updated_at) VALUES (?, ?, ?, 'counted', ?, ?, ?, NULL, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, title_folded = excluded.title_folded,"
                " status = 'counted', keywords = excluded.keywords, text_url = excluded.text_url,"
                " charset = excluded.charset, reason = NULL, pass_number = excluded.pass_number,"
                " updated_at = excluded.updated_at",
                (
                    book.id,
                    book.title,
                    book.title.lower(),
                    _keyword_set(keywords),
                    book.text_url,
                    book.charset,
                    pass_number,
                    now,
                ),
            )
            await conn.execute("DELETE FROM counts WHERE book_id = ?", (book.id,))
            await conn.executemany(
                "INSERT INTO counts (keyword, book_id, count) VALUES (?, ?, ?)",
                [(keyword, book.id, count) for keyword, count in counts.items() if count > 0],
            )
            await conn.execute("UPDATE crawl_state SET last_success_at = ? WHERE id = 1", (now,))

    async def save_skip(self, book_id: int, title: str, reason: str, pass_number: int) -> None:
        """Remember that the book was given up this pass; a counted book keeps its counts."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO books (id, title, title_folded, status, reason, pass_number, updated_at)"
                " VALUES (?, ?, ?, 'skipped', ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET reason = excluded.reason,"
                " pass_number = excluded.pass_number, updated_at = excluded.updated_at",
                (book_id, title, title.lower(), reason, pass_number, utc_now_iso()),
            )

    async def stale_books(self, keywords: Sequence[str]) -> list[CountedBook]:
        """Counted books that lack a count for one of ``keywords``, in the order they were counted."""
        wanted = set(keywords)
        async with (
            self._lock,
            self._conn.execute(
                "SELECT id, title, keywords, text_url, charset FROM books"
                " WHERE status = 'counted' AND keywords != ? ORDER BY updated_at, id",
                (_keyword_set(keywords),),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            CountedBook(row["id"], row["title"], row["text_url"], row["charset"])
            for row in rows
            if not wanted <= set(json.loads(row["keywords"]))
        ]

    async def book_totals(self) -> dict[str, int]:
        """How many books are counted and how many are skipped (given up, for now)."""
        async with (
            self._lock,
            self._conn.execute("SELECT status, COUNT(*) FROM books GROUP BY status") as cursor,
        ):
            rows = await cursor.fetchall()
        totals = {"counted": 0, "skipped": 0}
        totals.update({status: number for status, number in rows})
        return totals

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        """Counts for exactly these keywords, in books whose title contains ``title``
        (case-insensitively; empty keeps all), ``Count`` ascending."""
        if not keywords:
            return []
        query, params = _stats_query("c.keyword, b.title, c.count", keywords, title)
        async with self._lock, self._conn.execute(query, params) as cursor:
            rows = await cursor.fetchall()
        return [
            {"Keyword": keyword, "BookTitle": book_title, "Count": count}
            for keyword, book_title, count in rows
        ]

    async def stats_json_pages(
        self, keywords: Sequence[str], title: str, rows_per_page: int
    ) -> AsyncGenerator[bytes, None]:
        """``stats`` as UTF-8 JSON, ``rows_per_page`` objects at a time joined by commas
        (the caller adds the brackets and the commas between pages). Use it in ``aclosing``.

        Over a whole catalogue ``stats`` is ~600k rows (~50 MB of JSON). Built whole, one
        body per request, ten clients that never read held ~500 MB. A page at a time, a
        download holds one page; the caller writes it and waits for the client before
        asking for the next. SQLite writes each row's JSON (no dicts, no ``json.dumps``
        on the event loop) as bytes (no decode, no re-encode).

        The rows come in ``count`` index order; SQLite sorts only the rows of one count
        by title (a few hundred), so the first page is out in milliseconds. A file is
        read on a connection of its own, whose read transaction is one snapshot for the
        whole download, however the crawl writes meanwhile.
        """
        if not keywords:
            return
        # In memory: sorted whole at the first step (a small database, by nature), so
        # that the rows written by the crawl on the same connection during a download
        # are not in it; a file: a snapshot of its own (below), in count order.
        query, params = _stats_query(_ROW_JSON, keywords, title, in_count_order=self._reader is not None)
        if self._reader is None:
            # In memory only the store's connection sees the data: take the lock per page.
            async with self._lock:
                cursor = await self._conn.execute(query, params)
            try:
                while True:
                    async with self._lock:
                        rows = await cursor.fetchmany(rows_per_page)
                    if not rows:
                        return
                    yield b",".join(row[0] for row in rows)
            finally:
                async with self._lock:
                    await cursor.close()
        # A file: a WAL reader of its own, so neither the crawl nor readiness waits for it.
        # The store must be open still (not closing): it is what readiness reports.
        self._require_open()
        async with aclosing(self._reader.pages(query, params, rows_per_page)) as pages:
            async for page in pages:
                yield page

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        """What ``stats`` would sum to, summed by SQLite: per keyword, and the books with a match.

        The bot needs only this; over a whole catalogue ``stats`` is ~600k rows.
        """
        if not keywords:
            return {"totals": {}, "books": 0}
        source, params = _matching_counts(keywords, title)
        async with self._lock:
            async with self._conn.execute(
                f"SELECT c.keyword, SUM(c.count) {source} GROUP BY c.keyword", params
            ) as cursor:
                per_keyword = {keyword: total for keyword, total in await cursor.fetchall()}
            async with self._conn.execute(f"SELECT COUNT(DISTINCT c.book_id) {source}", params) as cursor:
                row = await cursor.fetchone()
        assert row is not None  # COUNT answers one row, zero or not
        return {"totals": per_keyword, "books": row[0]}
