"""The part of a message store both databases share: one writer task, group commit, and
the newest messages kept in memory.

One writer task owns every write (group commit, as PostgreSQL does it for its WAL):
``add_and_page`` queues the message and waits; the writer takes everything queued,
stores it in one transaction, and releases each waiter after the commit that holds
its row. A failed commit fails exactly the messages in it, so a 201 always means
"committed", however many requests write at once. The newest messages are kept in
memory as JSON, so the page nearly every request wants costs no query.

A backend says how a batch is committed (``_commit``) and how older messages are read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .store import (
    DEFAULT_PAGE_SIZE,
    MAX_BATCH,
    MAX_PAGE_SIZE,
    WRITE_FAILURE_MEMORY_SECONDS,
    Listener,
    Message,
    StoreUnavailable,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingWrite:
    author_username: str
    text: str
    done: asyncio.Future[tuple[Message, bytes]]


class _Probe:
    """A readiness write, queued like a message so it waits behind the same writer."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done


@dataclass(frozen=True, slots=True)
class Commit:
    """What one transaction stored: ``messages`` (ids in order), right after ``previous_id``,
    the newest id committed before them."""

    previous_id: int
    messages: list[Message]


class GroupCommitStore(ABC):
    """A message store's writer task, its cache of the newest messages, and its listeners."""

    def __init__(self, history_id: str) -> None:
        self.history_id = history_id
        self._queue: asyncio.Queue[PendingWrite | _Probe] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._recent: deque[Message] = deque(maxlen=MAX_PAGE_SIZE)
        self._latest_page = b"[]"
        self._last_id = 0
        self._last_write_failure: float | None = None
        self._listeners: list[Listener] = []

    # What a backend provides.

    @abstractmethod
    async def _commit(self, writes: list[PendingWrite], probe: bool) -> Commit:
        """Store ``writes`` in one transaction (and the readiness probe's write, if asked);
        return only once it is committed."""

    @abstractmethod
    async def _read_after(self, after_id: int, limit: int) -> list[Message]:
        """Up to ``limit`` messages newer than ``after_id``, oldest first, from the database."""

    @abstractmethod
    async def _read_page_before(self, before: int, limit: int) -> bytes:
        """The ``limit`` newest messages older than ``before``, oldest first, as a JSON array."""

    async def _settle(self, commit: Commit) -> tuple[bytes, list[Message]]:
        """After a commit: the latest page for its writers, and what is new to the listeners."""
        return self._remember(commit.messages)

    async def _check_connection(self) -> None:
        """Raise if the database is plainly unusable, before queueing a probe write."""

    # The writer task.

    def _start_writer(self) -> None:
        self._task = asyncio.create_task(self._write_forever(), name="synergychat-message-writer")

    async def _stop_writer(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.done.done():
                item.done.set_exception(StoreUnavailable("the message store closed"))

    def add_listener(self, listener: Listener) -> None:
        """``listener`` gets every committed batch, in order, after its writers are released."""
        self._listeners.append(listener)

    async def add_and_page(self, author_username: str, text: str) -> tuple[Message, bytes]:
        """Store the message; return it and the latest page as of its commit (it is on it)."""
        if self._task is None or self._task.done():
            raise StoreUnavailable("the message store is not running")
        done: asyncio.Future[tuple[Message, bytes]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(PendingWrite(author_username, text, done))
        return await done

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            writes = [item for item in batch if isinstance(item, PendingWrite)]
            probes = [item for item in batch if isinstance(item, _Probe)]
            try:
                commit = await self._commit(writes, bool(probes))
            except asyncio.CancelledError:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(StoreUnavailable("the message store closed"))
                raise
            except Exception as exc:  # noqa: BLE001 - any failure fails its batch, never the writer
                self._last_write_failure = time.monotonic()
                log.error("could not store %d message(s): %s", len(writes), exc)
                failure = (
                    exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc) or repr(exc))
                )
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(failure)
                continue
            if commit.messages:
                self._last_write_failure = None  # a message was stored: writes work again
            page, new = await self._settle(commit)
            # No await from here to the listeners: batches reach them in id order.
            for item, message in zip(writes, commit.messages):
                if not item.done.done():
                    item.done.set_result((message, page))
            for probe in probes:
                if not probe.done.done():
                    probe.done.set_result(None)
            self._publish(new)

    # The newest messages, in memory.

    def _remember(self, messages: Sequence[Message]) -> tuple[bytes, list[Message]]:
        """Add committed messages (in id order) to the newest ones in memory; return the
        latest page and those that were new here."""
        new = [message for message in messages if message.id > self._last_id]
        if new:
            self._recent.extend(new)
            self._last_id = new[-1].id
            self._latest_page = self._join(DEFAULT_PAGE_SIZE)
        return self._latest_page, new

    def _publish(self, messages: list[Message]) -> None:
        if not messages:
            return
        for listener in self._listeners:
            try:
                listener(messages)
            except Exception:
                log.exception("a message listener failed")

    def _join(self, limit: int) -> bytes:
        newest = list(self._recent)[-limit:]
        return ("[" + ",".join(message.json for message in newest) + "]").encode()

    # Reading.

    async def page_json(self, limit: int, before: int | None = None) -> bytes:
        """The ``limit`` newest messages older than ``before``, oldest first, as a JSON array."""
        if before is None:
            if limit == DEFAULT_PAGE_SIZE:
                return self._latest_page
            return self._join(limit)  # the newest MAX_PAGE_SIZE are all in memory
        return await self._read_page_before(before, limit)

    async def after(self, after_id: int, limit: int) -> list[Message]:
        """Messages newer than ``after_id``, oldest first (a stream catching up)."""
        if self._recent and after_id >= self._recent[0].id - 1:
            newer = [message for message in self._recent if message.id > after_id]
            return newer[:limit]
        return await self._read_after(after_id, limit)

    async def last_id(self) -> int:
        return self._last_id

    # Readiness.

    async def check(self) -> None:
        """Raise unless a write commits now, and none failed in the last few seconds."""
        if self._task is None or self._task.done():
            raise StoreUnavailable("the message writer is not running")
        await self._check_connection()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Probe(done))
        await done
        failed_at = self._last_write_failure
        if failed_at is not None and time.monotonic() - failed_at < WRITE_FAILURE_MEMORY_SECONDS:
            raise StoreUnavailable("a message write failed moments ago")
