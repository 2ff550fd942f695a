"""The Gutendex client: fetches catalogue pages and counts each book's plain text.

Everything the network can do wrong is sorted into two kinds. Passing faults
(5xx, 429, 408, timeouts, refused or dropped connections, truncated bodies, a
200 that is not a catalogue page, such as HTML or malformed JSON) are retried
with exponential backoff and jitter, honouring ``Retry-After``; what retrying
cannot fix (404, a book with no usable text, a text over the size cap, a broken
zip) is given up at once. A download that is too slow (past its deadline, or
under the minimum rate) is given up at once too, but only for now: the book is
tried again later (a slow server stays slow for a while; retrying it at once
would hold the crawl). Either way the caller gets one exception naming the
reason, never a raw aiohttp error.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import aiohttp

from .capped_body import read_capped
from .catalogue import CataloguePage, NotACatalogue, PassingFault, TextSource, parse_page
from .counting import LineCounter, TextTooLarge, resolve_charset
from .version import version

log = logging.getLogger(__name__)

T = TypeVar("T")

# Names us and our version to the catalogue and the book hosts.
USER_AGENT = f"synergychat-crawler/{version()} (counts keywords in Project Gutenberg books)"
# How much of a body we read from the network at a time.
CHUNK_BYTES = 64 * 1024
# A catalogue page of 32 books is ~50 KB; anything near this is not a page.
MAX_PAGE_BYTES = 8 * 1024 * 1024
# Books are 0.1 to 5 MB; the largest few are ~30 MB. Past this we skip the book
# rather than spend the bandwidth (the count is streamed, so memory is not the issue).
MAX_BOOK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a passing fault."""

    attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 120.0
    # A server may ask for a long pause; we honour it up to this.
    max_retry_after: float = 900.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        # "Equal jitter": at least half the exponential step, so waits never collapse to 0.
        step: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return step / 2 + rng.uniform(0, step / 2)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 15.0
    # Between two reads of a body: a stalled download, not a slow one.
    read: float = 60.0
    # A whole catalogue page.
    page: float = 120.0
    # A whole download, page or book (CRAWLER_DOWNLOAD_TIMEOUT_SECONDS): the largest
    # texts (~30 MB) need 50 KB/s to make it.
    download: float = 600.0
    # Bytes per second, averaged from the start, once ``rate_grace`` has passed
    # (CRAWLER_DOWNLOAD_MIN_BYTES_PER_SECOND; 0: none). A server that sends a byte a
    # second never trips the read timeout, and held the crawl on one book for good.
    min_rate: float = 1024.0
    rate_grace: float = 30.0


DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUTS = Timeouts()


class TooSlow(Exception):
    """A download past its deadline or under the minimum rate: give up now, try later."""


class LastingFault(Exception):
    """Not worth retrying now: the answer will be the same.

    ``try_later``: it was a passing fault after all (retries used up, or too slow),
    so trying again in a while may well work.
    """

    def __init__(self, message: str, try_later: bool = False) -> None:
        super().__init__(message)
        self.try_later = try_later


class PageNotFound(Exception):
    """The catalogue has no such page (it shrank): the walk has reached its end."""


class CatalogueUnavailable(Exception):
    """A page could not be read, even after retries.

    ``not_a_catalogue``: the last attempt answered, but with something that is no
    catalogue page (the message says what), rather than failing to answer.
    """

    def __init__(self, message: str, not_a_catalogue: bool = False) -> None:
        super().__init__(message)
        self.not_a_catalogue = not_a_catalogue


class BookUnavailable(Exception):
    """A book's text could not be counted (after retries, if they could help).

    ``try_later``: the fault may pass (a slow or failing server), unlike a 404.
    """

    def __init__(self, message: str, try_later: bool = False) -> None:
        super().__init__(message)
        self.try_later = try_later


# Told after every attempt whether the catalogue answered (None) or what went wrong.
AttemptObserver = Callable[[str | None], None]


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _check_status(response: aiohttp.ClientResponse) -> None:
    if response.status == 200:
        return
    reason = f"HTTP {response.status}"
    if response.status in (408, 429) or response.status >= 500:
        raise PassingFault(reason, parse_retry_after(response.headers.get("Retry-After")))
    raise LastingFault(reason)


def _count_zip(
    archive: bytes, keywords: Sequence[str], charset: str | None, max_bytes: int
) -> dict[str, int]:
    """Count the largest ``.txt`` member of a zip, decompressing it in pieces."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            texts = [info for info in opened.infolist() if info.filename.lower().endswith(".txt")]
            if not texts:
                raise LastingFault("the zip holds no .txt file")
            member = max(texts, key=lambda info: info.file_size)
            counter = LineCounter(keywords, charset, max_bytes)
            with opened.open(member) as text:
                while piece := text.read(CHUNK_BYTES):
                    counter.feed(piece)
            return counter.finish()
    except TextTooLarge as exc:
        raise LastingFault(f"text too large: {exc}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise LastingFault(f"unreadable zip: {exc}") from exc


class Gutendex:
    """Reads the catalogue and counts books through one ``aiohttp.ClientSession``.

    ``sleep`` and ``rng`` are injectable so tests can see the backoff without waiting.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        observe: AttemptObserver | None = None,
    ) -> None:
        self._session = session
        self._retry = retry
        self._timeouts = timeouts
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._observe = observe or (lambda fault: None)
        self._page_timeout = aiohttp.ClientTimeout(
            total=timeouts.page, sock_connect=timeouts.connect, sock_read=timeouts.read
        )
        # No aiohttp total for a book: ``_paced`` bounds it (the deadline and the minimum rate).
        self._book_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
        )

    async def page(self, url: str) -> CataloguePage:
        """One catalogue page. Raises PageNotFound or CatalogueUnavailable."""
        try:
            return await self._retrying(f"catalogue page {url}", lambda: self._fetch_page(url))
        except LastingFault as exc:
            raise CatalogueUnavailable(str(exc), isinstance(exc.__cause__, NotACatalogue)) from exc

    async def count_book(
        self, source: TextSource, keywords: Sequence[str], max_bytes: int = MAX_BOOK_BYTES
    ) -> dict[str, int]:
        """Lines per keyword in the book's text. Raises BookUnavailable with the reason."""
        try:
            return await self._retrying(
                f"book text {source.url}", lambda: self._fetch_and_count(source, keywords, max_bytes)
            )
        except LastingFault as exc:
            raise BookUnavailable(str(exc), exc.try_later) from exc

    async def _retrying(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        attempt = 1
        while True:
            cause: Exception | None = None
            try:
                result = await operation()
            except (LastingFault, PageNotFound):
                self._observe(None)  # it answered: the catalogue is there
                raise
            except TooSlow as exc:
                # Not again at once: the same server is likely as slow a second later.
                raise LastingFault(str(exc), try_later=True) from exc
            except PassingFault as exc:
                fault, retry_after, cause = str(exc), exc.retry_after, exc
            except TimeoutError:
                # aiohttp's read and connect timeouts are TimeoutErrors as well as ClientErrors.
                fault, retry_after = "timed out", None
            except aiohttp.ClientPayloadError as exc:
                fault, retry_after = f"truncated body ({exc})", None
            except (aiohttp.InvalidURL, aiohttp.TooManyRedirects) as exc:
                raise LastingFault(f"{type(exc).__name__}: {exc}") from exc
            except aiohttp.ClientError as exc:
                fault, retry_after = f"{type(exc).__name__}: {exc}", None
            else:
                self._observe(None)
                return result
            self._observe(fault)
            if attempt >= self._retry.attempts:
                raise LastingFault(f"{fault} (gave up after {attempt} attempts)", try_later=True) from cause
            delay = self._retry.delay(attempt, self._rng, retry_after)
            log.warning(
                "%s: %s; attempt %d of %d, retrying in %.1f s",
                what,
                fault,
                attempt,
                self._retry.attempts,
                delay,
            )
            await self._sleep(delay)
            attempt += 1

    @asynccontextmanager
    async def _paced(self) -> AsyncIterator[Callable[[int], None]]:
        """Bound one download, answer and body: the whole of it by ``timeouts.download``,
        its pace by ``timeouts.min_rate`` once ``timeouts.rate_grace`` has passed.

        As Apache's mod_reqtimeout ``MinRate``: each byte received buys ``1/min_rate``
        more seconds. Call the yielded function with each piece's size. Raises TooSlow.
        """
        timeouts = self._timeouts
        loop = asyncio.get_running_loop()
        start = loop.time()
        received = 0

        def allowed_until() -> float:
            until = start + timeouts.download
            if timeouts.min_rate > 0:
                until = min(until, start + timeouts.rate_grace + received / timeouts.min_rate)
            return until

        scope = asyncio.timeout_at(allowed_until())

        def progress(size: int) -> None:
            nonlocal received
            received += size
            scope.reschedule(allowed_until())

        try:
            async with scope:
                yield progress
        except TimeoutError:
            if not scope.expired():
                raise  # one of aiohttp's own timeouts: a passing fault
            elapsed = loop.time() - start
            if elapsed >= timeouts.download:
                raise TooSlow(f"too slow: not finished after {timeouts.download:g} s") from None
            raise TooSlow(
                f"too slow: {received} bytes in {elapsed:.1f} s, under {timeouts.min_rate:g} bytes/s"
            ) from None

    async def _fetch_page(self, url: str) -> CataloguePage:
        async with (
            self._paced() as progress,
            self._session.get(
                url, headers={"Accept": "application/json"}, timeout=self._page_timeout
            ) as response,
        ):
            if response.status == 404:
                raise PageNotFound(url)
            _check_status(response)
            content_type = response.content_type
            body = await _read_capped(response, MAX_PAGE_BYTES, "catalogue page", progress)
        try:
            data = json.loads(body)
        except ValueError as exc:  # malformed JSON, or not UTF-8 at all
            # An HTML page is a web site, not a catalogue; broken JSON may be a glitch, so say which.
            detail = f", malformed JSON: {exc}" if "json" in content_type else ""
            raise NotACatalogue(f"not a Gutendex catalogue (got {content_type}{detail})") from exc
        return parse_page(data, url)

    async def _fetch_and_count(
        self, source: TextSource, keywords: Sequence[str], max_bytes: int
    ) -> dict[str, int]:
        async with (
            self._paced() as progress,
            self._session.get(source.url, timeout=self._book_timeout) as response,
        ):
            _check_status(response)
            if response.content_length is not None and response.content_length > max_bytes:
                raise LastingFault(f"text too large: {response.content_length} bytes")
            charset = _usable_charset(source.charset, response.charset)
            if source.is_zip:
                archive = await _read_capped(response, max_bytes, "zip", progress)
                return await asyncio.to_thread(_count_zip, archive, keywords, charset, max_bytes)
            counter = LineCounter(keywords, charset, max_bytes)
            try:
                async for piece in response.content.iter_chunked(CHUNK_BYTES):
                    progress(len(piece))
                    counter.feed(piece)
            except TextTooLarge as exc:
                raise LastingFault(f"text too large: {exc}") from exc
            return counter.finish()


def _usable_charset(declared: str | None, served: str | None) -> str:
    """The catalogue's charset, else the server's, else UTF-8 (an unknown name falls through)."""
    for candidate in (declared, served):
        if candidate:
            try:
                return resolve_charset(candidate)
            except LookupError:
                log.warning("unknown charset %r, trying the next guess", candidate)
    return "utf-8"


async def _read_capped(
    response: aiohttp.ClientResponse, limit: int, what: str, progress: Callable[[int], None]
) -> bytes:
    body = await read_capped(response.content, limit, progress)
    if not body.complete:
        raise LastingFault(f"{what} larger than {limit} bytes")
    return body.data
