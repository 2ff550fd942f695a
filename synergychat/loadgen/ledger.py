"""Which of our messages reached which people's streams, and how soon after they were sent.

A message is expected on the stream of every other person whose stream was
open (its ``hello`` received) before the message was sent: the api delivers to
every open stream, and a stream that drops and reconnects with Last-Event-ID
gets what it missed, late. The stream often shows a message before its POST
has answered (the api publishes before it replies), so arrivals of ids not yet
claimed are kept for a while and matched when the POST's answer names the id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .measure import Measurements

BOT_USERNAME = "crawler-bot"
# A message not on an open stream this long after it was sent is counted missed.
DELIVERY_DEADLINE_SECONDS = 30.0


@dataclass
class Pending:
    sent_at: float
    waiting_for: set[str]


class DeliveryLedger:
    def __init__(self, measurements: Measurements, deadline: float = DELIVERY_DEADLINE_SECONDS) -> None:
        self._measurements = measurements
        self._deadline = deadline
        self.people: set[str] = set()
        self.listening_since: dict[str, float] = {}
        self._pending: dict[int, Pending] = {}
        self._early: dict[int, list[tuple[str, float]]] = defaultdict(list)
        self.bot_replies_seen: set[int] = set()
        self.posted_ids: set[int] = set()

    def join(self, name: str) -> None:
        self.people.add(name)

    def listening(self, name: str, now: float) -> None:
        # The first hello counts: a reconnect with Last-Event-ID replays what it missed.
        self.listening_since.setdefault(name, now)

    def leave(self, name: str) -> None:
        """The person closed the page: nothing more is expected on their stream."""
        self.listening_since.pop(name, None)
        for message_id, pending in list(self._pending.items()):
            pending.waiting_for.discard(name)
            if not pending.waiting_for:
                del self._pending[message_id]

    def sent(self, message_id: int, author: str, sent_at: float) -> None:
        """The POST answered 201 and named the message's id."""
        self.posted_ids.add(message_id)
        waiting = {
            name for name, since in self.listening_since.items() if since <= sent_at and name != author
        }
        for receiver, arrived_at in self._early.pop(message_id, ()):
            if receiver in waiting:
                waiting.discard(receiver)
                self._measurements.delivered(max(0.0, arrived_at - sent_at))
        if waiting:
            self._pending[message_id] = Pending(sent_at, waiting)

    def arrived(self, receiver: str, message_id: int, author: str, now: float) -> None:
        if author == BOT_USERNAME:
            self.bot_replies_seen.add(message_id)
            return
        if author not in self.people or author == receiver:
            return  # not ours, or the author's own echo (the page shows its own post from the POST answer)
        pending = self._pending.get(message_id)
        if pending is None:
            if message_id not in self.posted_ids:
                self._early[message_id].append((receiver, now))
            return
        if receiver in pending.waiting_for:
            pending.waiting_for.discard(receiver)
            self._measurements.delivered(now - pending.sent_at)
            if not pending.waiting_for:
                del self._pending[message_id]

    def expire(self, now: float) -> None:
        """Count deliveries past their deadline as missed; forget arrivals no POST claimed."""
        for message_id, pending in list(self._pending.items()):
            if now - pending.sent_at > self._deadline:
                self._measurements.missed(len(pending.waiting_for))
                del self._pending[message_id]
        for message_id, arrivals in list(self._early.items()):
            if arrivals and now - arrivals[0][1] > self._deadline:
                del self._early[message_id]

    @property
    def outstanding(self) -> int:
        return sum(len(pending.waiting_for) for pending in self._pending.values())

    def give_up(self) -> int:
        """At the end of the run: whatever is still on its way was not delivered in time."""
        missed = self.outstanding
        if missed:
            self._measurements.missed(missed)
        self._pending.clear()
        return missed
