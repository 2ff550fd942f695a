"""The crawler's counts in PostgreSQL: any number of crawler replicas, one walk of the catalogue.

The same data as SQLite's count store (``counts.py``), in tables of their own
(``crawl_*``: the api's tables may share the database). What several replicas need on
top, the :class:`~.count_store.CrawlFleet`, is done by the database:

- **The page cursor** (``crawl_state.next_page_url``) is leased: one replica at a time
  reads the next page, lists its books in ``crawl_work`` and moves the cursor on, in
  one transaction that holds only while its lease does.
- **Books** are taken from ``crawl_work`` with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
  leased for ``lease_seconds``, renewed while the book downloads. The counts are written
  in the transaction that removes the book from the queue, and only by the lease's owner:
  a replica whose lease ran out (it hung, or died and came back) writes nothing. A
  replica that dies loses its leases when they run out; another takes the book then.
- **The pace**: one row, ``crawl_pace.next_request_at``, booked with one UPDATE (its
  row lock orders the replicas), so the fleet's requests to the catalogue start at least
  ``CRAWLER_DELAY_SECONDS`` apart, however many replicas there are.

Every database failure comes out as :class:`~.store.StoreUnavailable`: the crawl pauses
on it and goes on when the database is back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager

import asyncpg

from ..stats import KeywordCount, KeywordTotals
from .count_store import CountedBook, CrawlFleet, CrawlPosition
from .database import utc_now_iso
from .pg_crawl_fleet import (
    Connection,
    PostgresCrawlFleet,
    connection,
    keyword_set,
    optional_text,
    transaction,
)
from .postgres import migrate, open_pool, text

log = logging.getLogger(__name__)

# SQLite's COUNT_MIGRATIONS in one step (the three of them), plus what a fleet shares.
PG_COUNT_MIGRATIONS = (
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
        last_error_message TEXT,
        books_total INTEGER,
        -- The replica reading the page at next_page_url, until when.
        page_owner TEXT,
        page_lease_until TIMESTAMPTZ
    );
    INSERT INTO crawl_state (id) VALUES (1);
    CREATE TABLE crawl_books (
        id BIGINT PRIMARY KEY,
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
    CREATE TABLE crawl_counts (
        keyword TEXT NOT NULL,
        book_id BIGINT NOT NULL REFERENCES crawl_books (id) ON DELETE CASCADE,
        count INTEGER NOT NULL CHECK (count > 0),
        PRIMARY KEY (keyword, book_id)
    );
    CREATE INDEX crawl_counts_by_book ON crawl_counts (book_id);
    CREATE INDEX crawl_counts_by_count ON crawl_counts (count);
    -- Books listed from a page (or to recount), not done yet; seq keeps the catalogue's order.
    CREATE TABLE crawl_work (
        book_id BIGINT PRIMARY KEY,
        title TEXT NOT NULL,
        text_url TEXT,
        charset TEXT,
        pass_number INTEGER NOT NULL,
        seq BIGSERIAL NOT NULL,
        lease_owner TEXT,
        lease_until TIMESTAMPTZ
    );
    CREATE INDEX crawl_work_by_seq ON crawl_work (seq);
    -- When the fleet's next request to the catalogue may start.
    CREATE TABLE crawl_pace (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        next_request_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
    );
    INSERT INTO crawl_pace (id) VALUES (1);
    """,
)
STORE_NAME = "crawler"
APPLICATION_NAME = "synergychat-crawler"
# Connections besides the /stats downloads (each holds one for its snapshot): the crawl,
# /status, /stats/totals and readiness.
EXTRA_CONNECTIONS = 4

_POSITION_COLUMNS = (
    "source_url, next_page_url, pass_number, pass_finished_at, pages_done,"
    " last_success_at, last_error_at, last_error_message, books_total"
)
# One /stats row as PostgreSQL writes it, compact like SQLite's json_object.
_ROW_JSON = (
    """format('{"Keyword":%s,"BookTitle":%s,"Count":%s}', to_json(c.keyword), to_json(b.title), c.count)"""
)


def _matching_counts(keywords: Sequence[str], title: str) -> tuple[str, list[object]]:
    """``FROM ... WHERE ...`` of the counts of ``keywords`` in books whose title contains ``title``."""
    source = (
        "FROM crawl_counts AS c JOIN crawl_books AS b ON b.id = c.book_id WHERE c.keyword = ANY($1::text[])"
    )
    params: list[object] = [list(keywords)]
    if title:
        # strpos, not LIKE: no wildcards to escape; folded by Python's lower() on both sides, as SQLite's.
        source += " AND strpos(b.title_folded, $2) > 0"
        params.append(text(title.lower()))
    return source, params


def _stats_query(columns: str, keywords: Sequence[str], title: str) -> tuple[str, list[object]]:
    source, params = _matching_counts(keywords, title)
    # COLLATE "C": code point order, as SQLite sorts, whatever the database's locale.
    order = 'c.count, b.title COLLATE "C", c.keyword COLLATE "C", b.id'
    return f"SELECT {columns} {source} ORDER BY {order}", params


class PostgresCountStore:
    """Counts, position and the fleet's leases in a PostgreSQL database other crawlers may share."""

    def __init__(self, pool: asyncpg.Pool, lease_seconds: float) -> None:
        self._pool = pool
        self._fleet = PostgresCrawlFleet(pool, lease_seconds)

    @classmethod
    async def open(cls, url: str, pool_size: int, lease_seconds: float) -> PostgresCountStore:
        pool = await open_pool(url, pool_size, APPLICATION_NAME)
        try:
            await migrate(pool, STORE_NAME, PG_COUNT_MIGRATIONS)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, lease_seconds)

    async def close(self) -> None:
        await self._pool.close()

    async def check(self) -> None:
        """A write, rolled back: a connection alone does not prove writes work (a read-only
        standby after a failover answers SELECT 1)."""
        async with self._connection() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute("UPDATE crawl_pace SET next_request_at = next_request_at WHERE id = 1")
            finally:
                await transaction.rollback()

    def fleet(self) -> CrawlFleet | None:
        return self._fleet

    def _connection(self) -> AbstractAsyncContextManager[Connection]:
        return connection(self._pool)

    def _transaction(self) -> AbstractAsyncContextManager[Connection]:
        return transaction(self._pool)

    # The position.

    async def position(self) -> CrawlPosition:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"SELECT {_POSITION_COLUMNS} FROM crawl_state WHERE id = 1")
        assert row is not None  # the migration inserts the one row
        return CrawlPosition(*row)

    async def start_pass(self, source_url: str, first_page_url: str, pass_number: int) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE crawl_state SET source_url = $1, next_page_url = $2, pass_number = $3,"
                " pass_finished_at = NULL, page_owner = NULL, page_lease_until = NULL WHERE id = 1",
                source_url,
                first_page_url,
                pass_number,
            )

    async def page_done(self, next_page_url: str | None) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE crawl_state SET next_page_url = $1, pages_done = pages_done + 1,"
                " pass_finished_at = $2 WHERE id = 1",
                next_page_url,
                None if next_page_url else utc_now_iso(),
            )

    async def record_books_total(self, books_total: int | None) -> None:
        async with self._connection() as conn:
            await conn.execute("UPDATE crawl_state SET books_total = $1 WHERE id = 1", books_total)

    async def record_error(self, message: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE crawl_state SET last_error_at = $1, last_error_message = $2 WHERE id = 1",
                utc_now_iso(),
                text(message),
            )

    # Books.

    async def needs_counting(self, book_id: int, keywords: Sequence[str], pass_number: int) -> bool:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT status, keywords, pass_number FROM crawl_books WHERE id = $1", book_id
            )
        if row is None:
            return True
        if row["status"] == "counted" and set(keywords) <= set(json.loads(row["keywords"])):
            return False
        return bool(row["pass_number"] != pass_number)

    async def save_counts(
        self, book: CountedBook, keywords: Sequence[str], counts: dict[str, int], pass_number: int
    ) -> None:
        now = utc_now_iso()
        found = [(keyword, count) for keyword, count in counts.items() if count > 0]
        async with self._transaction() as conn:
            await self._fleet.take_off_queue(conn, book.id)
            title = text(book.title)
            await conn.execute(
                "INSERT INTO crawl_books (id, title, title_folded, status, keywords, text_url, charset, reason,"
                " pass_number, updated_at) VALUES ($1, $2, $3, 'counted', $4, $5, $6, NULL, $7, $8)"
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, title_folded = excluded.title_folded,"
                " status = 'counted', keywords = excluded.keywords, text_url = excluded.text_url,"
                " charset = excluded.charset, reason = NULL, pass_number = excluded.pass_number,"
                " updated_at = excluded.updated_at",
                book.id,
                title,
                title.lower(),
                keyword_set(keywords),
                optional_text(book.text_url),
                optional_text(book.charset),
                pass_number,
                now,
            )
            await conn.execute("DELETE FROM crawl_counts WHERE book_id = $1", book.id)
            await conn.execute(
                "INSERT INTO crawl_counts (keyword, book_id, count)"
                " SELECT keyword, $2, count FROM unnest($1::text[], $3::integer[]) AS found(keyword, count)",
                [keyword for keyword, _ in found],
                book.id,
                [count for _, count in found],
            )
            await conn.execute("UPDATE crawl_state SET last_success_at = $1 WHERE id = 1", now)

    async def save_skip(self, book_id: int, title: str, reason: str, pass_number: int) -> None:
        async with self._transaction() as conn:
            await self._fleet.take_off_queue(conn, book_id)
            await conn.execute(
                "INSERT INTO crawl_books (id, title, title_folded, status, reason, pass_number, updated_at)"
                " VALUES ($1, $2, $3, 'skipped', $4, $5, $6)"
                " ON CONFLICT (id) DO UPDATE SET reason = excluded.reason,"
                " pass_number = excluded.pass_number, updated_at = excluded.updated_at",
                book_id,
                text(title),
                text(title).lower(),
                text(reason),
                pass_number,
                utc_now_iso(),
            )

    async def stale_books(self, keywords: Sequence[str]) -> list[CountedBook]:
        wanted = set(keywords)
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT id, title, keywords, text_url, charset FROM crawl_books"
                " WHERE status = 'counted' AND keywords <> $1 ORDER BY updated_at, id",
                keyword_set(keywords),
            )
        return [
            CountedBook(row["id"], row["title"], row["text_url"], row["charset"])
            for row in rows
            if not wanted <= set(json.loads(row["keywords"]))
        ]

    async def book_totals(self) -> dict[str, int]:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT status, count(*) FROM crawl_books GROUP BY status")
        totals = {"counted": 0, "skipped": 0}
        totals.update({status: number for status, number in rows})
        return totals

    # Reading the counts.

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        if not keywords:
            return []
        query, params = _stats_query("c.keyword, b.title, c.count", keywords, title)
        async with self._connection() as conn:
            rows = await conn.fetch(query, *params)
        return [
            {"Keyword": keyword, "BookTitle": book_title, "Count": count}
            for keyword, book_title, count in rows
        ]

    async def stats_json_pages(
        self, keywords: Sequence[str], title: str, rows_per_page: int
    ) -> AsyncGenerator[bytes, None]:
        """A cursor in a read-only REPEATABLE READ transaction: one snapshot for the whole
        download, a page read only once the caller asks for it (it waits for the client)."""
        if not keywords:
            return
        query, params = _stats_query(_ROW_JSON, keywords, title)
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            cursor = await conn.cursor(query, *params)
            while rows := await cursor.fetch(rows_per_page):
                yield ",".join(row[0] for row in rows).encode()

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        if not keywords:
            return {"totals": {}, "books": 0}
        source, params = _matching_counts(keywords, title)
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(f"SELECT c.keyword, sum(c.count) {source} GROUP BY c.keyword", *params)
            books = await conn.fetchval(f"SELECT count(DISTINCT c.book_id) {source}", *params)
        return {"totals": {keyword: int(total) for keyword, total in rows}, "books": books}
