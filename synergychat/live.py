"""Live delivery of new messages to open streams (Server-Sent Events).

Publishing never waits on a subscriber: each one has a bounded backlog, and a
subscriber that falls behind is told to catch up from the database instead of
holding memory. Closing the hub (on shutdown) ends every stream.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .storage import Message

# Enough for bursts; past this the stream re-reads from the database.
SUBSCRIBER_BACKLOG = 256


class Subscriber:
    def __init__(self) -> None:
        self.pending: deque[Message] = deque()
        self.overflowed = False
        self.closed = False
        self.wake = asyncio.Event()

    def offer(self, message: Message) -> None:
        if len(self.pending) >= SUBSCRIBER_BACKLOG:
            self.overflowed = True
        else:
            self.pending.append(message)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    def take(self) -> list[Message]:
        taken = list(self.pending)
        self.pending.clear()
        self.wake.clear()
        return taken


class MessageHub:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        if self.closed:
            subscriber.close()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def publish(self, message: Message) -> None:
        for subscriber in self._subscribers:
            subscriber.offer(message)

    def close(self) -> None:
        self.closed = True
        for subscriber in self._subscribers:
            subscriber.close()
