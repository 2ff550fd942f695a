"""One simulated person's browser talking to the api: the page's requests, nothing else."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from yarl import URL

from ..doctor.page import origin_of, parse_page
from ..version import version
from .target import ApiTarget

USER_AGENT = f"synergychat-loadgen/{version()} (simulated chat users)"
# A browser keeps at most six connections per host; so does each simulated person.
CONNECTIONS_PER_PERSON = 6
# The api pings open streams every 15 s; three missed pings mean the stream is dead.
STREAM_STALL_SECONDS = 45.0


class RequestFailed(Exception):
    """A request that did not get the answer a browser needs; ``reason`` is short and low-cardinality."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# What a request that failed raises: a wrong answer, aiohttp's errors (connection, payload,
# content type), and timeouts. Anything else is a bug of the generator's and stops it.
REQUEST_FAILURES = (RequestFailed, aiohttp.ClientError, TimeoutError)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, RequestFailed):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "broken answer"
    return type(exc).__name__


def new_session(timeout_seconds: float, connections: int = CONNECTIONS_PER_PERSON) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit_per_host=connections),
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        headers={"User-Agent": USER_AGENT},
    )


class ChatClient:
    def __init__(self, target: ApiTarget, timeout_seconds: float) -> None:
        self.target = target
        self._timeout = timeout_seconds
        self._session = new_session(timeout_seconds)

    async def close(self) -> None:
        await self._session.close()

    async def _json(self, method: str, url: URL, expected: int, body: Any = None) -> Any:
        async with self._session.request(method, url, json=body, allow_redirects=False) as response:
            if response.status != expected:
                raise RequestFailed(f"HTTP {response.status}")
            try:
                return json.loads(await response.read())
            except ValueError:
                raise RequestFailed("not JSON") from None

    async def open_page(self) -> None:
        """What the browser fetches before the chat starts: the page, then its own scripts."""
        page_url = self.target.page
        if page_url is None:
            return
        async with self._session.get(page_url, allow_redirects=False) as response:
            if response.status != 200:
                raise RequestFailed(f"HTTP {response.status}")
            html = await response.text(errors="replace")
        for src in parse_page(html).script_srcs:
            script_url = page_url.join(URL(src))
            if origin_of(script_url) != origin_of(page_url):
                continue  # never another site's
            async with self._session.get(script_url, allow_redirects=False) as response:
                await response.read()
                if response.status != 200:
                    raise RequestFailed(f"HTTP {response.status}")

    async def messages(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        query = {"limit": str(limit)} | ({"before": str(before)} if before is not None else {})
        page = await self._json("GET", self.target.endpoint("messages").with_query(query), 200)
        if not isinstance(page, list):
            raise RequestFailed("not a list of messages")
        return page

    async def post(self, author: str, text: str) -> list[dict[str, Any]]:
        page = await self._json(
            "POST", self.target.endpoint("messages"), 201, {"AuthorUsername": author, "Text": text}
        )
        if not isinstance(page, list):
            raise RequestFailed("not a list of messages")
        return page

    @asynccontextmanager
    async def stream(self, last_event_id: str | None) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        # No total timeout: a stream is open for the whole visit; silence is what kills it.
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=STREAM_STALL_SECONDS)
        async with self._session.get(
            self.target.endpoint("messages/stream"), headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            if response.status != 200 or response.content_type != "text/event-stream":
                raise RequestFailed(
                    f"HTTP {response.status}" if response.status != 200 else "not an event stream"
                )
            yield response
