"""The api role: messages (stored in SQLite, pushed live), /stats through crawler-bot."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator

from aiohttp import web

from . import keys
from .access_log import QUIET_ACCESS
from .bot import BOT_USERNAME, answer_stats
from .commands import is_stats_command, parse_stats_command
from .cors import CorsPolicy
from .http_errors import JSON_ANSWERS, ClientError, JsonAnswers
from .live import STREAM_SHUTDOWN, MessageHub, message_events, sse_event
from .metrics import API_METRICS, ApiMetrics
from .openapi import DOCUMENT_PATH, openapi_handler
from .public_progress import CrawlProgressEndpoint
from .readiness import Checks, healthz, readiness_response
from .server import MAX_STREAMS, CountedWarning, stamp
from .settings import ApiSettings, StartupError, masked_database_url
from .storage import CommitOutcomeUnknown, MessageStore, SqliteMessageStore, StoreUnavailable
from .storage.legacy_import import import_original_messages
from .transport import CrawlerClient, CrawlerNotConfigured, CrawlerUnavailable, HttpCrawlerClient
from .validation import (
    MAX_ID,
    parse_int_param,
    parse_new_message,
    parse_page_size,
    parse_whole_number,
    read_capped_body,
)

log = logging.getLogger(__name__)

# Readiness must answer well inside a probe's timeout even when a dependency hangs
# (Kubernetes' default is 1 s): the checks run side by side, the crawler's two in turn.
DATABASE_CHECK_TIMEOUT_SECONDS = 1.0
CRAWLER_CHECK_TIMEOUT_SECONDS = 0.4
# A stream replays what a reconnecting client missed in chunks of this many, and
# must have caught up within this long (a client that doesn't read is let go).
CATCH_UP_CHUNK = 500
CATCH_UP_SECONDS = 30.0
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx and other proxies: pass each event on as it comes.
    "X-Accel-Buffering": "no",
}


def blocked_words_pattern(words: list[str]) -> re.Pattern[str] | None:
    # Whole words only: "heck" is masked, "check" is not. Lookarounds rather than \b,
    # so a word that starts or ends with punctuation ("c++") is found too.
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def mask_blocked_words(text: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is None:
        return text
    return pattern.sub(lambda match: "*" * len(match.group()), text)


# A wrong URL, password or database name, or a database that is down or newer than us.


def message_store_errors(exc: Exception) -> tuple[int, str] | None:
    if isinstance(exc, CommitOutcomeUnknown):
        # Rare (PostgreSQL's connection broke mid-commit, and it can't be asked yet): say so.
        return 503, f"the message database did not confirm the commit, the message may not be stored: {exc}"
    # A full disk, a lost volume, a database down: the client should retry, nothing was stored.
    if isinstance(exc, (StoreUnavailable, sqlite3.Error)):
        return 503, f"the message database is unavailable, nothing was stored: {exc}"
    return None


class ApiHandlers:
    def __init__(self, settings: ApiSettings, cors: CorsPolicy) -> None:
        self._cors = cors
        self._blocked = blocked_words_pattern(settings.api_blocked_words)
        self._crawler_timeout = settings.crawler_timeout_seconds
        self._stream_refusals = CountedWarning(
            log, "%d stream(s) refused at the stream limit (%d, from MAX_CONNECTIONS)"
        )

    async def describe(self, request: web.Request) -> web.Response:
        # Load balancers probe GET / by default; answering 200 here keeps them happy.
        return web.json_response(
            {
                "service": "synergychat-api",
                "status": "ok",
                "endpoints": [
                    "/healthz",
                    "/readyz",
                    "/messages",
                    "/messages/stream",
                    "/crawl/progress",
                    DOCUMENT_PATH,
                ],
            }
        )

    async def readyz(self, request: web.Request) -> web.Response:
        return readiness_response(*await api_readiness(request.app))

    async def list_messages(self, request: web.Request) -> web.Response:
        limit = parse_page_size(request)
        before = parse_int_param(request, "before", None, 1, MAX_ID)
        page = await request.app[keys.MESSAGE_STORE].page_json(limit, before)
        return web.Response(body=page, content_type="application/json")

    async def post_message(self, request: web.Request) -> web.Response:
        self._cors.check_write(request)
        new = parse_new_message(await read_capped_body(request))
        store = request.app[keys.MESSAGE_STORE]
        _, page = await store.add_and_page(new.AuthorUsername, mask_blocked_words(new.Text, self._blocked))
        if is_stats_command(new.Text):
            reply = await answer_stats(
                request.app[keys.CRAWLER_CLIENT], parse_stats_command(new.Text), self._crawler_timeout
            )
            _, page = await store.add_and_page(BOT_USERNAME, reply)
        return web.Response(body=page, status=201, content_type="application/json")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: replay what the client missed, then every new message."""
        last_id = parse_int_param(request, "after", None, 0, MAX_ID)
        # EventSource sends back the last id it saw; one we never issued is ignored.
        header_id = parse_whole_number(request.headers.get("Last-Event-ID", "").strip())
        if header_id is not None and header_id <= MAX_ID:
            last_id = header_id
        store = request.app[keys.MESSAGE_STORE]
        hub = request.app[keys.MESSAGE_HUB]
        transport = request.transport
        if transport is None or hub.closed:
            request[QUIET_ACCESS] = True
            raise ClientError(503, "the server is shutting down or the client has gone")
        limit = request.config_dict.get(MAX_STREAMS)
        if limit is not None and len(hub) >= limit:
            request[QUIET_ACCESS] = True
            self._stream_refusals.count(limit)
            raise ClientError(503, "this api holds as many streams as it can; try again in a moment")
        # Before the answer starts: a database that can't say is a 503 (the page retries).
        newest = await store.last_id()
        response = web.StreamResponse(headers=SSE_HEADERS)
        stamp(request, response)  # its headers leave now, before the server sees the response
        await response.prepare(request)
        # Which history the ids belong to: a page that saw another one starts over.
        hello = sse_event("hello", json.dumps({"history": store.history_id, "last_id": newest}))
        if last_id is None:
            last_id = newest
        elif last_id > newest:
            # The client saw ids this database never had: the api restarted without a
            # database file, or one was restored. Its history is stale; tell it so, and
            # carry on from what we have (the event's id resets EventSource's).
            reset = {"reason": "the message history was replaced", "last_id": newest}
            hello += sse_event("reset", json.dumps(reset), newest)
            last_id = newest
        stream = hub.join(transport, last_id)
        try:
            await response.write(hello)
            async with asyncio.timeout(CATCH_UP_SECONDS):
                while chunk := await store.after(stream.last_id, CATCH_UP_CHUNK):
                    await response.write(message_events(chunk))
                    stream.last_id = chunk[-1].id
            hub.go_live(stream)
            reason = await stream.ended
        except (ConnectionError, TimeoutError) as exc:
            reason = f"the client went away or stalled ({type(exc).__name__})"
        finally:
            hub.leave(stream)
        log.debug("stream ended: %s", reason)
        response.force_close()
        if reason != STREAM_SHUTDOWN and not transport.is_closing():
            # Not reading, or gone: don't wait for a goodbye it won't read.
            transport.abort()
        return response


async def api_readiness(app: web.Application) -> tuple[bool, Checks]:
    store, crawler = app[keys.MESSAGE_STORE], app[keys.CRAWLER_CLIENT]
    database, crawler_check = await asyncio.gather(check_database(store), check_crawler(crawler))
    # The crawler being down does not stop the chat, so it doesn't fail readiness.
    return bool(database["ok"]), {"database": database, "crawler": crawler_check}


async def check_database(store: MessageStore) -> dict[str, object]:
    try:
        await asyncio.wait_for(store.check(), DATABASE_CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - a probe: whatever the store raises means "not ready"
        return {"ok": False, "detail": f"database not writable: {exc or type(exc).__name__}"}
    return {"ok": True, "detail": "writable"}


async def check_crawler(crawler: CrawlerClient) -> dict[str, object]:
    result: dict[str, object] = {"location": crawler.location, "progress": None}
    try:
        await asyncio.wait_for(crawler.health(), CRAWLER_CHECK_TIMEOUT_SECONDS)
    except CrawlerNotConfigured:
        return {**result, "ok": False, "state": "not configured", "detail": "CRAWLER_BASE_URL is not set"}
    except (TimeoutError, CrawlerUnavailable) as exc:
        return {**result, "ok": False, "state": "unreachable", "detail": str(exc) or "no answer in time"}
    try:
        status = await asyncio.wait_for(crawler.status(), CRAWLER_CHECK_TIMEOUT_SECONDS)
        result["progress"] = status.model_dump()
    except (TimeoutError, CrawlerUnavailable):
        pass  # an original crawler has no /status; reachable is what matters
    return {**result, "ok": True, "state": "ok", "detail": "reachable"}


def create_api_app(
    settings: ApiSettings, crawler: CrawlerClient, metrics: ApiMetrics | None = None
) -> web.Application:
    """Build the api app; its database and client session open in ``cleanup_ctx``.

    ``metrics``: the process's (``roles.build_app``); built alone, the app counts into its own.
    """
    cors = CorsPolicy(settings.api_cors_origins)
    app = web.Application()
    app[JSON_ANSWERS] = JsonAnswers(message_store_errors, guard=cors.guard, finish=cors.add_headers)
    app[keys.API_SETTINGS] = settings
    app[keys.CRAWLER_CLIENT] = crawler
    app[keys.MESSAGE_HUB] = hub = MessageHub()
    app[API_METRICS] = metrics = metrics or ApiMetrics()
    # Read when scraped: nothing to update as streams come and go.
    metrics.stream_clients.set_function(hub.__len__)
    app.cleanup_ctx.append(message_store_ctx)
    app.cleanup_ctx.append(crawler_client_ctx)
    app.on_shutdown.append(close_streams)

    handlers = ApiHandlers(settings, cors)
    app.router.add_get("/", handlers.describe)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/messages", handlers.list_messages)
    app.router.add_post("/messages", handlers.post_message)
    # HEAD would send the stream's first events after the headers; streams are GET only.
    app.router.add_get("/messages/stream", handlers.stream, allow_head=False)
    # Public: only the crawl's state and counts (the crawler's /status is the operator's).
    progress = CrawlProgressEndpoint(crawler, settings.crawler_timeout_seconds)
    app.router.add_get("/crawl/progress", progress.handle)
    app.router.add_get(DOCUMENT_PATH, openapi_handler("api"))
    return app


async def open_message_store(settings: ApiSettings) -> tuple[MessageStore, str]:
    """The store the settings choose (PostgreSQL when API_DATABASE_URL is set, else SQLite),
    and where it is, for the log (never a password)."""
    url = settings.api_database_url
    if url:
        where = masked_database_url(url)
        if settings.api_db_filepath:
            log.info("API_DB_FILEPATH is not used: messages are kept in PostgreSQL (API_DATABASE_URL)")
        # asyncpg is imported only when asked for: it adds ~0.4 s to every SQLite start.
        from .storage.pg_messages import PostgresMessageStore
        from .storage.postgres import open_store

        opening = PostgresMessageStore.open(url, settings.api_database_pool_size)
        return await open_store("API_DATABASE_URL", url, "message database", opening), where
    path = settings.api_db_filepath
    if not path:
        log.warning("API_DB_FILEPATH is not set: messages are kept in memory and lost on exit")
    try:
        # The original api's JSON file at this path becomes our database first (kept as a backup).
        await import_original_messages(path or None)
        return await SqliteMessageStore.open(path or None), path or "memory"
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        raise StartupError(f"API_DB_FILEPATH={path!r}: cannot open the message database: {exc}") from exc


async def message_store_ctx(app: web.Application) -> AsyncIterator[None]:
    store, where = await open_message_store(app[keys.API_SETTINGS])
    hub = app[keys.MESSAGE_HUB]
    store.add_listener(hub.publish)
    stored = app[API_METRICS].messages_stored
    store.add_listener(lambda batch: stored.inc(len(batch)))
    await hub.start()
    app[keys.MESSAGE_STORE] = store
    log.info("message store ready at %s", where)
    yield
    await hub.stop()
    await store.close()


async def crawler_client_ctx(app: web.Application) -> AsyncIterator[None]:
    client = app[keys.CRAWLER_CLIENT]
    if isinstance(client, HttpCrawlerClient):
        await client.start()
        yield
        await client.close()
    else:
        yield


async def close_streams(app: web.Application) -> None:
    app[keys.MESSAGE_HUB].close()
