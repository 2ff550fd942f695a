"""The crawler role: walks the Gutendex catalogue, counts keywords, serves counts.

The crawl is one background task, started and stopped by the app's cleanup
context. It walks the catalogue page by page from ``{CRAWLER_SOURCE_URL}/books/``
following ``next``, counts each book it has not counted yet, and records after
every book and every page where it is, so a restart resumes on the same page and
never counts a book twice. At the end of the catalogue it waits and walks it
again for new books (and for books it had to give up on). docs/CRAWLER.md says
more, including what happens when ``CRAWLER_KEYWORDS`` changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from yarl import URL

from .gutendex import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    MAX_BOOK_BYTES,
    USER_AGENT,
    BookUnavailable,
    CatalogueBook,
    CatalogueUnavailable,
    Gutendex,
    PageNotFound,
    RetryPolicy,
    TextSource,
    Timeouts,
    first_page_url,
)
from .commands import MAX_KEYWORD_CHARS, MAX_QUERY_KEYWORDS, MAX_TITLE_CHARS
from .http_errors import ClientError, json_errors
from .readiness import readiness_response
from .settings import CrawlerSettings, StartupError, split_comma_list
from .storage import CountedBook, CountStore, utc_now_iso
from .storage.legacy_import import original_count_files
from .stats import KeywordCount, KeywordTotals
from .stats_stream import ROWS_PER_PAGE, StatsDownloads

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_FILENAME = "crawler.sqlite3"
# After the last page: how long to wait before walking the catalogue again for new books.
RESCAN_AFTER_SECONDS = 3600.0
# After a page failed all its retries: how long before trying that page again.
PAGE_RETRY_SECONDS = 300.0
# A book given up on a passing fault (too slow, retries used up) is tried again after
# this, then after twice as long each time it fails again, up to a day, within the pass.
TRY_LATER_SECONDS = 3600.0
TRY_LATER_MAX_SECONDS = 86400.0
# Readiness must answer quickly even if the database is locked.
CHECK_TIMEOUT_SECONDS = 2.0
# /stats input limits (MAX_*) are the chat command's, from commands.py: one rule in both places.


class CrawlerNotReady(Exception):
    """The crawler has not opened its store yet, or has closed it."""


class CrawlStopped(Exception):
    """The crawl task ended on an unexpected error; counts may still be served."""


class Crawler:
    """Owns the count store and the crawl task. Building it does no I/O.

    The keyword arguments exist for tests (fast retries, short waits, a small cap).
    """

    def __init__(
        self,
        settings: CrawlerSettings,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        rescan_after_seconds: float = RESCAN_AFTER_SECONDS,
        page_retry_seconds: float = PAGE_RETRY_SECONDS,
        try_later_seconds: float = TRY_LATER_SECONDS,
        max_book_bytes: int = MAX_BOOK_BYTES,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.keywords: tuple[str, ...] = tuple(settings.crawler_keywords)
        self._retry = retry
        # The deadline and minimum rate of a download are settings; the rest, constants.
        self._timeouts = dataclasses.replace(
            timeouts,
            download=settings.crawler_download_timeout_seconds,
            min_rate=float(settings.crawler_download_min_bytes_per_second),
        )
        self._rescan_after = rescan_after_seconds
        self._page_retry = page_retry_seconds
        self._try_later_first = try_later_seconds
        # Book id -> (when, monotonic; the wait that led there; the book): tried again then.
        # Not kept over a restart: the book is then tried again in the next pass.
        self._try_later: dict[int, tuple[float, float, CountedBook]] = {}
        # Whether the catalogue answers, since when, and the fault if not (for /status
        # and so the bot's reply): None until the first request.
        self._catalogue: dict[str, Any] = {"reachable": None, "since": None, "error": None}
        self._max_book_bytes = max_book_bytes
        self._sleep = sleep
        self._store: CountStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._state = "starting"
        self._current_book: CatalogueBook | CountedBook | None = None
        self._to_recount = 0
        self._last_request_end: float | None = None

    @property
    def db_file(self) -> Path | None:
        folder = self.settings.crawler_db_path
        return Path(folder) / DB_FILENAME if folder else None

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """A cleanup context: open the store and start crawling; stop and close after."""
        if self.db_file is None:
            log.warning("CRAWLER_DB_PATH is not set: counts are kept in memory and lost on exit")
        try:
            store = await CountStore.open(self.db_file)
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            folder = self.settings.crawler_db_path
            raise StartupError(f"CRAWLER_DB_PATH={folder!r}: cannot open the count database: {exc}") from exc
        if originals := original_count_files(self.settings.crawler_db_path):
            log.info(
                "CRAWLER_DB_PATH holds %d count files of the original crawler (%s, ...): left as they are; "
                "they name no book, so the counts are rebuilt from the catalogue in %s",
                len(originals),
                originals[0].name,
                self.db_file,
            )
        session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        self._store = store
        self._failure = None
        gutendex = Gutendex(session, self._retry, self._timeouts, self._sleep, observe=self._observe_catalogue)
        self._task = asyncio.create_task(self._crawl(store, gutendex), name="synergychat-crawl")
        log.info(
            "crawler ready: counts at %s, catalogue %s, keywords %s",
            self.db_file or "memory",
            self.settings.crawler_source_url,
            ",".join(self.keywords),
        )
        try:
            yield
        finally:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            await session.close()
            self._store = None
            self._state = "stopped"
            await store.close()

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """What readiness reports: the store, and the crawl task."""
        store_check: dict[str, Any] = {"ok": True, "detail": "writable"}
        if self._store is None:
            store_check = {"ok": False, "detail": f"not open (crawler {self._state})"}
        else:
            try:
                await asyncio.wait_for(self._store.check(), CHECK_TIMEOUT_SECONDS)
            except Exception as exc:
                store_check = {"ok": False, "detail": f"not writable: {exc or type(exc).__name__}"}
        crawl_check: dict[str, Any] = {"ok": True, "state": self._state}
        if self._failure is not None:
            crawl_check = {
                "ok": False,
                "state": self._state,
                "detail": f"the crawl stopped: {self._failure!r}",
            }
        elif self._task is None or self._task.done():
            crawl_check = {"ok": False, "state": self._state, "detail": "the crawl is not running"}
        return {"database": store_check, "crawl": crawl_check}

    async def check(self) -> None:
        """Raise unless the crawler can serve (store usable, crawl task alive)."""
        checks = await self.readiness()
        if not checks["database"]["ok"]:
            raise CrawlerNotReady(f"count store {checks['database']['detail']}")
        if not checks["crawl"]["ok"]:
            raise CrawlStopped(checks["crawl"]["detail"])

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        """Counts per keyword and book, ``Count`` ascending (CONTRACT.md's ``/stats``).

        ``keywords`` keeps exactly those keywords (folded like the configured ones);
        ``title`` keeps books whose title contains it, case-insensitively. Empty: no filter.
        Only the configured keywords are answered (see docs/CRAWLER.md on changes).
        """
        return await self._require_store().stats(self._chosen_keywords(keywords), title)

    def stats_json_pages(self, keywords: Sequence[str], title: str) -> AsyncIterator[bytes]:
        """``stats`` as the UTF-8 JSON of ``GET /stats``, a page of rows at a time (see
        ``CountStore.stats_json_pages``), written by SQLite off the event loop."""
        return self._require_store().stats_json_pages(self._chosen_keywords(keywords), title, ROWS_PER_PAGE)

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        """What ``stats`` sums to, per keyword, and how many books matched (the bot's reply)."""
        return await self._require_store().totals(self._chosen_keywords(keywords), title)

    def _chosen_keywords(self, keywords: Sequence[str]) -> list[str]:
        wanted = {keyword.strip().lower() for keyword in keywords if keyword.strip()}
        return [keyword for keyword in self.keywords if not wanted or keyword in wanted]

    async def status(self) -> dict[str, Any]:
        """Progress: what the api may show ("I have read N books so far") and operators read."""
        status: dict[str, Any] = {
            "state": self._state,
            "keywords": list(self.keywords),
            "books_counted": 0,
            "books_skipped": 0,
            "books_to_recount": self._to_recount,
            "pages_done": 0,
            "pass": 0,
            "next_page_url": None,
            "current_book": None,
            "last_success_at": None,
            "last_error": None,
            "source_url": self.settings.crawler_source_url,
            "delay_seconds": self.settings.crawler_delay_seconds,
            "catalogue": dict(self._catalogue),
            "books_to_try_later": len(self._try_later),
        }
        if self._store is None:
            return status
        totals = await self._store.book_totals()
        position = await self._store.position()
        # The state last: it changes before the store does, so the two never disagree.
        book = self._current_book
        status.update(
            state=self._state,
            books_to_recount=self._to_recount,
            books_counted=totals["counted"],
            books_skipped=totals["skipped"],
            pages_done=position.pages_done,
            next_page_url=position.next_page_url,
            last_success_at=position.last_success_at,
            current_book={"id": book.id, "title": book.title} if book else None,
        )
        status["pass"] = position.pass_number
        status["catalogue"] = dict(self._catalogue)
        status["books_to_try_later"] = len(self._try_later)
        if position.last_error_at is not None:
            status["last_error"] = {"at": position.last_error_at, "message": position.last_error_message}
        return status

    def _observe_catalogue(self, fault: str | None) -> None:
        """After every request to the catalogue: did it answer (None), or what went wrong."""
        reachable = fault is None
        if self._catalogue["reachable"] is not reachable:
            self._catalogue["since"] = utc_now_iso()
            if not reachable:
                log.warning(
                    "the catalogue at CRAWLER_SOURCE_URL (%s) does not answer: %s",
                    self.settings.crawler_source_url,
                    fault,
                )
            elif self._catalogue["reachable"] is False:
                log.info("the catalogue answers again")
        self._catalogue.update(reachable=reachable, error=fault)

    def _require_store(self) -> CountStore:
        if self._store is None:
            raise CrawlerNotReady(f"the crawler is {self._state}")
        return self._store

    # The crawl task.

    async def _crawl(self, store: CountStore, gutendex: Gutendex) -> None:
        try:
            await self._walk(store, gutendex)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug or a broken database, not a network fault (those are handled below):
            # stop, say so in readiness and status, keep serving the counts we have.
            log.exception("the crawl stopped on an unexpected error")
            self._failure = exc
            self._state = "failed"
            self._current_book = None
            try:
                await store.record_error(f"the crawl stopped: {exc!r}")
            except Exception:
                log.exception("could not record the crawl's failure")

    async def _walk(self, store: CountStore, gutendex: Gutendex) -> None:
        source = self.settings.crawler_source_url
        first_page = first_page_url(source)
        position = await store.position()
        if position.source_url != source:
            if position.source_url is not None:
                log.info(
                    "CRAWLER_SOURCE_URL changed from %s: starting at %s", position.source_url, first_page
                )
            await store.start_pass(source, first_page, position.pass_number + 1)
            position = await store.position()
        elif position.next_page_url is not None:
            log.info("resuming pass %d at %s", position.pass_number, position.next_page_url)

        await self._recount_stale(store, gutendex, position.pass_number)

        # The pages read in this pass: a ``next`` back to one of them is a loop, which
        # would otherwise be walked forever. About 2,400 URLs for the whole catalogue;
        # forgotten when a pass starts (and by a restart, which costs one more lap at most).
        read_this_pass: set[str] = set()
        while True:
            position = await store.position()
            page_url = position.next_page_url
            if page_url is None:
                self._state = "waiting"
                wait = self._seconds_until_rescan(position.pass_finished_at)
                log.info("the catalogue was read to its end; looking for new books in %.0f s", wait)
                await self._sleep(wait)
                self._state = "crawling"
                log.info("walking the catalogue again for new books (pass %d)", position.pass_number + 1)
                await store.start_pass(source, first_page, position.pass_number + 1)
                read_this_pass.clear()
                # A new pass looks at every book given up on in the last one anyway.
                self._try_later.clear()
                continue
            self._state = "crawling"
            await self._try_again_due(store, gutendex, position.pass_number)
            try:
                page = await self._request(functools.partial(gutendex.page, page_url))
            except PageNotFound:
                # Past the end: the catalogue shrank under us, or the source URL is wrong.
                message = f"catalogue page {page_url} does not exist"
                if page_url == first_page:
                    message += ": is CRAWLER_SOURCE_URL a Gutendex catalogue?"
                    await store.record_error(message)
                log.warning("%s; the pass ends here", message)
                await store.page_done(None)
                continue
            except CatalogueUnavailable as exc:
                if exc.not_a_catalogue:
                    # It answers, with something else (a web site, another API): most likely misconfigured.
                    message = f"catalogue page {page_url} is {exc}: check CRAWLER_SOURCE_URL ({source})"
                    log.error("%s; trying again in %.0f s", message, self._page_retry)
                else:
                    message = f"catalogue page {page_url}: {exc}"
                    log.warning(
                        "catalogue page %s unavailable: %s; trying again in %.0f s",
                        page_url,
                        exc,
                        self._page_retry,
                    )
                await store.record_error(message)
                self._state = "retrying"
                await self._sleep(self._page_retry)
                continue
            read_this_pass.add(_page_key(page_url))
            for book in page.books:
                await self._take(store, gutendex, book, position.pass_number)
                await self._try_again_due(store, gutendex, position.pass_number)
            next_url = page.next_url
            if next_url is not None and _page_key(next_url) in read_this_pass:
                message = (
                    f"the catalogue at CRAWLER_SOURCE_URL ({source}) loops: page {page_url} has next"
                    f" {next_url}, already read in this pass; the pass ends here"
                )
                log.error("%s", message)
                await store.record_error(message)
                next_url = None
            elif next_url is None:
                log.info("reached the end of the catalogue (pass %d)", position.pass_number)
            await store.page_done(next_url)

    async def _recount_stale(self, store: CountStore, gutendex: Gutendex, pass_number: int) -> None:
        """Books counted with other keywords: count them again for the current ones, first."""
        stale = await store.stale_books(self.keywords)
        if not stale:
            return
        log.info(
            "CRAWLER_KEYWORDS changed: counting %d books again for %s", len(stale), ",".join(self.keywords)
        )
        self._state = "recounting"
        self._to_recount = len(stale)
        for book in stale:
            if book.text_url is not None:
                await self._count(store, gutendex, book, pass_number)
            self._to_recount -= 1

    async def _take(
        self, store: CountStore, gutendex: Gutendex, entry: CatalogueBook, pass_number: int
    ) -> None:
        if not await store.needs_counting(entry.id, self.keywords, pass_number):
            return
        if entry.text is None:
            log.info("book %d (%s) has no plain text: skipped", entry.id, entry.title)
            await store.save_skip(entry.id, entry.title, "no plain text", pass_number)
            return
        book = CountedBook(entry.id, entry.title, entry.text.url, entry.text.charset)
        await self._count(store, gutendex, book, pass_number)

    async def _count(
        self, store: CountStore, gutendex: Gutendex, book: CountedBook, pass_number: int
    ) -> None:
        assert book.text_url is not None
        source = TextSource(book.text_url, book.charset)
        self._current_book = book
        try:
            counts = await self._request(
                lambda: gutendex.count_book(source, self.keywords, self._max_book_bytes)
            )
        except BookUnavailable as exc:
            message = f"book {book.id} ({book.title}) skipped: {exc}"
            if exc.try_later:
                message += f"; trying it again in {_duration(self._schedule_try_later(book))}"
            else:
                self._try_later.pop(book.id, None)
            log.warning("%s", message)
            await store.save_skip(book.id, book.title, str(exc), pass_number)
            await store.record_error(message)
        else:
            self._try_later.pop(book.id, None)
            await store.save_counts(book, self.keywords, counts, pass_number)
            log.info(
                "book %d (%s) counted: %s",
                book.id,
                book.title,
                ", ".join(f"{keyword} {count}" for keyword, count in counts.items()),
            )
        finally:
            self._current_book = None

    def _schedule_try_later(self, book: CountedBook) -> float:
        """Put the book on the try-later list; the wait doubles each time. Returns the wait."""
        previous = self._try_later.get(book.id)
        wait = min(previous[1] * 2, TRY_LATER_MAX_SECONDS) if previous else self._try_later_first
        self._try_later[book.id] = (time.monotonic() + wait, wait, book)
        return wait

    async def _try_again_due(self, store: CountStore, gutendex: Gutendex, pass_number: int) -> None:
        """Count the books whose try-later time has come (a slow server, a passing fault)."""
        now = time.monotonic()
        for due, _, book in sorted(self._try_later.values(), key=lambda item: item[0]):
            if due > now:
                break
            log.info("book %d (%s): trying it again", book.id, book.title)
            await self._count(store, gutendex, book, pass_number)

    async def _request(self, call: Callable[[], Awaitable[T]]) -> T:
        """Make a request, ``CRAWLER_DELAY_SECONDS`` after the previous one ended."""
        if self._last_request_end is not None:
            wait = self._last_request_end + self.settings.crawler_delay_seconds - time.monotonic()
            if wait > 0:
                await self._sleep(wait)
        try:
            return await call()
        finally:
            self._last_request_end = time.monotonic()

    def _seconds_until_rescan(self, pass_finished_at: str | None) -> float:
        if pass_finished_at is None:
            return self._rescan_after
        finished = datetime.fromisoformat(pass_finished_at.replace("Z", "+00:00"))
        elapsed = (datetime.now(finished.tzinfo) - finished).total_seconds()
        # A restart during the wait waits only what is left of it.
        return min(max(self._rescan_after - elapsed, 0.0), self._rescan_after)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:g} s"


def _page_key(url: str) -> str:
    """A page URL as yarl writes it, so that two spellings of one page compare equal."""
    try:
        return str(URL(url))
    except ValueError:
        return url


# The HTTP face.

CRAWLER = web.AppKey("crawler", Crawler)
STATS_DOWNLOADS = web.AppKey("stats_downloads", StatsDownloads)


def count_store_errors(exc: Exception) -> tuple[int, str] | None:
    """The crawler's own failures, as the JSON errors its clients see."""
    if isinstance(exc, CrawlerNotReady):
        return 503, str(exc)
    if isinstance(exc, (sqlite3.Error, ValueError)):
        # aiosqlite says ValueError when its connection is gone.
        return 503, f"counts unavailable: {exc}"
    return None


def parse_stats_query(query: Any) -> tuple[list[str], str]:
    """``keywords`` (comma lists, may repeat) and ``title`` (at most once) from a query string."""
    titles = query.getall("title", [])
    if len(titles) > 1:
        raise ClientError(400, "give title at most once")
    title = titles[0] if titles else ""
    if len(title) > MAX_TITLE_CHARS:
        raise ClientError(400, f"title is longer than {MAX_TITLE_CHARS} characters")
    keywords: list[str] = []
    for value in query.getall("keywords", []):
        keywords.extend(split_comma_list(value))  # type: ignore[arg-type]
    if len(keywords) > MAX_QUERY_KEYWORDS:
        raise ClientError(400, f"more than {MAX_QUERY_KEYWORDS} keywords")
    if any(len(keyword) > MAX_KEYWORD_CHARS for keyword in keywords):
        raise ClientError(400, f"a keyword is longer than {MAX_KEYWORD_CHARS} characters")
    return keywords, title


async def describe(request: web.Request) -> web.Response:
    # Load balancers probe GET / by default; answering 200 here keeps them happy.
    return web.json_response(
        {
            "service": "synergychat-crawler",
            "status": "ok",
            "endpoints": ["/healthz", "/readyz", "/stats", "/stats/totals", "/status"],
        }
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[CRAWLER].readiness()
    return readiness_response(all(check["ok"] for check in checks.values()), checks)


async def stats(request: web.Request) -> web.StreamResponse:
    keywords, title = parse_stats_query(request.query)
    # Up to ~600k rows: streamed a page at a time (stats_stream.py), never built whole.
    pages = request.app[CRAWLER].stats_json_pages(keywords, title)
    return await request.app[STATS_DOWNLOADS].send(request, pages)


async def stats_totals(request: web.Request) -> web.Response:
    keywords, title = parse_stats_query(request.query)
    return web.json_response(await request.app[CRAWLER].totals(keywords, title))


async def status(request: web.Request) -> web.Response:
    body = await request.app[CRAWLER].status()
    body["stats_downloads"] = request.app[STATS_DOWNLOADS].describe()
    return web.json_response(body)


def create_crawler_app(settings: CrawlerSettings, crawler: Crawler | None = None) -> web.Application:
    """Build the crawler app; the store and the crawl start in ``cleanup_ctx``."""
    crawler = crawler or Crawler(settings)
    app = web.Application(middlewares=[json_errors(count_store_errors)])
    app[CRAWLER] = crawler
    app[STATS_DOWNLOADS] = StatsDownloads(
        settings.crawler_stats_max_concurrent, settings.crawler_send_timeout_seconds
    )
    app.cleanup_ctx.append(crawler.lifecycle)
    app.router.add_get("/", describe)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/stats", stats)
    app.router.add_get("/stats/totals", stats_totals)
    app.router.add_get("/status", status)
    return app
