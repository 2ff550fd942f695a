"""One simulated person: opens the chat, keeps its stream open, talks now and then, scrolls back.

The pacing is a person's, not a benchmark's: pauses between messages are
random (exponential around LOADGEN_POST_INTERVAL_SECONDS, never under a
second), the first message comes after reading a while, and after a failure
the person waits longer each time (up to a minute) instead of hammering a
struggling api. Each person has its own connections, as each browser does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from . import chatter
from .client import REQUEST_FAILURES, ChatClient, RequestFailed, failure_reason
from .ledger import DeliveryLedger
from .measure import Kind, Measurements
from .sse import read_events

log = logging.getLogger(__name__)

# The page's own page size (app.js PAGE_SIZE) when opening the chat and scrolling back.
PAGE_SIZE = 100
HISTORY_CHANCE = 0.10  # of turns spent scrolling back instead of talking
STATS_CHANCE = 0.05  # of messages that ask crawler-bot for /stats
SHORTEST_PAUSE_SECONDS = 1.0
LONGEST_BACKOFF_SECONDS = 60.0
# EventSource reconnects after about 3 s; we do too, then back off.
STREAM_RETRY_SECONDS = 3.0


@dataclass(frozen=True)
class Pacing:
    mean_post_interval: float


class Person:
    def __init__(
        self,
        name: str,
        client: ChatClient,
        ledger: DeliveryLedger,
        measurements: Measurements,
        pacing: Pacing,
        rng: random.Random,
    ) -> None:
        self.name = name
        self._client = client
        self._ledger = ledger
        self._measurements = measurements
        self._pacing = pacing
        self._rng = rng
        self._oldest_seen: int | None = None
        self._last_own_id = 0
        self._failures_in_a_row = 0
        self._last_event_id: str | None = None
        self._visit_ends: float | None = None
        self.stream_task: asyncio.Task[None] | None = None

    # ---- the visit -----------------------------------------------------------------

    async def visit(self, leaving: asyncio.Event, stay_seconds: float | None) -> None:
        """Open the chat and take part until ``leaving`` is set or the stay is over.

        The stream stays open afterwards, until ``close``: at the end of a run the
        messages still on their way should find everyone listening.
        """
        self._visit_ends = None if stay_seconds is None else time.monotonic() + stay_seconds
        self._ledger.join(self.name)
        self.stream_task = asyncio.create_task(self._keep_stream(), name=f"stream {self.name}")
        if self._client.target.page is not None:
            await self._request(Kind.PAGE, self._client.open_page())
        await self._request(Kind.LOAD, self._open_chat())
        # Read a while before saying anything, like someone who just opened the page.
        if await self._pause(leaving, self._rng.uniform(1.0, self._pacing.mean_post_interval)):
            return
        while not leaving.is_set():
            if self._oldest_seen is not None and self._rng.random() < HISTORY_CHANCE:
                await self._scroll_back(leaving)
            elif self._rng.random() < STATS_CHANCE:
                await self._request(Kind.STATS, self._say(chatter.stats_command(self._rng)))
            else:
                await self._request(Kind.POST, self._say(chatter.chat_message(self._rng)))
            if await self._pause(leaving, self._think_time() + self._backoff()):
                return

    async def close(self) -> None:
        if self.stream_task is not None:
            self.stream_task.cancel()
            await asyncio.gather(self.stream_task, return_exceptions=True)
        await self._client.close()

    def _think_time(self) -> float:
        return max(SHORTEST_PAUSE_SECONDS, self._rng.expovariate(1 / self._pacing.mean_post_interval))

    def _backoff(self) -> float:
        if not self._failures_in_a_row:
            return 0.0
        return min(LONGEST_BACKOFF_SECONDS, 2.0**self._failures_in_a_row) * self._rng.uniform(0.5, 1.0)

    async def _pause(self, leaving: asyncio.Event, seconds: float) -> bool:
        """Wait; True (at once) when the run is over or this person's visit is."""
        if self._visit_ends is not None:
            seconds = min(seconds, max(0.0, self._visit_ends - time.monotonic()))
        try:
            await asyncio.wait_for(leaving.wait(), seconds)
            return True
        except TimeoutError:
            return self._visit_ends is not None and time.monotonic() >= self._visit_ends

    async def _request(self, kind: Kind, action: Awaitable[None]) -> bool:
        started = time.monotonic()
        try:
            await action
        except REQUEST_FAILURES as exc:  # all felt as a failure
            self._failures_in_a_row += 1
            self._measurements.failed(kind, failure_reason(exc))
            return False
        self._failures_in_a_row = 0
        self._measurements.succeeded(kind, time.monotonic() - started)
        return True

    # ---- what a person does ----------------------------------------------------------

    async def _open_chat(self) -> None:
        page = await self._client.messages(PAGE_SIZE)
        self._note_oldest(page)

    async def _scroll_back(self, leaving: asyncio.Event) -> None:
        # A page or three, reading each for a moment.
        for _ in range(self._rng.randint(1, 3)):
            if self._oldest_seen is None or self._oldest_seen <= 1:
                return
            if not await self._request(Kind.HISTORY, self._older_page()):
                return
            if await self._pause(leaving, self._rng.uniform(1.0, 4.0)):
                return

    async def _older_page(self) -> None:
        page = await self._client.messages(PAGE_SIZE, before=self._oldest_seen)
        if page:
            self._note_oldest(page)
        else:
            self._oldest_seen = None  # the beginning of the history

    async def _say(self, text: str) -> None:
        sent_at = time.monotonic()
        page = await self._client.post(self.name, text)
        self._note_oldest(page)
        mine = [m.get("id") for m in page if m.get("AuthorUsername") == self.name]
        newest = max((id_ for id_ in mine if isinstance(id_, int)), default=0)
        if newest > self._last_own_id:
            self._last_own_id = newest
            self._ledger.sent(newest, self.name, sent_at)
        # else: the page after it was already 100 messages on; stored, but not traceable for delivery.

    def _note_oldest(self, page: list[dict[str, Any]]) -> None:
        ids = [m["id"] for m in page if isinstance(m.get("id"), int)]
        if ids:
            self._oldest_seen = min(ids) if self._oldest_seen is None else min(self._oldest_seen, *ids)

    # ---- the stream ----------------------------------------------------------------------

    async def _keep_stream(self) -> None:
        """Hold the stream open, reconnecting like EventSource, until cancelled."""
        failures = 0
        while True:
            connected = False
            started = time.monotonic()
            try:
                async with self._client.stream(self._last_event_id) as response:
                    async for event in read_events(response):
                        now = time.monotonic()
                        if event.id is not None:
                            self._last_event_id = event.id
                        if event.type == "hello" and not connected:
                            connected, failures = True, 0
                            connect_seconds = now - started
                            self._measurements.stream_opened()
                            self._ledger.listening(self.name, now)
                        elif event.type == "message":
                            self._on_message(event.data, now)
                raise RequestFailed("ended by the api")
            except asyncio.CancelledError:
                # Closed by us at the end of the visit: a stream that served its whole time.
                if connected:
                    self._measurements.stream_closed()
                    self._measurements.succeeded(Kind.STREAM, connect_seconds)
                raise
            except (*REQUEST_FAILURES, ValueError) as exc:  # ValueError: a line past aiohttp's limit
                if connected:
                    self._measurements.stream_closed()
                reason = "stalled" if isinstance(exc, TimeoutError) and connected else failure_reason(exc)
                self._measurements.failed(Kind.STREAM, reason)
                failures += 1
            delay = min(LONGEST_BACKOFF_SECONDS, STREAM_RETRY_SECONDS * 2 ** (failures - 1))
            await asyncio.sleep(delay * self._rng.uniform(0.8, 1.2))

    def _on_message(self, data: str, now: float) -> None:
        try:
            message = json.loads(data)
            message_id, author = message["id"], message["AuthorUsername"]
        except (ValueError, KeyError, TypeError):
            log.warning("%s: a stream event that is not a message: %.200s", self.name, data)
            return
        if isinstance(message_id, int) and isinstance(author, str):
            self._ledger.arrived(self.name, message_id, author, now)
