"""The crawler's ``GET /stats`` body: streamed a page of rows at a time, within limits.

Over a whole catalogue ``/stats`` is ~600k rows, ~50 MB of JSON. Built as one
body per request, ten clients that sent ``GET /stats`` and never read held
~500 MB, for as long as they liked. The limits here are nginx's, for the same
reasons nginx has them:

- at most ``CRAWLER_STATS_MAX_CONCURRENT`` downloads at once (nginx
  ``limit_conn``); one more gets a quick 503 with ``Retry-After`` instead of a
  queue that grows;
- a page of rows in memory per download: the next page is read from SQLite only
  once the client has taken the last one (backpressure);
- ``CRAWLER_SEND_TIMEOUT_SECONDS`` (nginx ``send_timeout``, 60 s by default): a
  client that takes nothing for that long is cut off, and its slot freed.

A client that goes away mid-download is the client's doing, not a server error:
it is logged at INFO with how far it got.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from aiohttp import web

from .http_errors import json_error
from .server import stamp
from .storage import StoreUnavailable

log = logging.getLogger(__name__)

# ~80 bytes of JSON a row: ~160 KB a page. Big enough that SQLite, not the hops
# between threads, sets the pace; small enough that a download holds little.
ROWS_PER_PAGE = 2000
# What a refused download is told to wait: a download of the whole catalogue takes ~1-2 s.
BUSY_RETRY_AFTER_SECONDS = 2


class SendTimedOut(Exception):
    """The client took nothing for the whole send timeout."""


class StatsDownloads:
    """Sends ``/stats`` bodies, at most ``max_concurrent`` at a time."""

    def __init__(self, max_concurrent: int, send_timeout: float) -> None:
        self.max_concurrent = max_concurrent
        self.send_timeout = send_timeout
        self.active = 0

    def describe(self) -> dict[str, float | int]:
        """For ``/status``: how many downloads run now, and the limits."""
        return {"active": self.active, "max": self.max_concurrent, "send_timeout_seconds": self.send_timeout}

    async def send(self, request: web.Request, pages: AsyncGenerator[bytes, None]) -> web.StreamResponse:
        """Send the JSON array whose rows ``pages`` yields (comma-joined, without brackets)."""
        if self.active >= self.max_concurrent:
            await pages.aclose()
            log.info(
                "GET %s from %s refused: %d downloads already running (CRAWLER_STATS_MAX_CONCURRENT)",
                request.path_qs,
                request.remote,
                self.active,
            )
            return json_error(
                503,
                f"too many /stats downloads at once ({self.max_concurrent}); try again in a moment",
                {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
            )
        self.active += 1
        try:
            async with aclosing(pages):
                # The first page before the headers: a database that fails here is still a 503.
                first = await anext(pages, b"")
                return await self._stream(request, first, pages)
        except asyncio.CancelledError:
            # A server run with handler_cancellation (aiohttp's test server) cancels the
            # handler when its client goes away: the same event, said the same way.
            if request.transport is None or request.transport.is_closing():
                log.info("GET %s: the client went away", request.path_qs)
            raise
        finally:
            self.active -= 1

    async def _stream(
        self, request: web.Request, first: bytes, rest: AsyncIterator[bytes]
    ) -> web.StreamResponse:
        # No Content-Length (the size is known only at the end): chunked, so a download
        # cut short is visibly incomplete to the client, never a shorter valid array.
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        stamp(request, response)  # its headers leave now, before the server sees the response
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        sent = 0
        try:
            sent += await self._write(response, b"[" + first)
            async for page in rest:
                sent += await self._write(response, b"," + page)
            sent += await self._write(response, b"]")
            await response.write_eof()
        except ConnectionError:
            log.info("GET %s: the client went away after %d bytes", request.path_qs, sent)
        except SendTimedOut:
            log.info(
                "GET %s: the client took nothing for %.0f s (CRAWLER_SEND_TIMEOUT_SECONDS) after %d bytes;"
                " closing the connection",
                request.path_qs,
                self.send_timeout,
                sent,
            )
            _abort(request)
        except (sqlite3.Error, ValueError, StoreUnavailable) as exc:
            # The headers are gone: cutting the connection is the only way left to say it failed.
            log.error("GET %s failed after %d bytes: %s; closing the connection", request.path_qs, sent, exc)
            _abort(request)
        return response

    async def _write(self, response: web.StreamResponse, data: bytes) -> int:
        try:
            async with asyncio.timeout(self.send_timeout):
                await response.write(data)
        except TimeoutError:
            raise SendTimedOut from None
        return len(data)


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
