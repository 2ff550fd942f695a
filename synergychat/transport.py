"""How the api asks the crawler: one protocol, three implementations.

The transport follows from what runs together (see ``roles.py``): api and
crawler in one process talk by a direct call; a standalone api talks HTTP to
``CRAWLER_BASE_URL``; an api with neither answers "not configured".
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from yarl import URL

from .logs import REQUEST_ID, REQUEST_ID_HEADER
from .stats import KeywordCount, KeywordTotals, totals_from_counts

T = TypeVar("T")

if TYPE_CHECKING:
    from .crawler import Crawler


class CatalogueStatus(BaseModel):
    """Whether the crawler's book catalogue answers: ``reachable`` None before the first
    request; ``since`` when it last changed (ISO 8601 UTC); ``error`` the fault, if any."""

    model_config = ConfigDict(extra="allow")

    reachable: bool | None = None
    since: str | None = None
    error: str | None = None


class ProgressCounts(BaseModel):
    """How far the crawl is through its catalogue: ``/status``'s ``progress`` (docs/CRAWLER.md)."""

    books_done: int = Field(ge=0)
    books_total: int | None = Field(ge=0)
    percent: float | None = Field(ge=0, le=100)
    books_per_minute: float | None = Field(ge=0)
    eta_seconds: float | None = Field(ge=0)


class CrawlProgress(ProgressCounts):
    """What the api's public ``GET /crawl/progress`` answers: the counts and the crawl's state,
    nothing else (no catalogue address, no error text: those are the operator's)."""

    state: str


class CrawlerStatus(BaseModel):
    """Progress as the crawler's ``GET /status`` reports it (extra fields pass through)."""

    model_config = ConfigDict(extra="allow")

    state: str
    books_counted: int
    pages_done: int
    # Absent from crawlers older than this field: nothing is known about the catalogue.
    catalogue: CatalogueStatus | None = None
    # Absent from crawlers older than this field (and from the original, which has no /status).
    progress: ProgressCounts | None = None


def crawl_progress(status: CrawlerStatus) -> CrawlProgress:
    """The public progress out of a status; CrawlerUnavailable if the crawler reports none."""
    if status.progress is None:
        raise CrawlerUnavailable("the crawler does not report its progress")
    return CrawlProgress(state=status.state, **status.progress.model_dump())


_COUNTS = TypeAdapter(list[KeywordCount])
_TOTALS = TypeAdapter(KeywordTotals)


class CrawlerNotConfigured(Exception):
    """No crawler is part of this deployment (CRAWLER_BASE_URL unset)."""


class CrawlerUnavailable(Exception):
    """The crawler is configured but could not answer: down, slow, or garbage."""


class CrawlerRefused(Exception):
    """The crawler answered, refusing the question (HTTP 400); the reason is its error."""


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
        return str(body["error"])
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        return "the crawler refused the question"


class CrawlerEndpointMissing(CrawlerUnavailable):
    """The crawler answered 404: an original (Go) crawler lacks our additions."""


class CrawlerClient(Protocol):
    @property
    def location(self) -> str | None:
        """What readiness shows as the crawler's address ("in-process", a URL, or None).

        Read-only, so each implementation may narrow it (always a URL, always None)."""

    async def health(self) -> None:
        """Return if the crawler answers its health check, raise otherwise."""

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]: ...

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals: ...

    async def status(self) -> CrawlerStatus: ...

    async def progress(self) -> CrawlProgress:
        """How far the crawl is (``crawl_progress`` of the status), for everyone to see."""


class NoCrawlerClient:
    location = None

    async def health(self) -> None:
        raise CrawlerNotConfigured

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        raise CrawlerNotConfigured

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        raise CrawlerNotConfigured

    async def status(self) -> CrawlerStatus:
        raise CrawlerNotConfigured

    async def progress(self) -> CrawlProgress:
        raise CrawlerNotConfigured


class InProcessCrawlerClient:
    """A direct call into the crawler running in this process (``--role all``)."""

    location = "in-process"

    def __init__(self, crawler: Crawler) -> None:
        self._crawler = crawler

    async def health(self) -> None:
        await _as_unavailable(self._crawler.check(), "is not healthy")

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        return await _as_unavailable(self._crawler.stats(keywords, title), "failed")

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        return await _as_unavailable(self._crawler.totals(keywords, title), "failed")

    async def status(self) -> CrawlerStatus:
        status = await _as_unavailable(self._crawler.status(), "failed")
        try:
            return CrawlerStatus.model_validate(status)
        except ValidationError as exc:
            raise CrawlerUnavailable("the crawler's status was not understood") from exc

    async def progress(self) -> CrawlProgress:
        return crawl_progress(await self.status())


async def _as_unavailable(call: Awaitable[T], what: str) -> T:
    """The same honesty in-process as over HTTP: a broken crawler is "unavailable"."""
    try:
        return await call
    except Exception as exc:
        raise CrawlerUnavailable(f"the crawler {what}: {exc}") from exc


class HttpCrawlerClient:
    """The crawler's HTTP api at ``CRAWLER_BASE_URL`` (a standalone api role).

    The session is created and closed by the api app's cleanup context.
    """

    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        self.location = base_url
        # "http://crawler:8080", "http://crawler:8080/" and "http://host/prefix" all work.
        self._base = URL(base_url.rstrip("/") + "/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        if self._session is None:
            raise CrawlerUnavailable("the crawler client is not started")
        url = self._base.join(URL(path))
        try:
            # The request this call serves: the crawler's log lines for it carry the same id.
            request_id = REQUEST_ID.get()
            headers = {REQUEST_ID_HEADER: request_id} if request_id is not None else None
            async with self._session.get(url, params=params, headers=headers) as response:
                if response.status == 404:
                    raise CrawlerEndpointMissing(f"the crawler has no {path} (HTTP 404)")
                if response.status == 400:
                    raise CrawlerRefused(await _error_text(response))
                if response.status != 200:
                    raise CrawlerUnavailable(f"the crawler answered HTTP {response.status}")
                return await response.json(content_type=None)
        except TimeoutError as exc:
            raise CrawlerUnavailable("the crawler did not answer in time") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise CrawlerUnavailable(f"the crawler could not be reached: {exc}") from exc

    async def health(self) -> None:
        # The original crawler has /healthz but no /status: health is what they share.
        await self._get_json("healthz")

    async def stats(self, keywords: Sequence[str], title: str) -> list[KeywordCount]:
        body = await self._get_json("stats", {"keywords": ",".join(keywords), "title": title})
        try:
            return _COUNTS.validate_python(body)
        except ValidationError as exc:
            raise CrawlerUnavailable("the crawler's answer was not a list of counts") from exc

    async def totals(self, keywords: Sequence[str], title: str) -> KeywordTotals:
        try:
            body = await self._get_json("stats/totals", {"keywords": ",".join(keywords), "title": title})
        except CrawlerEndpointMissing:
            # The original crawler: sum its full answer here.
            return totals_from_counts(await self.stats(keywords, title))
        try:
            return _TOTALS.validate_python(body)
        except ValidationError as exc:
            raise CrawlerUnavailable("the crawler's totals were not understood") from exc

    async def status(self) -> CrawlerStatus:
        body = await self._get_json("status")
        try:
            return CrawlerStatus.model_validate(body)
        except ValidationError as exc:
            raise CrawlerUnavailable("the crawler's status was not understood") from exc

    async def progress(self) -> CrawlProgress:
        return crawl_progress(await self.status())
