"""The original's data files: its messages read as its Go decoder reads them, imported once.

The import as a whole (10,000 messages, kills during it, a real api) is in
tests/process/test_legacy_import.py; these are its edges, in-process.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from synergychat.data_ownership import data_paths, prepare_data_paths
from synergychat.settings import ApiSettings, CrawlerSettings, StartupError
from synergychat.storage.legacy_import import (
    BACKUP_SUFFIX,
    BUILDING_SUFFIX,
    NotOriginalMessages,
    import_original_messages,
    original_count_files,
    parse_original_messages,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # What the original writes when it creates its file.
        (b"[]", []),
        # Go marshals a nil slice as null; its decoder reads null as no messages.
        (b"null", []),
        (b'[{"AuthorUsername": "a", "Text": "t"}]', [("a", "t")]),
        # Go matches field names case-insensitively and ignores unknown ones.
        (b'[{"authorusername": "a", "TEXT": "t", "id": 7}]', [("a", "t")]),
        # A missing or null field is Go's zero value.
        (b'[{"Text": "t"}, {"AuthorUsername": null, "Text": "u"}]', [("", "t"), ("", "u")]),
        # Invalid UTF-8 becomes U+FFFD, as Go's decoder does, instead of refusing the file.
        (b'[{"AuthorUsername": "a", "Text": "\xff"}]', [("a", "\ufffd")]),
        # So does a lone surrogate escape; a pair is one character.
        (b'[{"AuthorUsername": "\\ud800", "Text": "\\ud83d\\ude00"}]', [("\ufffd", "\U0001f600")]),
    ],
)
def test_messages_are_read_as_the_original_reads_them(raw: bytes, expected: list[tuple[str, str]]) -> None:
    assert parse_original_messages(raw, Path("db.json")) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'[{"AuthorUsername": "a", "Text": "cut sh',  # the original's non-atomic write, interrupted
        b'{"AuthorUsername": "a"}',  # an object, not an array
        b'["hello"]',  # an array of something else
        b'[{"AuthorUsername": 12, "Text": "t"}]',  # the original's decoder refuses it too
    ],
)
def test_anything_else_is_refused(raw: bytes) -> None:
    with pytest.raises(NotOriginalMessages, match="nothing was changed"):
        parse_original_messages(raw, Path("db.json"))


def rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT author_username, text FROM messages ORDER BY id").fetchall()


async def test_an_import_keeps_the_file_as_a_backup_and_happens_once(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    messages = [{"AuthorUsername": "a", "Text": "one"}, {"AuthorUsername": "b", "Text": "two"}]
    raw = json.dumps(messages).encode()
    db.write_bytes(raw)
    # A start killed while building left its half-built database: it is thrown away.
    (tmp_path / f"db.json{BUILDING_SUFFIX}").write_bytes(b"half a database")

    backup = await import_original_messages(db)

    assert backup == tmp_path / f"db.json{BACKUP_SUFFIX}"
    assert backup.read_bytes() == raw
    assert rows(db) == [("a", "one"), ("b", "two")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.json", f"db.json{BACKUP_SUFFIX}"]
    assert await import_original_messages(db) is None
    assert rows(db) == [("a", "one"), ("b", "two")]


async def test_a_different_file_under_the_backup_name_is_never_overwritten(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    db.write_text('[{"AuthorUsername": "a", "Text": "new"}]')
    older = tmp_path / f"db.json{BACKUP_SUFFIX}"
    older.write_text("someone else's file")
    backup = await import_original_messages(db)
    assert backup == tmp_path / "db.json.original-2.json"
    assert older.read_text() == "someone else's file"


@pytest.mark.parametrize("content", [None, b""])
async def test_no_file_or_an_empty_one_is_nothing_to_import(tmp_path: Path, content: bytes | None) -> None:
    db = tmp_path / "db.json"
    if content is not None:
        db.write_bytes(content)
    assert await import_original_messages(db) is None
    assert await import_original_messages(None) is None


def test_the_original_crawlers_count_files_are_recognised(tmp_path: Path) -> None:
    (tmp_path / "love.dracula.json").write_text('{"Keyword":"love","BookTitle":"Dracula","Count":142}')
    (tmp_path / "hate.dracula.json").write_text('{"Keyword":"hate","BookTitle":"Dracula","Count":3}')
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "other.thing.json").write_text('{"Keyword": "x"}')
    assert [p.name for p in original_count_files(tmp_path)] == ["hate.dracula.json", "love.dracula.json"]
    assert original_count_files(tmp_path / "missing") == []
    assert original_count_files("") == []


def test_data_paths_of_the_settings() -> None:
    api = ApiSettings(api_db_filepath="/persist/db.json")
    crawler = CrawlerSettings(crawler_db_path="/cache")
    paths = data_paths(api, crawler)
    assert [(p.variable, str(p.folder), p.file_prefix) for p in paths] == [
        ("API_DB_FILEPATH", "/persist", "db.json"),
        ("CRAWLER_DB_PATH", "/cache", "crawler.sqlite3"),
    ]
    # In memory: nothing to own or check.
    assert data_paths(ApiSettings(), CrawlerSettings()) == []
    assert data_paths(None, None) == []


def test_a_data_path_that_is_a_file_stops_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    paths = data_paths(None, CrawlerSettings(crawler_db_path=str(blocker)))
    with pytest.raises(StartupError, match=f"^CRAWLER_DB_PATH={blocker}: {blocker} is not a folder$"):
        prepare_data_paths(paths)
    # A writable folder (here, as whoever runs the tests) passes, and is left as it was.
    prepare_data_paths(data_paths(ApiSettings(api_db_filepath=str(tmp_path / "new" / "db.json")), None))
    assert not (tmp_path / "new").exists()


async def test_two_apis_starting_on_one_file_import_it_once(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    messages = [{"AuthorUsername": "a", "Text": str(n)} for n in range(2000)]
    db.write_text(json.dumps(messages))
    results = await asyncio.gather(import_original_messages(db), import_original_messages(db))
    assert sorted(map(str, results)) == sorted([str(tmp_path / f"db.json{BACKUP_SUFFIX}"), "None"])
    assert rows(db) == [("a", str(n)) for n in range(2000)]
