"""``/stats`` downloads from a count store's file: each on a read-only connection of its own,
all of them in one thread, page by page."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, TypeVarTuple

from .database import PROBE_BUSY_TIMEOUT_SECONDS, existing_file_uri

T = TypeVar("T")
Args = TypeVarTuple("Args")

# The page cache of a /stats download's own connection, in KiB. SQLite's default is
# 2 MB a connection: ten downloads held open by clients that don't read took 5-6 MB
# each. A download reads each page once anyway.
STREAM_CACHE_KIB = 256


def _open_connection(path: Path) -> sqlite3.Connection:
    """A read-only connection for one /stats download (used only in the reader thread)."""
    conn = sqlite3.connect(
        existing_file_uri(path), timeout=PROBE_BUSY_TIMEOUT_SECONDS, check_same_thread=False, uri=True
    )
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute(f"PRAGMA cache_size = -{STREAM_CACHE_KIB}")
    except BaseException:
        conn.close()
        raise
    return conn


class StatsFileReader:
    """Reads ``/stats`` rows from the count store's file, off the store's connection and lock.

    Every download reads in this one thread, a page at a time in turn. A thread per
    download (aiosqlite's way) let ten downloads fight the event loop for the GIL
    (sqlite3 lets it go and takes it back for every row): /readyz took seconds. One
    thread also caps what downloads cost at about one core.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(1, "synergychat-stats-reader")

    def close(self) -> None:
        """Stop taking work; a download still running ends at its next page."""
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self, call: Callable[[*Args], T], *args: *Args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    async def pages(
        self, query: str, params: Sequence[object], rows_per_page: int
    ) -> AsyncGenerator[bytes, None]:
        """The first column of ``query``'s rows (bytes), ``rows_per_page`` at a time joined
        by commas. The connection's read transaction is one snapshot for the whole
        download, however the crawl writes meanwhile. Use it in ``aclosing``."""
        conn = await self._run(_open_connection, self._path)
        try:
            cursor = await self._run(conn.execute, query, params)
            while rows := await self._run(cursor.fetchmany, rows_per_page):
                yield b",".join(row[0] for row in rows)
        finally:
            # In the reader thread too, after any read of it still running there.
            await self._run(conn.close)
