"""The original's data files: its api's messages imported into ours, its crawler's counts recognised.

The original api keeps the whole history in ``API_DB_FILEPATH`` as a JSON array
of ``{"AuthorUsername", "Text"}`` (rewritten whole on every post; ``[]`` when
new). We keep SQLite at that same path. Started on such a file, the api builds
a SQLite database beside it holding those messages in their order, keeps the
JSON under a backup name, and only then puts the database in the JSON's place
with one atomic rename. Killed at any moment, the path holds either the JSON
(the next start imports again, from scratch) or the complete database (nothing
to import): every message ends up exactly once, and the JSON is never lost.

The original crawler keeps one JSON file per keyword and book title in
``CRAWLER_DB_PATH`` (``love.dracula.json`` = ``{"Keyword", "BookTitle",
"Count"}``). They name no book id, which our counts are keyed by, so they are
left as they are and the crawler counts the catalogue afresh.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from .database import open_database
from .messages import MESSAGE_MIGRATIONS

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
# Beside API_DB_FILEPATH: the database being built, and the original file kept.
BUILDING_SUFFIX = ".importing"
BACKUP_SUFFIX = ".original.json"
SQLITE_SIDECARS = ("", "-journal", "-wal", "-shm")


class NotOriginalMessages(RuntimeError):
    """API_DB_FILEPATH holds neither SQLite nor the original's messages: nothing is touched."""


async def import_original_messages(path: str | Path | None) -> Path | None:
    """Turn the original's JSON message file at ``path`` into our database, in place.

    Returns the backup of the JSON when it imported, None when there was nothing
    to import (no file, an empty file, or already SQLite).
    """
    if not path:
        return None
    path = Path(path)
    try:
        file = await asyncio.to_thread(path.open, "rb")
    except (FileNotFoundError, IsADirectoryError):
        return None  # opening it as SQLite says what is wrong with a folder
    with file:
        head = file.read(len(SQLITE_HEADER))
        if not head or head == SQLITE_HEADER:
            return None  # ours already (SQLite takes an empty file for an empty database)
        # Two apis started on one volume import one at a time: whoever comes second
        # finds the file replaced by the first one's database, with nothing to import.
        await asyncio.to_thread(fcntl.flock, file.fileno(), fcntl.LOCK_EX)
        if not _still_at(path, file):
            return None
        file.seek(0)
        raw = file.read()
        messages = parse_original_messages(raw, path)
        written_at = datetime.fromtimestamp(os.fstat(file.fileno()).st_mtime, UTC)
        building = path.with_name(path.name + BUILDING_SUFFIX)
        _remove_sqlite_files(building)  # an earlier start killed while building
        await _build_database(building, messages, written_at)
        backup = _keep_backup(path, raw)
        os.replace(building, path)
        _fsync_folder(path.parent)
    log.info(
        "API_DB_FILEPATH=%s held the original api's messages: imported %d of them, in order; "
        "the original file is kept as %s",
        path,
        len(messages),
        backup,
    )
    return backup


def _still_at(path: Path, file: BinaryIO) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(file.fileno()).st_ino
    except FileNotFoundError:
        return False


def parse_original_messages(raw: bytes, path: Path) -> list[tuple[str, str]]:
    """(author, text) pairs, read as the original's Go decoder reads them.

    Field names match case-insensitively, a missing or null field is empty, other
    fields are ignored, a top-level null is no messages: what the original would
    have shown is what we import. Anything else is refused, changing nothing.
    """
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise NotOriginalMessages(
            f"{path} is neither a SQLite database nor the original api's JSON messages "
            f"(not JSON: {exc}); nothing was changed"
        ) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise NotOriginalMessages(
            f"{path} is neither a SQLite database nor the original api's JSON messages "
            f"(a JSON {type(data).__name__}, not an array); nothing was changed"
        )
    messages = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise NotOriginalMessages(f"{path}: message {index} is not a JSON object; nothing was changed")
        fields = {str(key).lower(): value for key, value in entry.items()}
        pair = []
        for name in ("AuthorUsername", "Text"):
            value = fields.get(name.lower())
            if value is not None and not isinstance(value, str):
                raise NotOriginalMessages(
                    f"{path}: message {index} has a {name} that is not a string; nothing was changed"
                )
            pair.append(_valid_text(value or ""))
        messages.append((pair[0], pair[1]))
    return messages


def _valid_text(value: str) -> str:
    """Lone surrogates (JSON may escape "\\ud800") become U+FFFD, as Go's decoder makes them:
    they are no text UTF-8 or SQLite can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else char for char in value)
    return value


async def _build_database(building: Path, messages: list[tuple[str, str]], written_at: datetime) -> None:
    # The original keeps no times: each message gets the time its file was last
    # written, the one moment they all certainly existed by.
    created_at = written_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    conn = await open_database(building, MESSAGE_MIGRATIONS)
    try:
        await conn.executemany(
            "INSERT INTO messages (author_username, text, created_at) VALUES (?, ?, ?)",
            ((author, text, created_at) for author, text in messages),
        )
        await conn.commit()
        # One self-contained file before the rename: a -wal file would not follow it.
        await conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        await conn.close()
    with building.open("rb") as file:
        os.fsync(file.fileno())


def _keep_backup(path: Path, raw: bytes) -> Path:
    """The JSON under a backup name beside it, on disk before the database replaces it.

    A backup left by an earlier, interrupted start with the same content is reused;
    a different file under that name is never overwritten.
    """
    for candidate in _backup_names(path):
        if candidate.exists():
            if candidate.read_bytes() == raw:
                return candidate
            continue
        try:
            os.link(path, candidate)  # no copy needed, and atomic
        except OSError:
            partial = candidate.with_name(candidate.name + ".partial")
            shutil.copyfile(path, partial)
            with partial.open("rb") as file:
                os.fsync(file.fileno())
            os.replace(partial, candidate)
        _fsync_folder(path.parent)
        return candidate
    raise AssertionError("unreachable: _backup_names never ends")


def _backup_names(path: Path) -> Iterator[Path]:
    yield path.with_name(path.name + BACKUP_SUFFIX)
    number = 2
    while True:
        yield path.with_name(f"{path.name}.original-{number}.json")
        number += 1


def _remove_sqlite_files(database: Path) -> None:
    for suffix in SQLITE_SIDECARS:
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def original_count_files(folder: str | Path | None) -> list[Path]:
    """The original crawler's count files in ``folder`` (``KEYWORD.TITLE.json`` holding a Count)."""
    if not folder:
        return []
    found = []
    try:
        candidates = sorted(Path(folder).glob("*.*.json"))
    except OSError:
        return []
    for candidate in candidates:
        try:
            data = json.loads(candidate.read_bytes()[:4096])
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and {"Keyword", "BookTitle", "Count"} <= data.keys():
            found.append(candidate)
    return found
