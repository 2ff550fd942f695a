"""Copying the crawler's SQLite file into PostgreSQL: the books counted (or given up on), their
counts, and where the walk of the catalogue stands, so the crawlers go on from there.

The two schemas are the same tables under other names (``books`` → ``crawl_books``,
``counts`` → ``crawl_counts``, ``crawl_state`` with the fleet's lease left empty), and
the position means the same: a lone SQLite crawler's ``next_page_url`` is the page it is
counting, which it reads again after a restart, counting only the books not done yet; the
fleet reads that page next, lists the books not done yet, and counts them. The fleet's
queue (``crawl_work``) starts empty, as after a restart. New keywords, or a new
``CRAWLER_SOURCE_URL``, are handled on PostgreSQL as on SQLite.

The database must hold no crawl yet (or exactly this one, copied before): counts of two
crawls are not merged. One transaction, which locks the crawler's tables: a crawler that
starts meanwhile reads the position once the copy is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .copy_rows import (
    Connection,
    CopyRefused,
    Progress,
    Row,
    SqliteSnapshot,
    copy_batches,
    database_row,
    first_difference,
    hold_locks,
    nul_note,
    optional_text,
    other_sessions,
    postgres_batches,
    stored_rows,
)
from .counts import COUNT_MIGRATIONS
from .legacy_import import SQLITE_HEADER
from .pg_counts import APPLICATION_NAME as CRAWLER_APPLICATION_NAME
from .pg_counts import PG_COUNT_MIGRATIONS, STORE_NAME

__all__ = ["PG_COUNT_MIGRATIONS", "STORE_NAME", "CountCopy", "open_count_file"]

# The step of COUNT_MIGRATIONS that added books_total (before it: unknown, as that step leaves it).
BOOKS_TOTAL_VERSION = 3
_POSITION = (
    "source_url",
    "next_page_url",
    "pass_number",
    "pass_finished_at",
    "pages_done",
    "last_success_at",
    "last_error_at",
    "last_error_message",
    "books_total",
)
_BOOK_COLUMNS = (
    "id",
    "title",
    "title_folded",
    "status",
    "keywords",
    "text_url",
    "charset",
    "reason",
    "pass_number",
    "updated_at",
)
_COUNT_COLUMNS = ("keyword", "book_id", "count")
_FILE_BOOKS = f"SELECT {', '.join(_BOOK_COLUMNS)} FROM books ORDER BY id"
_DATABASE_BOOKS = f"SELECT {', '.join(_BOOK_COLUMNS)} FROM crawl_books ORDER BY id"
# Keywords in code point order on both sides (SQLite's BINARY; "C" on a UTF-8 database).
_FILE_COUNTS = "SELECT keyword, book_id, count FROM counts ORDER BY book_id, keyword"
_DATABASE_COUNTS = 'SELECT keyword, book_id, count FROM crawl_counts ORDER BY book_id, keyword COLLATE "C"'


@dataclass
class CountFile:
    """The crawler's SQLite file, as one snapshot, and what it holds."""

    snapshot: SqliteSnapshot
    position: Row
    counted: int
    skipped: int
    counts: int

    @property
    def path(self) -> Path:
        return self.snapshot.path


def open_count_file(file: Path, label: str) -> CountFile:
    """Open the crawler's ``file`` read-only and check it is a count database this program can
    read; anything else is a :class:`CopyRefused` naming ``label``."""
    snapshot = SqliteSnapshot(file, label)
    if snapshot.read_header() != SQLITE_HEADER:
        raise CopyRefused(f"{label}: {file} is not a SQLite database")
    snapshot.open()
    try:
        version = snapshot.user_version()
        tables = snapshot.tables()
        if version > len(COUNT_MIGRATIONS):
            raise CopyRefused(
                f"{label}: {file}'s schema is version {version}, newer than this program knows"
                f" ({len(COUNT_MIGRATIONS)}): copy it with the SynergyChat version that wrote it"
            )
        if not {"crawl_state", "books", "counts"} <= tables:
            if "messages" in tables:
                raise CopyRefused(f"{label}: {file} is the api's message database, not the crawler's counts")
            raise CopyRefused(f"{label}: {file} holds no crawl (no crawl_state, books and counts tables)")
        columns = ", ".join(_POSITION[:-1])
        books_total = "books_total" if version >= BOOKS_TOTAL_VERSION else "NULL"
        position = snapshot.one(f"SELECT {columns}, {books_total} FROM crawl_state WHERE id = 1")
        counted, skipped = snapshot.one(
            "SELECT coalesce(sum(status = 'counted'), 0), coalesce(sum(status = 'skipped'), 0) FROM books"
        )
        (counts,) = snapshot.one("SELECT count(*) FROM counts")
    except BaseException:
        snapshot.close()
        raise
    stored_position = tuple(optional_text(value) for value in position)
    return CountFile(snapshot, stored_position, int(counted), int(skipped), int(counts))


class CountCopy:
    """One copy of a count file into one database, in a transaction the caller holds."""

    what = "counts"

    def __init__(self, file: CountFile, target: str, url_shown: str) -> None:
        self.file = file
        self.target = target
        self.url_shown = url_shown
        self.nothing_to_do = False
        self.replaced = [0]

    async def prepare(self, conn: Connection) -> None:
        """Lock, look at what the database holds, and decide (or refuse): nothing written yet."""
        file = self.file
        await hold_locks(
            conn,
            self.target,
            # Exclusive: a crawler starting now reads the position after the copy, not before.
            "LOCK TABLE crawl_state, crawl_books, crawl_counts, crawl_work IN ACCESS EXCLUSIVE MODE",
        )
        position = await database_row(conn, f"SELECT {', '.join(_POSITION)} FROM crawl_state WHERE id = 1")
        books, counts, listed = await database_row(
            conn,
            "SELECT (SELECT count(*) FROM crawl_books), (SELECT count(*) FROM crawl_counts),"
            " (SELECT count(*) FROM crawl_work)",
        )
        if position[0] is None and books == counts == listed == 0:
            if crawlers := await other_sessions(conn, CRAWLER_APPLICATION_NAME):
                raise CopyRefused(
                    f"{self.target}: a crawler is running on it ({crawlers} connection(s) named"
                    f" {CRAWLER_APPLICATION_NAME}): stop the crawlers before the copy (one starting its walk"
                    " would overwrite the copied position): nothing was changed"
                )
            return
        if position == file.position and await self._same_rows(conn):
            self.nothing_to_do = True
            return
        walk = f"at {position[1]}" if position[1] else "finished" if position[3] else "not started"
        raise CopyRefused(
            f"{self.target}: already holds a crawl that is not this file's ({books:,} books, pass"
            f" {position[2]}, {walk}): nothing was changed. Counts of two crawls are not merged: copy into"
            " a database no crawler has used, or leave it and let the crawlers go on with theirs"
        )

    async def _same_rows(self, conn: Connection) -> bool:
        snapshot = self.file.snapshot
        for file_rows, database_rows in ((_FILE_BOOKS, _DATABASE_BOOKS), (_FILE_COUNTS, _DATABASE_COUNTS)):
            difference = await first_difference(
                stored_rows(snapshot.batches(file_rows)), postgres_batches(conn, database_rows)
            )
            if difference is not None:
                return False
        return True

    async def copy(self, conn: Connection) -> None:
        if self.nothing_to_do:
            return
        file = self.file
        assignments = ", ".join(f"{column} = ${number}" for number, column in enumerate(_POSITION, start=1))
        await conn.execute(
            f"UPDATE crawl_state SET {assignments}, page_owner = NULL, page_lease_until = NULL WHERE id = 1",
            *file.position,
        )
        progress = Progress("books and counts copied", file.counted + file.skipped + file.counts)
        snapshot = file.snapshot
        # The books first: each count refers to its book.
        await copy_batches(
            conn,
            "crawl_books",
            _BOOK_COLUMNS,
            stored_rows(snapshot.batches(_FILE_BOOKS), self.replaced),
            progress,
        )
        await copy_batches(
            conn, "crawl_counts", _COUNT_COLUMNS, stored_rows(snapshot.batches(_FILE_COUNTS)), progress
        )

    def summary(self, seconds: float) -> str:
        file = self.file
        books = f"{file.counted + file.skipped:,} books ({file.counted:,} counted, {file.skipped:,} skipped)"
        pass_number, next_page, finished = file.position[2], file.position[1], file.position[3]
        walk = f"resuming at {next_page}" if next_page else "finished" if finished else "not started"
        if self.nothing_to_do:
            return (
                f"nothing to copy: {self.url_shown} already holds the crawl of {file.path}"
                f" ({books}, {file.counts:,} counts, pass {pass_number})"
            )
        return (
            f"copied the crawl from {file.path} to {self.url_shown} in {seconds:.1f} s: {books},"
            f" {file.counts:,} counts, pass {pass_number} {walk}" + nul_note(self.replaced[0])
        )

    def after_commit(self) -> str | None:
        return None

    def close(self) -> None:
        self.file.snapshot.close()
