"""What the crawler needs from a count store, whichever database holds the counts.

Two stores keep this promise: SQLite's (``counts.py``, the default: one crawler, or
several on one machine sharing a file) and PostgreSQL's (``pg_counts.py``, any number
of crawler replicas on one database). ``crawl.py`` and ``crawler.py`` see only
:class:`CountStore`. A store that several replicas share also has a
:class:`CrawlFleet` (``fleet()``): the leases and the pace that let the replicas split
one walk of the catalogue between them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from ..stats import KeywordCount, KeywordTotals


@dataclass(frozen=True, slots=True)
class CrawlPosition:
    """Where the walk stands. ``next_page_url`` None: no pass running (finished or none yet)."""

    source_url: str | None
    next_page_url: str | None
    pass_number: int
    pass_finished_at: str | None
    pages_done: int
    last_success_at: str | None
    last_error_at: str | None
    last_error_message: str | None
    # How many books the catalogue at ``source_url`` holds, as its latest page said.
    books_total: int | None = None


@dataclass(frozen=True, slots=True)
class CountedBook:
    id: int
    title: str
    text_url: str | None
    charset: str | None


@dataclass(frozen=True, slots=True)
class ClaimedBook:
    """A book of the shared work queue, leased to this crawler, and the pass it was listed in."""

    book: CountedBook
    pass_number: int


class LeaseLost(Exception):
    """This crawler's lease on a book (or the page cursor) ran out and another crawler took
    it over: what this one found is dropped, nothing was written."""


class CountStore(Protocol):
    """Keyword counts per book, which books are done, and where the walk of the catalogue stands.

    A count is replaced, never added to, so writing a book's counts again gives the same
    rows. Readers see a book's counts whole or not at all.
    """

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Raise unless the store can be used now (readiness); quick, and never waits
        behind a long ``/stats`` read."""

    def fleet(self) -> CrawlFleet | None:
        """The coordination of crawlers sharing this store, or None: this crawler walks alone."""

    async def position(self) -> CrawlPosition: ...

    async def start_pass(self, source_url: str, first_page_url: str, pass_number: int) -> None: ...

    async def page_done(self, next_page_url: str | None) -> None:
        """One more page finished; ``None`` ends the pass (the catalogue has no next page)."""

    async def record_books_total(self, books_total: int | None) -> None:
        """The catalogue's size as its latest page said (None: unknown, a new catalogue)."""

    async def record_error(self, message: str) -> None: ...

    async def needs_counting(self, book_id: int, keywords: Sequence[str], pass_number: int) -> bool:
        """False if the book is counted for all ``keywords``, or was tried and given up this pass."""
        ...

    async def save_counts(
        self, book: CountedBook, keywords: Sequence[str], counts: dict[str, int], pass_number: int
    ) -> None:
        """Replace the book's counts with these, in one transaction (a restart never sees half).
        A book this crawler claimed from a shared queue is written only while its lease holds
        (:class:`LeaseLost` otherwise), and leaves the queue in the same transaction."""

    async def save_skip(self, book_id: int, title: str, reason: str, pass_number: int) -> None:
        """Remember that the book was given up this pass; a counted book keeps its counts."""

    async def stale_books(self, keywords: Sequence[str]) -> list[CountedBook]:
        """Counted books that lack a count for one of ``keywords``, in the order they were counted."""
        ...

    async def book_totals(self) -> dict[str, int]:
        """How many books are counted and how many are skipped (given up, for now)."""
        ...

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        """Counts for exactly these keywords, in books whose title contains ``title``
        (case-insensitively; empty keeps all), ``Count`` ascending."""
        ...

    def stats_json_pages(
        self, keywords: Sequence[str], title: str, rows_per_page: int
    ) -> AsyncGenerator[bytes, None]:
        """``stats`` as UTF-8 JSON, ``rows_per_page`` objects at a time joined by commas, read
        from one snapshot. Use it in ``aclosing``."""
        ...

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        """What ``stats`` would sum to: per keyword, and the books with a match."""
        ...


class CrawlFleet(Protocol):
    """How crawlers sharing one store split the walk: a lease on the page cursor (one crawler
    reads the next page and lists its books as work), leases on books (each listed book is
    counted by one crawler at a time), and one pace for the fleet's requests to the catalogue.

    A lease runs out ``lease_seconds`` after it was last renewed: a crawler that dies loses
    it then, and another takes the work over.
    """

    owner: str
    lease_seconds: float

    async def claim_page(self, page_url: str, seconds: float) -> bool:
        """Take (or keep) the page cursor for ``seconds``, if it still points at ``page_url``
        and no other crawler holds it."""
        ...

    async def page_read(
        self,
        page_url: str,
        next_page_url: str | None,
        books: Sequence[CountedBook],
        pass_number: int,
        keywords: Sequence[str],
    ) -> None:
        """List ``books`` as work (those done for ``keywords`` meanwhile, not) and move the cursor on to ``next_page_url`` (None: the pass
        has read its last page), in one transaction, while this crawler holds the cursor on
        ``page_url``; :class:`LeaseLost` otherwise."""

    async def enqueue(self, books: Sequence[CountedBook], pass_number: int, keywords: Sequence[str]) -> None:
        """List ``books`` as work (those already listed stay as they are; those counted for
        ``keywords`` meanwhile, or given up on this pass, are not listed)."""

    async def claim_book(self) -> ClaimedBook | None:
        """The oldest listed book no live lease holds, now leased to this crawler; None if none."""
        ...

    def holding(self, book_id: int) -> AbstractAsyncContextManager[None]:
        """Keep renewing this crawler's lease on the book for as long as the block runs."""
        ...

    def holding_page(self, page_url: str) -> AbstractAsyncContextManager[None]:
        """Keep renewing this crawler's lease on the page cursor for as long as the block runs."""
        ...

    async def books_listed(self) -> int:
        """Listed books not done yet, held by a crawler or not (the pass is not over while
        there are some)."""
        ...

    async def start_pass_after(self, source_url: str, first_page_url: str, pass_number: int) -> bool:
        """Start pass ``pass_number + 1`` at ``first_page_url``, unless another crawler already
        moved past ``pass_number`` (or started on ``source_url``). True if this one did."""
        ...

    async def request_turn(self, delay_seconds: float) -> float:
        """Return when this crawler may make the fleet's next request to the catalogue: at least
        ``delay_seconds`` after the previous one (of any crawler) was let go. The answer is the
        moment this turn was let go, in seconds since the epoch on the database's clock (the
        fleet's one clock)."""
