"""SQLite stores: one module per store, and the opening and migrating they share."""

from .counts import CountedBook, CountStore, CrawlPosition
from .database import MEMORY, check_writable, migrate, open_database, utc_now_iso
from .messages import Message, MessageStore

__all__ = [
    "MEMORY",
    "CountStore",
    "CountedBook",
    "CrawlPosition",
    "Message",
    "MessageStore",
    "check_writable",
    "migrate",
    "open_database",
    "utc_now_iso",
]
