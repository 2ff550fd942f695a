"""The crawler fleet's coordination in PostgreSQL: the page cursor's lease, the book queue and
its leases, and the fleet's pace (see ``pg_counts.py`` for the whole picture).

Also the connection helpers both modules use: every database failure comes out as
:class:`~.store.StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .count_store import ClaimedBook, CountedBook, LeaseLost
from .database import utc_now_iso
from .postgres import DATABASE_ERRORS, text
from .store import StoreUnavailable

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # asyncpg's proxy is generic only to type checkers
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:
    Connection = PoolConnectionProxy

_LIST_WORK = """
    INSERT INTO crawl_work (book_id, title, text_url, charset, pass_number)
    SELECT book.id, book.title, book.text_url, book.charset, $5
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
        WITH ORDINALITY AS book(id, title, text_url, charset, ordinal)
    -- Not a book done meanwhile (another replica counted it since the caller looked).
    WHERE NOT EXISTS (
        SELECT 1 FROM crawl_books AS done WHERE done.id = book.id
        AND ((done.status = 'counted' AND done.keywords = $6) OR (done.status = 'skipped' AND done.pass_number = $5))
    )
    ORDER BY book.ordinal
    ON CONFLICT (book_id) DO NOTHING
"""


# Listing books and taking a done book off the queue take this transaction lock (a key in
# the space of postgres.py's, "synchat" and a letter): a listing that looked at a book before
# another replica finished it must not list it again once that one has removed it.
WORK_LOCK = int.from_bytes(b"synchatW", "big")
# The longest a replica waits in line for its turn to ask the catalogue.
TURN_TIMEOUT_SECONDS = 3600.0


def keyword_set(keywords: Sequence[str]) -> str:
    """The keywords a book was counted for, as stored: a sorted JSON list."""
    return json.dumps(sorted(set(keywords)), ensure_ascii=False)


def optional_text(value: str | None) -> str | None:
    return None if value is None else text(value)


# What the count store takes for "the database does not answer": asyncpg's own, and its
# "another operation is in progress" on a connection the server cut in the middle of a query.
COUNT_DATABASE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, asyncpg.InternalClientError)


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    try:
        async with pool.acquire() as conn:
            yield conn
    except COUNT_DATABASE_ERRORS as exc:
        raise StoreUnavailable(f"the count database did not answer: {exc or type(exc).__name__}") from exc


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    async with connection(pool) as conn, conn.transaction():
        yield conn


def new_owner() -> str:
    """This process's name on its leases: the host (a pod's name), the pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class PostgresCrawlFleet:
    """How crawler replicas on one database split the walk (``CrawlFleet``)."""

    def __init__(self, pool: asyncpg.Pool, lease_seconds: float) -> None:
        self._pool = pool
        self.owner = new_owner()
        self.lease_seconds = lease_seconds
        # Books this process took from the queue and has not let go of: their writes are guarded.
        self._claimed: set[int] = set()

    async def take_off_queue(self, conn: Connection, book_id: int) -> None:
        """In a writing transaction: if this process took the book from the queue, remove it from
        there, as long as the lease is still this process's; else the write must not happen."""
        if book_id not in self._claimed:
            return  # a book tried again later, outside the queue: its counts replace, never add
        await conn.execute("SELECT pg_advisory_xact_lock($1)", WORK_LOCK)
        removed = await conn.fetchval(
            "DELETE FROM crawl_work WHERE book_id = $1 AND lease_owner = $2 RETURNING book_id",
            book_id,
            self.owner,
        )
        if removed is None:
            raise LeaseLost(f"book {book_id}: another crawler took it over after this one's lease ran out")

    async def claim_page(self, page_url: str, seconds: float) -> bool:
        async with connection(self._pool) as conn:
            taken = await conn.fetchval(
                "UPDATE crawl_state SET page_owner = $1,"
                " page_lease_until = clock_timestamp() + make_interval(secs => $2)"
                " WHERE id = 1 AND next_page_url = $3"
                " AND (page_owner IS NULL OR page_owner = $1 OR page_lease_until < clock_timestamp())"
                " RETURNING id",
                self.owner,
                seconds,
                page_url,
            )
        return taken is not None

    async def page_read(
        self,
        page_url: str,
        next_page_url: str | None,
        books: Sequence[CountedBook],
        pass_number: int,
        keywords: Sequence[str],
    ) -> None:
        async with transaction(self._pool) as conn:
            moved = await conn.fetchval(
                "UPDATE crawl_state SET next_page_url = $1, pages_done = pages_done + 1,"
                " pass_finished_at = $2, page_owner = NULL, page_lease_until = NULL"
                " WHERE id = 1 AND page_owner = $3 AND next_page_url = $4 RETURNING id",
                next_page_url,
                None if next_page_url else utc_now_iso(),
                self.owner,
                page_url,
            )
            if moved is None:
                raise LeaseLost(
                    f"catalogue page {page_url}: another crawler read it after this one's lease ran out"
                )
            await self._list(conn, books, pass_number, keywords)

    async def enqueue(self, books: Sequence[CountedBook], pass_number: int, keywords: Sequence[str]) -> None:
        async with transaction(self._pool) as conn:
            await self._list(conn, books, pass_number, keywords)

    async def _list(
        self, conn: Connection, books: Sequence[CountedBook], pass_number: int, keywords: Sequence[str]
    ) -> None:
        if not books:
            return
        await conn.execute("SELECT pg_advisory_xact_lock($1)", WORK_LOCK)
        await conn.execute(
            _LIST_WORK,
            [book.id for book in books],
            [text(book.title) for book in books],
            [optional_text(book.text_url) for book in books],
            [optional_text(book.charset) for book in books],
            pass_number,
            keyword_set(keywords),
        )

    async def claim_book(self) -> ClaimedBook | None:
        async with connection(self._pool) as conn:
            row = await conn.fetchrow(
                "UPDATE crawl_work AS work SET lease_owner = $1,"
                " lease_until = clock_timestamp() + make_interval(secs => $2)"
                " FROM (SELECT book_id FROM crawl_work"
                "       WHERE lease_until IS NULL OR lease_until < clock_timestamp()"
                "       ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) AS free"
                " WHERE work.book_id = free.book_id"
                " RETURNING work.book_id, work.title, work.text_url, work.charset, work.pass_number",
                self.owner,
                self.lease_seconds,
            )
        if row is None:
            return None
        self._claimed.add(row["book_id"])
        book = CountedBook(row["book_id"], row["title"], row["text_url"], row["charset"])
        return ClaimedBook(book, row["pass_number"])

    @asynccontextmanager
    async def holding(self, book_id: int) -> AsyncIterator[None]:
        try:
            async with self._renewing(f"book {book_id}", functools.partial(self._renew_book, book_id)):
                yield
        finally:
            self._claimed.discard(book_id)

    def holding_page(self, page_url: str) -> AbstractAsyncContextManager[None]:
        return self._renewing(
            f"catalogue page {page_url}", functools.partial(self.claim_page, page_url, self.lease_seconds)
        )

    @asynccontextmanager
    async def _renewing(self, what: str, renew: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
        """Call ``renew`` every third of the lease while the block runs: two renewals may fail
        (a slow database) before the lease runs out."""

        async def keep_renewing() -> None:
            while True:
                await asyncio.sleep(self.lease_seconds / 3)
                try:
                    await renew()
                except StoreUnavailable as exc:
                    log.warning("could not renew the lease on %s: %s", what, exc or type(exc).__name__)

        renewal = asyncio.create_task(keep_renewing(), name=f"synergychat-lease {what}")
        try:
            yield
        finally:
            renewal.cancel()
            # Whatever ended the renewals, it is not the work's failure: the work says its own.
            await asyncio.wait([renewal])
            if not renewal.cancelled() and renewal.exception() is not None:
                log.warning("renewing the lease on %s stopped: %r", what, renewal.exception())

    async def _renew_book(self, book_id: int) -> None:
        async with connection(self._pool) as conn:
            await conn.execute(
                "UPDATE crawl_work SET lease_until = clock_timestamp() + make_interval(secs => $3)"
                " WHERE book_id = $1 AND lease_owner = $2",
                book_id,
                self.owner,
                self.lease_seconds,
            )

    async def books_listed(self) -> int:
        async with connection(self._pool) as conn:
            return int(await conn.fetchval("SELECT count(*) FROM crawl_work"))

    async def start_pass_after(self, source_url: str, first_page_url: str, pass_number: int) -> bool:
        async with connection(self._pool) as conn:
            started = await conn.fetchval(
                "UPDATE crawl_state SET source_url = $1, next_page_url = $2, pass_number = $3 + 1,"
                " pass_finished_at = NULL, page_owner = NULL, page_lease_until = NULL,"
                # Another catalogue: the old one's size says nothing about it.
                " books_total = CASE WHEN source_url IS DISTINCT FROM $1 THEN NULL ELSE books_total END"
                " WHERE id = 1 AND pass_number = $3 RETURNING id",
                source_url,
                first_page_url,
                pass_number,
            )
        return started is not None

    async def request_turn(self, delay_seconds: float) -> float:
        # The pace row stays locked from the look until the wait is over: the replicas queue
        # on the lock, and each next one reads the time the previous one set as it went. A
        # late wake-up delays the fleet's next request, never brings it closer.
        async with transaction(self._pool) as conn:
            wait = await conn.fetchval(
                "SELECT extract(epoch FROM greatest(next_request_at, clock_timestamp()) - clock_timestamp())::float8"
                " FROM crawl_pace WHERE id = 1 FOR UPDATE",
                # Behind the other replicas' turns: longer than a statement may take.
                timeout=TURN_TIMEOUT_SECONDS,
            )
            if wait > 0:
                await asyncio.sleep(wait)
            granted: float = await conn.fetchval(
                "UPDATE crawl_pace SET next_request_at = clock_timestamp() + make_interval(secs => $1::float8)"
                " WHERE id = 1 RETURNING extract(epoch FROM next_request_at)::float8 - $1::float8",
                delay_seconds,
            )
        return granted
