"""Stores: one module per store and database (SQLite, PostgreSQL), one interface per store."""

from .count_store import ClaimedBook, CountedBook, CountStore, CrawlFleet, CrawlPosition, LeaseLost
from .counts import SqliteCountStore
from .database import MEMORY, check_writable, migrate, open_database, utc_now_iso
from .messages import SqliteMessageStore
from .store import CommitOutcomeUnknown, Message, MessageStore, StoreUnavailable

__all__ = [
    "MEMORY",
    "ClaimedBook",
    "CommitOutcomeUnknown",
    "CountStore",
    "CountedBook",
    "CrawlFleet",
    "CrawlPosition",
    "LeaseLost",
    "Message",
    "MessageStore",
    "SqliteCountStore",
    "SqliteMessageStore",
    "StoreUnavailable",
    "check_writable",
    "migrate",
    "open_database",
    "utc_now_iso",
]
