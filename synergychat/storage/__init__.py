"""SQLite stores: one module per store, and the opening and migrating they share."""

from .counts import CountedBook, CountStore, CrawlPosition
from .database import MEMORY, check_writable, migrate, open_database, utc_now_iso
from .messages import Message, MessageStore, StoreUnavailable

__all__ = [
    "MEMORY",
    "CountStore",
    "CountedBook",
    "CrawlPosition",
    "Message",
    "MessageStore",
    "StoreUnavailable",
    "check_writable",
    "migrate",
    "open_database",
    "utc_now_iso",
]
