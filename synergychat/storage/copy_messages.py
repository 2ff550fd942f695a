"""Copying the chat history from the api's SQLite file into PostgreSQL: every message with
its id, author, text and time unchanged, and the file's history id.

The history id is what lets a browser keep its place across the move: its stream resumes
after the last id it holds (``Last-Event-ID``) and pages by id, which stay valid only if
the database says it is the same history (``api.py``'s ``hello``; another one makes the
page start over).

The database may already hold messages only if they are this history's and the start of
the file's (a copy interrupted, or run before): then only the missing ones are copied, and
a database holding them all is left as it is. All of it happens in one transaction that
holds the lock every api writer takes before it picks ids (``MESSAGE_ID_LOCK``), and the
``history`` table, so no api can start on the old history id or write while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .copy_rows import (
    Connection,
    CopyRefused,
    Progress,
    SqliteSnapshot,
    copy_batches,
    database_row,
    first_difference,
    hold_locks,
    nul_note,
    other_sessions,
    postgres_batches,
    stored_rows,
)
from .legacy_import import SQLITE_HEADER, NotOriginalMessages, parse_original_messages
from .messages import MESSAGE_MIGRATIONS
from .pg_messages import APPLICATION_NAME as API_APPLICATION_NAME
from .pg_messages import PG_MESSAGE_MIGRATIONS, STORE_NAME
from .postgres import MESSAGE_ID_LOCK

__all__ = ["PG_MESSAGE_MIGRATIONS", "STORE_NAME", "MessageCopy", "open_message_file"]

# The step of MESSAGE_MIGRATIONS that gave a file its history id.
HISTORY_VERSION = 2
_COLUMNS = ("id", "author_username", "text", "created_at")
_FILE_ROWS = f"SELECT {', '.join(_COLUMNS)} FROM messages WHERE id > ? AND id <= ? ORDER BY id"
_DATABASE_ROWS = f"SELECT {', '.join(_COLUMNS)} FROM messages WHERE id <= $1 ORDER BY id"
_LAST_ID = 2**63 - 1


@dataclass
class MessageFile:
    """The api's SQLite file, as one snapshot, and what it holds."""

    snapshot: SqliteSnapshot
    history_id: str
    first_id: int
    last_id: int
    count: int

    @property
    def path(self) -> Path:
        return self.snapshot.path


def open_message_file(path: Path, label: str) -> MessageFile:
    """Open ``path`` read-only and check it is a message database this program can read
    as it is; anything else is a :class:`CopyRefused` naming ``label``."""
    snapshot = SqliteSnapshot(path, label)
    head = snapshot.read_header()
    if head != SQLITE_HEADER:
        raise CopyRefused(_not_sqlite(path, label, head))
    snapshot.open()
    try:
        version = snapshot.user_version()
        tables = snapshot.tables()
        if version > len(MESSAGE_MIGRATIONS):
            raise CopyRefused(
                f"{label}: its schema is version {version}, newer than this program knows"
                f" ({len(MESSAGE_MIGRATIONS)}): copy it with the SynergyChat version that wrote it"
            )
        if "messages" not in tables:
            if "crawl_state" in tables:
                raise CopyRefused(
                    f"{label}: is the crawler's count database, not the api's messages"
                    " (its folder is CRAWLER_DB_PATH, or --crawler-from)"
                )
            raise CopyRefused(f"{label}: holds no chat history (no messages table)")
        if version < HISTORY_VERSION or "history" not in tables:
            # Its history gets its id when the api migrates it; one made up here would differ
            # from run to run, and a copy run again could not tell its own messages.
            raise CopyRefused(
                f"{label}: was written by an older SynergyChat (schema version {version}, before"
                " histories had ids): start the api on it once (API_DB_FILEPATH set, API_DATABASE_URL"
                " not set) so it brings the file up to date, stop it, then run this again"
            )
        (history_id,) = snapshot.one("SELECT id FROM history")
        first_id, last_id, count = snapshot.one(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0), count(*) FROM messages"
        )
    except BaseException:
        snapshot.close()
        raise
    return MessageFile(snapshot, str(history_id), int(first_id), int(last_id), int(count))


def _not_sqlite(path: Path, label: str, head: bytes) -> str:
    if not head:
        return f"{label}: the file is empty: it holds no chat history"
    try:
        original = parse_original_messages(path.read_bytes(), path)
    except (NotOriginalMessages, OSError):
        return f"{label}: is not a SQLite database (nor the original api's JSON messages)"
    return (
        f"{label}: holds the original Go api's messages as JSON ({len(original):,} of them): start the"
        " api on it once (API_DB_FILEPATH set, API_DATABASE_URL not set), which imports them into a"
        " SQLite database at the same path and keeps the JSON beside it, stop it, then run this again"
    )


class MessageCopy:
    """One copy of a message file into one database, in a transaction the caller holds."""

    what = "messages"

    def __init__(self, file: MessageFile, target: str, url_shown: str) -> None:
        self.file = file
        # ``API_DATABASE_URL=postgresql://chat:***@db/synergychat``: the start of every refusal.
        self.target = target
        self.url_shown = url_shown
        self.copy_after = 0  # what the database holds already: ids up to this one
        self.database_last_id = 0
        self.to_copy = 0
        self.first_copied = self.last_copied = 0
        self.set_history = False
        self.replaced = [0]

    @property
    def nothing_to_do(self) -> bool:
        return self.to_copy == 0 and not self.set_history

    async def prepare(self, conn: Connection) -> None:
        """Lock, look at what the database holds, and decide (or refuse): nothing written yet."""
        file = self.file
        await hold_locks(
            conn,
            self.target,
            # The api's writers take it before they pick ids: none can interleave ids with ours.
            f"SELECT pg_advisory_xact_lock({MESSAGE_ID_LOCK})",
            # An api starting now reads the history id after this commits, not before.
            "LOCK TABLE history IN ACCESS EXCLUSIVE MODE",
        )
        (history_id,) = await database_row(conn, "SELECT id FROM history")
        first_id, last_id, count = await database_row(
            conn, "SELECT coalesce(min(id), 0), coalesce(max(id), 0), count(*) FROM messages"
        )
        self.database_last_id = last_id
        if count == 0:
            self.set_history = history_id != file.history_id
        elif history_id != file.history_id:
            raise CopyRefused(
                f"{self.target}: already holds {count:,} messages (ids {first_id}–{last_id}) of another"
                f" history ({history_id}; the file's is {file.history_id}): nothing was changed."
                " Copy into a database no api has written to"
            )
        else:
            await self._check_prefix(conn, min(last_id, file.last_id))
            self.copy_after = last_id
        self.to_copy, self.first_copied, self.last_copied = file.snapshot.one(
            "SELECT count(*), min(id), max(id) FROM messages WHERE id > ?", (self.copy_after,)
        )
        if not self.nothing_to_do and (apis := await other_sessions(conn, API_APPLICATION_NAME)):
            raise CopyRefused(
                f"{self.target}: an api is running on it ({apis} connection(s) named {API_APPLICATION_NAME}):"
                " stop the api before the copy (it reads the history id once, at start, and would pass the"
                " copied messages to its streams as new ones): nothing was changed"
            )

    async def _check_prefix(self, conn: Connection, through: int) -> None:
        """The database's messages must be the file's first ones, exactly."""
        difference = await first_difference(
            stored_rows(self.file.snapshot.batches(_FILE_ROWS, (0, through))),
            postgres_batches(conn, _DATABASE_ROWS, through),
        )
        if difference is None:
            return
        in_file, in_database = difference
        if in_file is None or (in_database is not None and in_database[0] < in_file[0]):
            assert in_database is not None
            problem = f"message {in_database[0]} is in the database but not in the file"
        elif in_database is None or in_file[0] < in_database[0]:
            problem = f"message {in_file[0]} of the file is missing in the database, before newer ones"
        else:
            problem = f"message {in_file[0]} differs"
        raise CopyRefused(
            f"{self.target}: holds messages of this file's history ({self.file.history_id}) that are not"
            f" the file's ({problem}): nothing was changed"
        )

    async def copy(self, conn: Connection) -> None:
        if self.set_history:
            await conn.execute("UPDATE history SET id = $1", self.file.history_id)
        if self.to_copy:
            progress = Progress("messages copied", self.to_copy)
            rows = stored_rows(
                self.file.snapshot.batches(_FILE_ROWS, (self.copy_after, _LAST_ID)), self.replaced
            )
            await copy_batches(conn, "messages", _COLUMNS, rows, progress)

    def summary(self, seconds: float) -> str:
        file = self.file
        if self.nothing_to_do:
            newer = self.database_last_id - file.last_id
            return (
                f"nothing to copy: {self.url_shown} already holds the {file.count:,} messages of"
                f" {file.path} ({_ids(file.first_id, file.last_id)}, history {file.history_id})"
                + (f" and {newer:,} newer ids" if newer > 0 else "")
            )
        if not self.to_copy:
            return (
                f"copied 0 messages ({file.path} holds none) to {self.url_shown}, history {file.history_id}"
            )
        line = (
            f"copied {self.to_copy:,} messages ({_ids(self.first_copied, self.last_copied)}) from {file.path}"
            f" to {self.url_shown} in {seconds:.1f} s"
        )
        if self.copy_after:
            line += f"; ids up to {self.copy_after} were there already"
        return line + nul_note(self.replaced[0])

    def after_commit(self) -> str | None:
        """A warning if the file got new messages while it was copied (an api still on it)."""
        file = self.file
        if file.snapshot.path.with_name(file.path.name + "-wal").exists():
            (newer,) = file.snapshot.one_after_snapshot(
                "SELECT count(*) FROM messages WHERE id > ?", (file.last_id,)
            )
            if newer:
                return (
                    f"warning: {file.snapshot.label}: {newer:,} messages were added to the file during"
                    " the copy (is the api still running on it?): stop it and run this again to copy them"
                )
        return None

    def close(self) -> None:
        self.file.snapshot.close()


def _ids(first: int, last: int) -> str:
    return f"id {first}" if first == last else f"ids {first}–{last}"
