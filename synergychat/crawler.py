"""The crawler role: owns the count store and the crawl task, and serves the counts.

The store and the crawl task (``crawl.py``: walking the catalogue, counting, where
it stands) are started and stopped by the app's cleanup context; the HTTP face
answers ``/stats`` (streamed by ``stats_stream.py``), ``/stats/totals``,
``/status``, ``/readyz``. docs/CRAWLER.md says more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .commands import MAX_KEYWORD_CHARS, MAX_QUERY_KEYWORDS, MAX_TITLE_CHARS
from .crawl import PAGE_RETRY_SECONDS, RESCAN_AFTER_SECONDS, TRY_LATER_SECONDS, Crawl
from .gutendex import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    MAX_BOOK_BYTES,
    USER_AGENT,
    Gutendex,
    RetryPolicy,
    Timeouts,
)
from .http_errors import JSON_ANSWERS, ClientError, JsonAnswers
from .metrics import CrawlerMetrics
from .openapi import DOCUMENT_PATH, openapi_handler
from .readiness import healthz, readiness_response
from .settings import CrawlerSettings, StartupError, masked_database_url, split_comma_list
from .stats import KeywordCount, KeywordTotals
from .stats_stream import ROWS_PER_PAGE, StatsDownloads
from .storage import CountStore, SqliteCountStore, StoreUnavailable
from .storage.legacy_import import original_count_files

log = logging.getLogger(__name__)

# What opening PostgreSQL at start can raise: unreachable, refused, a bad URL, a newer schema.
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
        metrics: CrawlerMetrics | None = None,
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
        self._sleep = sleep
        self._crawl = Crawl(
            settings,
            rescan_after_seconds=rescan_after_seconds,
            page_retry_seconds=page_retry_seconds,
            try_later_seconds=try_later_seconds,
            max_book_bytes=max_book_bytes,
            sleep=sleep,
            # The process's (roles.build_app); a crawler built alone counts into its own.
            metrics=metrics or CrawlerMetrics(),
        )
        self._store: CountStore | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def db_file(self) -> Path | None:
        return self.settings.crawler_db_file

    async def _open_store(self) -> tuple[CountStore, str]:
        """The store the settings choose (PostgreSQL when CRAWLER_DATABASE_URL is set, else
        SQLite), and where it is, for the log (never a password)."""
        url = self.settings.crawler_database_url
        if url:
            where = masked_database_url(url)
            if self.settings.crawler_db_path:
                log.info("CRAWLER_DB_PATH is not used: counts are kept in PostgreSQL (CRAWLER_DATABASE_URL)")
            # asyncpg is imported only when asked for: it adds ~0.4 s to every SQLite start.
            from .storage.pg_counts import EXTRA_CONNECTIONS, PostgresCountStore
            from .storage.postgres import open_store

            # One connection per /stats download (its snapshot), and a few for the rest.
            pool_size = self.settings.crawler_stats_max_concurrent + EXTRA_CONNECTIONS
            opening = PostgresCountStore.open(url, pool_size, self.settings.crawler_lease_seconds)
            return await open_store("CRAWLER_DATABASE_URL", url, "count database", opening), where
        if self.db_file is None:
            log.warning("CRAWLER_DB_PATH is not set: counts are kept in memory and lost on exit")
        try:
            return await SqliteCountStore.open(self.db_file), str(self.db_file or "memory")
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            folder = self.settings.crawler_db_path
            raise StartupError(f"CRAWLER_DB_PATH={folder!r}: cannot open the count database: {exc}") from exc

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """A cleanup context: open the store and start crawling; stop and close after."""
        store, where = await self._open_store()
        if not self.settings.crawler_database_url and (
            originals := original_count_files(self.settings.crawler_db_path)
        ):
            log.info(
                "CRAWLER_DB_PATH holds %d count files of the original crawler (%s, ...): left as they are; "
                "they name no book, so the counts are rebuilt from the catalogue in %s",
                len(originals),
                originals[0].name,
                self.db_file,
            )
        session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        self._store = store
        self._crawl.failure = None
        gutendex = Gutendex(
            session, self._retry, self._timeouts, self._sleep, observe=self._crawl.observe_catalogue
        )
        self._task = asyncio.create_task(self._crawl.run(store, gutendex), name="synergychat-crawl")
        log.info(
            "crawler ready: counts at %s, catalogue %s, keywords %s",
            where,
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
            self._crawl.state = "stopped"
            await store.close()

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """What readiness reports: the store, and the crawl task."""
        store_check: dict[str, Any] = {"ok": True, "detail": "writable"}
        if self._store is None:
            store_check = {"ok": False, "detail": f"not open (crawler {self._crawl.state})"}
        else:
            try:
                await asyncio.wait_for(self._store.check(), CHECK_TIMEOUT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - a probe: whatever the store raises means "not ready"
                store_check = {"ok": False, "detail": f"not writable: {exc or type(exc).__name__}"}
        crawl_check: dict[str, Any] = {"ok": True, "state": self._crawl.state}
        if self._crawl.failure is not None:
            crawl_check = {
                "ok": False,
                "state": self._crawl.state,
                "detail": f"the crawl stopped: {self._crawl.failure!r}",
            }
        elif self._task is None or self._task.done():
            crawl_check = {"ok": False, "state": self._crawl.state, "detail": "the crawl is not running"}
        return {"database": store_check, "crawl": crawl_check}

    async def check(self) -> None:
        """Raise unless the crawler can serve (store usable, crawl task alive)."""
        checks = await self.readiness()
        if not checks["database"]["ok"]:
            raise CrawlerNotReady(f"count store {checks['database']['detail']}")
        if not checks["crawl"]["ok"]:
            raise CrawlStopped(checks["crawl"]["detail"])

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        """Counts per keyword and book, ``Count`` ascending (``/stats`` in docs/CONTRACT.md).

        ``keywords`` keeps exactly those keywords (folded like the configured ones);
        ``title`` keeps books whose title contains it, case-insensitively. Empty: no filter.
        Only the configured keywords are answered (see docs/CRAWLER.md on changes).
        """
        return await self._require_store().stats(self._chosen_keywords(keywords), title)

    def stats_json_pages(self, keywords: Sequence[str], title: str) -> AsyncGenerator[bytes, None]:
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
            "state": self._crawl.state,
            "keywords": list(self.keywords),
            "books_counted": 0,
            "books_skipped": 0,
            "books_to_recount": self._crawl.to_recount,
            "pages_done": 0,
            "pass": 0,
            "next_page_url": None,
            "current_book": None,
            "last_success_at": None,
            "last_error": None,
            "source_url": self.settings.crawler_source_url,
            "delay_seconds": self.settings.crawler_delay_seconds,
            "catalogue": dict(self._crawl.catalogue),
            "books_to_try_later": self._crawl.books_to_try_later,
            "progress": self._crawl.progress(0, 0, None),
        }
        if self._store is None:
            return status
        totals = await self._store.book_totals()
        position = await self._store.position()
        # The state last: it changes before the store does, so the two never disagree.
        book = self._crawl.current_book
        status.update(
            state=self._crawl.state,
            books_to_recount=self._crawl.to_recount,
            books_counted=totals["counted"],
            books_skipped=totals["skipped"],
            pages_done=position.pages_done,
            next_page_url=position.next_page_url,
            last_success_at=position.last_success_at,
            current_book={"id": book.id, "title": book.title} if book else None,
        )
        status["pass"] = position.pass_number
        status["catalogue"] = dict(self._crawl.catalogue)
        status["books_to_try_later"] = self._crawl.books_to_try_later
        status["progress"] = self._crawl.progress(totals["counted"], totals["skipped"], position.books_total)
        if position.last_error_at is not None:
            status["last_error"] = {"at": position.last_error_at, "message": position.last_error_message}
        return status

    def _require_store(self) -> CountStore:
        if self._store is None:
            raise CrawlerNotReady(f"the crawler is {self._crawl.state}")
        return self._store


# The HTTP face.

CRAWLER = web.AppKey("crawler", Crawler)
STATS_DOWNLOADS = web.AppKey("stats_downloads", StatsDownloads)


def count_store_errors(exc: Exception) -> tuple[int, str] | None:
    """The crawler's own failures, as the JSON errors its clients see."""
    if isinstance(exc, CrawlerNotReady):
        return 503, str(exc)
    if isinstance(exc, StoreUnavailable):
        return 503, f"counts unavailable: {exc}"
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
            "endpoints": ["/healthz", "/readyz", "/stats", "/stats/totals", "/status", DOCUMENT_PATH],
        }
    )


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
    app = web.Application()
    app[JSON_ANSWERS] = JsonAnswers(count_store_errors)
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
    app.router.add_get(DOCUMENT_PATH, openapi_handler("crawler"))
    return app
