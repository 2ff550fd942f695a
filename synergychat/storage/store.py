"""What the api needs from a message store, whichever database holds the messages.

Two stores keep this promise: SQLite's (``messages.py``, one process, the default)
and PostgreSQL's (``pg_messages.py``, any number of api replicas on one database).
The api, the live fan-out and readiness see only :class:`MessageStore`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# The largest page a client may ask for; the newest this many stay in memory.
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# At most this many messages share one commit. A page of the newest 100 then always
# holds every message of the commit that answers it.
MAX_BATCH = DEFAULT_PAGE_SIZE
# After a failed write, readiness stays 503 this long even if a probe write passes: a
# near-full disk can take a probe's few bytes and still refuse messages.
WRITE_FAILURE_MEMORY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    author_username: str
    text: str
    created_at: str
    # The message as the wire carries it, encoded once for pages and streams alike.
    json: str = field(default="", compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        # The original's PascalCase names are the wire contract; id and created_at are ours.
        return {
            "id": self.id,
            "AuthorUsername": self.author_username,
            "Text": self.text,
            "created_at": self.created_at,
        }


def new_message(message_id: int, author_username: str, text: str, created_at: str) -> Message:
    encoded = json.dumps(
        {"id": message_id, "AuthorUsername": author_username, "Text": text, "created_at": created_at},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return Message(message_id, author_username, text, created_at, encoded)


class StoreUnavailable(Exception):
    """The database refused a write (full disk, lost volume, locked, down): nothing was stored."""


class CommitOutcomeUnknown(StoreUnavailable):
    """The connection to the database broke while it was committing: the message may or may
    not be stored (the one case a networked database can't answer for; never a false 201)."""


# Gets each batch of newly committed messages, in id order, each message once.
Listener = Callable[[list[Message]], None]


class MessageStore(Protocol):
    """The chat history. Ids increase in commit order as every reader sees them, so a
    reader that has seen id N has seen every message with a smaller id."""

    # Which history the ids belong to: a new database starts its ids over.
    history_id: str

    async def close(self) -> None: ...

    def add_listener(self, listener: Listener) -> None:
        """``listener`` gets every committed batch (this process's and, on a shared database,
        every other's), in id order, after the batch's writers here are released."""

    async def add_and_page(self, author_username: str, text: str) -> tuple[Message, bytes]:
        """Store the message; return it and the latest page as of its commit (it is on it).
        Returns only once the message is committed; raises :class:`StoreUnavailable` if not."""
        ...

    async def page_json(self, limit: int, before: int | None = None) -> bytes:
        """The ``limit`` newest messages older than ``before``, oldest first, as a JSON array."""
        ...

    async def after(self, after_id: int, limit: int) -> list[Message]:
        """Messages newer than ``after_id``, oldest first (a stream catching up)."""
        ...

    async def last_id(self) -> int:
        """The newest committed id: no stream may have been sent a newer one."""
        ...

    async def check(self) -> None:
        """Raise unless a write commits now, and none failed in the last few seconds."""
