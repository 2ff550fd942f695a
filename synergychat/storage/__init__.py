"""Stores: one module per store and database (SQLite, PostgreSQL), one interface per store."""

from .counts import CountedBook, CountStore, CrawlPosition
from .database import MEMORY, check_writable, migrate, open_database, utc_now_iso
from .messages import SqliteMessageStore
from .store import CommitOutcomeUnknown, Message, MessageStore, StoreUnavailable

__all__ = [
    "MEMORY",
    "CommitOutcomeUnknown",
    "CountStore",
    "CountedBook",
    "CrawlPosition",
    "Message",
    "MessageStore",
    "SqliteMessageStore",
    "StoreUnavailable",
    "check_writable",
    "migrate",
    "open_database",
    "utc_now_iso",
]
