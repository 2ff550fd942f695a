"""Live delivery of new messages to open streams (Server-Sent Events).

Every committed batch is encoded once, as one chunk of the HTTP response, and
written by one fan-out task straight into each stream's transport: no task or
encoding per message per client, and the POST that stored the message never
waits for it. A stream whose client stops reading (its unsent bytes pass
``MAX_UNSENT_BYTES``) is ended; its browser reconnects with ``Last-Event-ID``
and catches up from the database, so a slow client costs neither memory nor
other clients' latency. One timer pings every stream, so dead connections are
noticed without a task per stream.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Iterable

from .storage import Message

log = logging.getLogger(__name__)

# What one stream may have waiting in the kernel and the transport before it counts
# as not reading: about a thousand messages.
MAX_UNSENT_BYTES = 256 * 1024
PING_SECONDS = 15.0
# How soon a stream whose client hung up is let go (its memory with it).
SWEEP_SECONDS = 1.0
# The fan-out lets other work (POSTs, probes) run after this many streams.
STREAMS_PER_SLICE = 500
# After this many streams have closed, freed memory is handed back to the system.
RELEASE_AFTER_CLOSED = 1000
_PING = b": ping\n\n"
STREAM_SHUTDOWN = "the server is shutting down"


def release_memory() -> None:
    """Give freed heap back to the system. glibc keeps what thousands of closed streams
    used for reuse, so RSS would stay at its peak for good: their buffers, and with the
    image's ``PYTHONMALLOC=malloc`` every object of theirs (Python's own allocator keeps
    its objects' memory itself, docs/OPERATIONS.md)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc: nothing to ask


def sse_event(event: str, data: str, event_id: int | None = None) -> bytes:
    """One Server-Sent Event. ``data`` is JSON, so it holds no newline."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def message_events(messages: Iterable[Message]) -> bytes:
    return b"".join(sse_event("message", message.json, message.id) for message in messages)


def http_chunk(payload: bytes) -> bytes:
    # Streams are HTTP/1.1 chunked responses; a whole chunk per write keeps the framing
    # right when we write to the transport directly.
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Stream:
    """One open stream. ``last_id`` is the newest message id it was sent."""

    def __init__(self, transport: asyncio.Transport, last_id: int) -> None:
        self.transport = transport
        self.last_id = last_id
        # While the stream replays history, live batches wait here (ids decide what is new).
        self.held: list[Message] | None = []
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    def write(self, chunk: bytes) -> bool:
        """Write a whole chunk now; False (and the stream ended) if the client is gone or not reading."""
        transport = self.transport
        if transport.is_closing():
            self.end("the client went away")
            return False
        if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            self.end("the client stopped reading")
            return False
        transport.write(chunk)
        return True

    def send(self, batch: list[Message], whole: bytes | None = None) -> None:
        """Send the messages of ``batch`` (in id order) it has not had; ``whole`` is the
        batch already encoded, written as it is when the stream has had none of it."""
        if not batch or self.last_id >= batch[-1].id:
            return
        if whole is None or self.last_id >= batch[0].id:
            whole = http_chunk(message_events(message for message in batch if message.id > self.last_id))
        if self.write(whole):
            self.last_id = batch[-1].id


class MessageHub:
    def __init__(self) -> None:
        self._streams: set[Stream] = set()
        self._batches: asyncio.Queue[list[Message]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self._peak = 0
        self._release: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._streams)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._fan_out(), name="synergychat-fan-out"),
            asyncio.create_task(self._ping(), name="synergychat-stream-ping"),
        ]

    async def stop(self) -> None:
        self.close()
        if self._release is not None:
            self._release.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def join(self, transport: asyncio.Transport, last_id: int) -> Stream:
        """A new stream, holding live messages until ``go_live`` (after its catch-up)."""
        stream = Stream(transport, last_id)
        if self.closed:
            stream.end(STREAM_SHUTDOWN)
        self._streams.add(stream)
        self._peak = max(self._peak, len(self._streams))
        return stream

    def go_live(self, stream: Stream) -> None:
        """Send what arrived during the catch-up (newer than it got), then stream directly."""
        held, stream.held = stream.held or [], None
        stream.send(held)

    def leave(self, stream: Stream) -> None:
        self._streams.discard(stream)
        if self._release is None and self._peak - len(self._streams) >= RELEASE_AFTER_CLOSED:
            # Once the wave of closing streams has passed, not once per stream.
            self._release = asyncio.get_running_loop().call_later(1.0, self._release_memory)

    def _release_memory(self) -> None:
        self._release = None
        self._peak = len(self._streams)
        release_memory()

    def publish(self, messages: list[Message]) -> None:
        """Called with each committed batch, in commit order. Never blocks."""
        if not self.closed:
            self._batches.put_nowait(messages)

    def close(self) -> None:
        self.closed = True
        for stream in self._streams:
            stream.end(STREAM_SHUTDOWN)

    async def _fan_out(self) -> None:
        while True:
            batch = await self._batches.get()
            # Encoded once for every stream that has had none of the batch.
            whole = http_chunk(message_events(batch))
            for number, stream in enumerate(list(self._streams), start=1):
                if stream.held is not None:
                    stream.held.extend(batch)
                else:
                    stream.send(batch, whole)
                if number % STREAMS_PER_SLICE == 0:
                    await asyncio.sleep(0)

    async def _ping(self) -> None:
        """Each second, end the streams whose client hung up (their transport is closing);
        every ``PING_SECONDS``, write a comment to all, which finds the silently dead."""
        chunk = http_chunk(_PING)
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + PING_SECONDS
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            ping = loop.time() >= next_ping
            if ping:
                next_ping = loop.time() + PING_SECONDS
            for number, stream in enumerate(list(self._streams), start=1):
                if stream.transport.is_closing():
                    stream.end("the client went away")
                elif ping and stream.held is None:
                    stream.write(chunk)
                if number % STREAMS_PER_SLICE == 0:
                    await asyncio.sleep(0)
