"""``copy-to-postgres``: a chat that ran on SQLite, moved to a real PostgreSQL, and served from there.

The SQLite side is always made by the real stores (the api app over HTTP, the crawler's
count store), the PostgreSQL side read back by the real PostgreSQL stores and api. The
command's own process (exit statuses, Ctrl-C) is tested in tests/process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from synergychat.api import create_api_app
from synergychat.settings import CRAWLER_DB_FILENAME, ApiSettings
from synergychat.storage import copy_rows
from synergychat.storage.copy_messages import MessageCopy
from synergychat.storage.copy_to_postgres import UsageError, copy, jobs_from, parse_arguments
from synergychat.storage.count_store import CountedBook
from synergychat.storage.counts import COUNT_MIGRATIONS, SqliteCountStore
from synergychat.storage.database import open_database
from synergychat.storage.messages import MESSAGE_MIGRATIONS
from synergychat.storage.pg_counts import PostgresCountStore
from synergychat.storage.pg_messages import PostgresMessageStore
from synergychat.transport import NoCrawlerClient
from synergychat.validation import MAX_TEXT_CHARS
from tests.api.test_stream import read_any_events, read_events
from tests.conftest import expect_json, post_message
from tests.support.postgres import PASSWORD, PostgresServer

Client = TestClient[web.Request, web.Application]

# What people write: quotes, markup, escapes, several scripts and emoji, lines, the longest text.
TEXTS = [
    "hello",
    "she said \"hi\" & 'bye'",
    "ünïcödé ✓ 日本語 Ελληνικά 🎉👩‍👩‍👧",
    "line one\nline two\ttabbed",
    'back\\slash </script> {"json": [1]}',
    "x" * (MAX_TEXT_CHARS - 8),  # the longest, with the number before it
]
AUTHORS = ["ann", "Bøb", "李雷", "o'brien"]


async def run_copy(*argv: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """The command's work in this process: (exit status, the lines it printed on stdout)."""
    said: list[str] = []
    status = await copy(jobs_from(parse_arguments(argv), env or {}), said.append, [])
    return status, said


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [
        line for line in capsys.readouterr().err.splitlines() if not line.startswith("synergychat: messages ")
    ]
    assert len(lines) == 1, lines
    assert lines[0].startswith("synergychat: "), lines
    return lines[0]


async def sqlite_api(aiohttp_client: AiohttpClient, path: Path) -> Client:
    return await aiohttp_client(create_api_app(ApiSettings(api_db_filepath=str(path)), NoCrawlerClient()))


async def postgres_api(aiohttp_client: AiohttpClient, url: str) -> Client:
    return await aiohttp_client(create_api_app(ApiSettings(api_database_url=url), NoCrawlerClient()))


async def post_history(client: Client, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        await post_message(client, AUTHORS[number % len(AUTHORS)], f"{number}: {TEXTS[number % len(TEXTS)]}")


async def whole_history(client: Client) -> list[dict[str, Any]]:
    return list(await expect_json(await client.get("/messages", params={"limit": "1000"}), 200))


async def history_id(client: Client) -> str:
    async with client.get("/messages/stream") as stream:
        [hello] = await read_any_events(stream, 1, kinds=("hello",))
    return str(hello["history"])


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "messages.db"


@pytest.fixture
async def sqlite_history(
    aiohttp_client: AiohttpClient, sqlite_file: Path
) -> tuple[list[dict[str, Any]], str]:
    """60 messages posted to the api on SQLite (and one bot reply), the api then stopped:
    the history as the api served it, and its history id."""
    client = await sqlite_api(aiohttp_client, sqlite_file)
    await post_history(client, 59)
    await post_message(client, "ann", "/stats")  # crawler-bot answers: its message is stored too
    served, history = await whole_history(client), await history_id(client)
    await client.close()
    assert len(served) == 61 and served[-1]["AuthorUsername"] == "crawler-bot"
    return served, history


async def database_state(url: str) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Everything the message tables hold: the history row, and every message."""
    conn = await asyncpg.connect(url)
    try:
        history = [tuple(row) for row in await conn.fetch("SELECT id, checked_at FROM history")]
        messages = [tuple(row) for row in await conn.fetch("SELECT * FROM messages ORDER BY id")]
    finally:
        await conn.close()
    return history, messages


async def test_the_history_is_served_the_same_from_postgresql(
    aiohttp_client: AiohttpClient,
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    served, history = sqlite_history
    status, said = await run_copy(env={"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url})
    assert status == 0
    masked = postgres_url.replace(PASSWORD, "***")
    assert said[0].startswith(f"copied 61 messages (ids 1–61) from {sqlite_file} to {masked} in ")

    client = await postgres_api(aiohttp_client, postgres_url)
    # Ids, authors, texts and times exactly; the same history, so pages and streams go on.
    assert await whole_history(client) == served
    assert await history_id(client) == history
    older = await expect_json(await client.get("/messages", params={"limit": "10", "before": "31"}), 200)
    assert older == served[20:30]
    # A browser that had ids up to 40 before the move resumes after them.
    async with client.get("/messages/stream", headers={"Last-Event-ID": "40"}) as stream:
        [hello] = await read_any_events(stream, 1, kinds=("hello",))
        assert (hello["history"], hello["last_id"]) == (history, 61)
        replayed = await read_events(stream, 21)
        new = (await post_message(client, "ann", "the first on PostgreSQL"))[-1]
        [live] = await read_events(stream, 1)
    assert [{k: v for k, v in e.items() if k not in ("sse_id", "event")} for e in replayed] == served[40:]
    assert new["id"] == live["id"] == 62


async def test_the_stores_read_after_an_id_as_before(
    sqlite_file: Path, sqlite_history: tuple[list[dict[str, Any]], str], postgres_url: str
) -> None:
    await run_copy("--from", str(sqlite_file), "--to", postgres_url)
    store = await PostgresMessageStore.open(postgres_url, 2)
    try:
        after = await store.after(57, 100)
    finally:
        await store.close()
    served, _ = sqlite_history
    assert [message.to_json() for message in after] == served[57:]


async def test_copying_again_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url}
    assert (await run_copy(env=env))[0] == 0
    state = await database_state(postgres_url)
    status, said = await run_copy(env=env)
    assert status == 0
    expected = (
        f"nothing to copy: {postgres_url.replace(PASSWORD, '***')} already holds the 61 messages of"
        f" {sqlite_file} (ids 1–61, history {sqlite_history[1]})"
    )
    assert said == [expected]
    assert await database_state(postgres_url) == state


async def test_messages_written_to_the_file_after_a_copy_are_copied_by_the_next(
    aiohttp_client: AiohttpClient,
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    # The api was not stopped before the first copy: three more came in after it.
    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url}
    await run_copy(env=env)
    client = await sqlite_api(aiohttp_client, sqlite_file)
    await post_history(client, 3, start=100)
    served = await whole_history(client)
    await client.close()
    status, said = await run_copy(env=env)
    assert status == 0 and said[0].startswith("copied 3 messages (ids 62–64) from")
    assert said[0].endswith("; ids up to 61 were there already")
    assert await whole_history(await postgres_api(aiohttp_client, postgres_url)) == served


async def test_messages_posted_during_the_copy_are_said_and_copied_by_the_next(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    aiohttp_client: AiohttpClient,
    sqlite_file: Path,
    postgres_url: str,
) -> None:
    # The api was left running on the file: what it stores after the copy's snapshot is not
    # copied, and the command says so once the copy is in.
    client = await sqlite_api(aiohttp_client, sqlite_file)
    await post_history(client, 5)
    copy_messages = MessageCopy.copy

    async def post_then_copy(part: MessageCopy, conn: Any) -> None:
        await post_history(client, 2, start=5)
        await copy_messages(part, conn)

    monkeypatch.setattr(MessageCopy, "copy", post_then_copy)
    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url}
    status, said = await run_copy(env=env)
    assert status == 0 and said[0].startswith("copied 5 messages (ids 1–5)")
    assert one_error_line(capsys) == (
        f"synergychat: warning: API_DB_FILEPATH={str(sqlite_file)!r}: 2 messages were added to the file"
        " during the copy (is the api still running on it?): stop it and run this again to copy them"
    )
    monkeypatch.setattr(MessageCopy, "copy", copy_messages)
    served = await whole_history(client)
    await client.close()
    status, said = await run_copy(env=env)
    assert status == 0 and said[0].startswith("copied 2 messages (ids 6–7)")
    assert await whole_history(await postgres_api(aiohttp_client, postgres_url)) == served


async def test_an_interrupted_copy_leaves_nothing_and_the_next_copies_everything(
    monkeypatch: pytest.MonkeyPatch,
    aiohttp_client: AiohttpClient,
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    # Small batches, so the copy is cancelled (as Ctrl-C cancels it) with some of them written.
    monkeypatch.setattr(copy_rows, "BATCH_ROWS", 5)
    batches_written = 0
    two_written = asyncio.Event()
    advance = copy_rows.Progress.advance

    def count_batches(progress: copy_rows.Progress, rows: int) -> None:
        nonlocal batches_written
        advance(progress, rows)
        batches_written += 1
        if batches_written == 2:
            two_written.set()

    monkeypatch.setattr(copy_rows.Progress, "advance", count_batches)
    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url}
    copying = asyncio.create_task(run_copy(env=env))
    await two_written.wait()
    copying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await copying
    history, messages = await database_state(postgres_url)
    assert messages == [] and history[0][0] != sqlite_history[1]

    monkeypatch.setattr(copy_rows.Progress, "advance", advance)
    status, said = await run_copy(env=env)
    assert status == 0 and said[0].startswith("copied 61 messages (ids 1–61)")
    client = await postgres_api(aiohttp_client, postgres_url)
    assert await whole_history(client) == sqlite_history[0]
    assert await history_id(client) == sqlite_history[1]


async def test_a_database_holding_another_history_is_refused_and_left_as_it_was(
    capsys: pytest.CaptureFixture[str],
    aiohttp_client: AiohttpClient,
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    client = await postgres_api(aiohttp_client, postgres_url)
    await post_history(client, 3, start=500)
    await client.close()
    state = await database_state(postgres_url)
    status, said = await run_copy(env={"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url})
    assert status == 1 and said == []
    line = one_error_line(capsys)
    assert line.startswith(f"synergychat: API_DATABASE_URL={postgres_url.replace(PASSWORD, '***')}: ")
    assert "already holds 3 messages (ids 1–3) of another history" in line
    assert "nothing was changed" in line and PASSWORD not in line
    assert await database_state(postgres_url) == state


async def test_a_database_whose_messages_differ_from_the_file_is_refused(
    capsys: pytest.CaptureFixture[str],
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url}
    await run_copy(env=env)
    capsys.readouterr()
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("UPDATE messages SET text = 'edited' WHERE id = 17")
    await conn.close()
    state = await database_state(postgres_url)
    assert (await run_copy(env=env))[0] == 1
    assert "(message 17 differs): nothing was changed" in one_error_line(capsys)
    assert await database_state(postgres_url) == state


async def test_an_api_running_on_the_database_is_refused(
    capsys: pytest.CaptureFixture[str],
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    # It read the history id at start: after the copy it would serve the file's ids as its own.
    store = await PostgresMessageStore.open(postgres_url, 2)
    try:
        status, _ = await run_copy(
            env={"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url}
        )
        assert status == 1
        line = one_error_line(capsys)
        assert ": an api is running on it (2 connection(s) named synergychat-api): stop the api" in line
        assert (await database_state(postgres_url))[1] == []
    finally:
        await store.close()


def folder_contents(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.iterdir())
    }


async def test_the_file_is_left_byte_for_byte_as_it_was(
    sqlite_file: Path, sqlite_history: tuple[list[dict[str, Any]], str], postgres_url: str
) -> None:
    # The api stopped (no -wal): read as an immutable file, nothing created beside it either.
    before = folder_contents(sqlite_file.parent)
    assert list(before) == [sqlite_file.name]
    await run_copy("--from", str(sqlite_file), "--to", postgres_url)
    await run_copy("--from", str(sqlite_file), "--to", postgres_url)
    assert folder_contents(sqlite_file.parent) == before


async def test_a_file_the_api_still_has_open_is_read_with_its_log(
    aiohttp_client: AiohttpClient, sqlite_file: Path, postgres_url: str
) -> None:
    # Its newest commits may be only in the -wal: they are read too.
    client = await sqlite_api(aiohttp_client, sqlite_file)
    await post_history(client, 12)
    assert sqlite_file.with_name(sqlite_file.name + "-wal").exists()
    status, said = await run_copy("--from", str(sqlite_file), "--to", postgres_url)
    assert status == 0 and said[0].startswith("copied 12 messages (ids 1–12)")
    assert (await database_state(postgres_url))[1][-1][2] == f"11: {TEXTS[11 % len(TEXTS)]}"
    await client.close()


def write_json_messages(path: Path) -> None:
    path.write_text(json.dumps([{"AuthorUsername": "ann", "Text": "from the Go app"}] * 3))


async def old_schema(path: Path, steps: Sequence[str]) -> None:
    conn = await open_database(path, steps)
    await conn.close()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # Each guards one way a wrong API_DB_FILEPATH would otherwise copy nothing, or garbage.
        (lambda path: None, ": no such file"),
        (lambda path: path.mkdir(), ": is a folder, not a database file"),
        (lambda path: path.write_bytes(b""), ": the file is empty: it holds no chat history"),
        (lambda path: path.write_bytes(b"\x00garbage" * 100), ": is not a SQLite database"),
        (
            write_json_messages,
            ": holds the original Go api's messages as JSON (3 of them): start the api on it once",
        ),
        (
            lambda path: asyncio.run(old_schema(path, MESSAGE_MIGRATIONS[:1])),
            ": was written by an older SynergyChat (schema version 1, before histories had ids): start the api",
        ),
        (
            lambda path: asyncio.run(old_schema(path, [*MESSAGE_MIGRATIONS, "CREATE TABLE later (x)"])),
            ": its schema is version 4, newer than this program knows (3)",
        ),
        (
            lambda path: asyncio.run(old_schema(path, COUNT_MIGRATIONS)),
            ": is the crawler's count database, not the api's messages",
        ),
    ],
    ids=[
        "missing",
        "folder",
        "empty",
        "not-sqlite",
        "original-json",
        "schema-1",
        "schema-newer",
        "crawler-file",
    ],
)
def test_a_file_that_cannot_be_copied_is_one_line_and_no_database_change(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_url: str, make: Any, expected: str
) -> None:
    path = tmp_path / "messages.db"
    make(path)
    before = folder_contents(tmp_path)
    status, _ = asyncio.run(run_copy(env={"API_DB_FILEPATH": str(path), "API_DATABASE_URL": postgres_url}))
    assert status == 1
    line = one_error_line(capsys)
    assert line.startswith(f"synergychat: API_DB_FILEPATH={str(path)!r}{expected}"), line
    assert folder_contents(tmp_path) == before

    async def tables() -> list[str]:
        conn = await asyncpg.connect(postgres_url)
        try:
            return [
                row[0]
                for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ]
        finally:
            await conn.close()

    assert asyncio.run(tables()) == []  # the file is checked before the database is touched


@pytest.mark.parametrize("named_by", ["variable", "argument"])
@pytest.mark.parametrize("problem", ["wrong-password", "unreachable", "missing-database"])
async def test_a_database_that_cannot_be_used_is_one_line_with_the_password_masked(
    capsys: pytest.CaptureFixture[str],
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_server: PostgresServer,
    problem: str,
    named_by: str,
) -> None:
    secret = "wrong-secret-pw"
    url = {
        "wrong-password": postgres_server.url("postgres", password=secret),
        "unreachable": f"postgresql://postgres:{secret}@127.0.0.1:9/postgres",
        "missing-database": postgres_server.url("no_such_database").replace(PASSWORD, secret),
    }[problem]
    if named_by == "variable":
        status, _ = await run_copy(env={"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": url})
        name = "API_DATABASE_URL"
    else:
        status, _ = await run_copy("--from", str(sqlite_file), "--to", url)
        name = "--to"
    assert status == 1
    line = one_error_line(capsys)
    assert line.startswith(
        f"synergychat: {name}={url.replace(secret, '***')}: cannot open the message database: "
    )
    assert secret not in line


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        # The api's own settings: its messages only.
        (
            (),
            {"API_DB_FILEPATH": "/d/m.db", "API_DATABASE_URL": "postgresql://a@h/db"},
            [("messages", "/d/m.db")],
        ),
        # Arguments win over the variables.
        (
            ("--from", "/x.db", "--to", "postgresql://b@h/db"),
            {"API_DB_FILEPATH": "/d/m.db", "API_DATABASE_URL": "postgresql://a@h/db"},
            [("messages", "/x.db")],
        ),
        # Both pairs: both parts; the crawler's folder names its file.
        (
            (),
            {
                "API_DB_FILEPATH": "/d/m.db",
                "API_DATABASE_URL": "postgresql://a@h/db",
                "CRAWLER_DB_PATH": "/c",
                "CRAWLER_DATABASE_URL": "postgresql://a@h/db",
            },
            [("messages", "/d/m.db"), ("counts", f"/c/{CRAWLER_DB_FILENAME}")],
        ),
        # A crawler folder in the env without its database (the `all` role's settings): skipped.
        (
            (),
            {
                "API_DB_FILEPATH": "/d/m.db",
                "API_DATABASE_URL": "postgresql://a@h/db",
                "CRAWLER_DB_PATH": "/c",
            },
            [("messages", "/d/m.db")],
        ),
        (
            ("--only", "counts"),
            {
                "API_DB_FILEPATH": "/d/m.db",
                "API_DATABASE_URL": "postgresql://a@h/db",
                "CRAWLER_DB_PATH": "/c",
                "CRAWLER_DATABASE_URL": "postgresql://a@h/db",
            },
            [("counts", f"/c/{CRAWLER_DB_FILENAME}")],
        ),
    ],
)
def test_the_parts_come_from_the_settings_and_the_arguments(
    argv: tuple[str, ...], env: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    jobs = jobs_from(parse_arguments(argv), env)
    assert [(job.what, str(job.file)) for job in jobs] == expected


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ((), {}, "nothing to copy: set API_DB_FILEPATH and API_DATABASE_URL"),
        (("--from", "/x.db"), {}, "API_DATABASE_URL (or --to) is not set, and --from is"),
        ((), {"API_DB_FILEPATH": "/d/m.db"}, "nothing to copy"),
        (
            ("--to", "mysql://u:pw@h/db"),
            {"API_DB_FILEPATH": "/d/m.db"},
            "--to='mysql://u:***@h/db': must be a postgresql:// URL",
        ),
        (("--only", "counts"), {"API_DB_FILEPATH": "/d/m.db"}, "nothing to copy: set CRAWLER_DB_PATH"),
    ],
)
def test_arguments_that_name_nothing_or_half_are_refused(
    argv: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    with pytest.raises(UsageError) as raised:
        jobs_from(parse_arguments(argv), env)
    assert str(raised.value).startswith(expected), raised.value


# The crawler's counts.

CATALOGUE = "http://catalogue.test"
KEYWORDS = ["love", "hate", "joy"]


async def make_crawl(folder: Path, steps: Sequence[str] = COUNT_MIGRATIONS) -> None:
    """A crawl half-way through its second pass, made by the crawler's own store."""
    file = folder / CRAWLER_DB_FILENAME
    if len(steps) < len(COUNT_MIGRATIONS):
        await old_schema(file, steps)  # a file an older version wrote, never opened since
        conn = sqlite3.connect(file)
        with conn:
            conn.execute(
                "UPDATE crawl_state SET source_url = ?, next_page_url = ?, pass_number = 2, pages_done = 7",
                (CATALOGUE, f"{CATALOGUE}/books/?page=8"),
            )
            conn.execute(
                "INSERT INTO books (id, title, title_folded, status, pass_number, updated_at)"
                " VALUES (84, 'Frankenstein', 'frankenstein', 'counted', 2, '2024-01-01T00:00:00.000Z')"
            )
            conn.execute("INSERT INTO counts VALUES ('love', 84, 17)")
        conn.close()
        return
    store = await SqliteCountStore.open(file)
    try:
        await store.start_pass(CATALOGUE, f"{CATALOGUE}/books/", 1)
        await store.record_books_total(76_000)
        books = [
            CountedBook(84, "Frankenstein; Or, The Modern Prometheus", f"{CATALOGUE}/84.txt", "utf-8"),
            CountedBook(1342, "Pride and Prejudice", f"{CATALOGUE}/1342.txt", None),
            CountedBook(7, "Ünïcödé \x00 Title", f"{CATALOGUE}/7.txt", "latin-1"),
        ]
        for number, book in enumerate(books):
            await store.save_counts(book, KEYWORDS, {"love": 10 + number, "hate": number, "joy": 3}, 1)
        await store.save_skip(99, "No Text Here", "no plain-text format", 1)
        await store.page_done(None)
        await store.start_pass(CATALOGUE, f"{CATALOGUE}/books/", 2)
        await store.page_done(f"{CATALOGUE}/books/?page=2")
        await store.record_error("catalogue page 2: 503")
    finally:
        await store.close()


async def test_the_crawl_goes_on_from_postgresql_where_it_stood(tmp_path: Path, postgres_url: str) -> None:
    await make_crawl(tmp_path)
    sqlite_store = await SqliteCountStore.open(tmp_path / CRAWLER_DB_FILENAME)
    position = await sqlite_store.position()
    stats = await sqlite_store.stats(KEYWORDS, "")
    totals = await sqlite_store.book_totals()
    await sqlite_store.close()

    env = {"CRAWLER_DB_PATH": str(tmp_path), "CRAWLER_DATABASE_URL": postgres_url}
    status, said = await run_copy(env=env)
    assert status == 0
    assert said[0].startswith(f"copied the crawl from {tmp_path / CRAWLER_DB_FILENAME} to ")
    assert said[0].endswith(
        f"4 books (3 counted, 1 skipped), 8 counts, pass 2 resuming at {CATALOGUE}/books/?page=2;"
        " 1 of them held a NUL character, which PostgreSQL's text can't: stored with U+FFFD in its place"
    )
    store = await PostgresCountStore.open(postgres_url, 2, 60)
    try:
        assert await store.position() == position
        # The same rows, the NUL as PostgreSQL's store writes a title with one.
        assert await store.stats(KEYWORDS, "") == [
            {**row, "BookTitle": row["BookTitle"].replace("\x00", "\ufffd")} for row in stats
        ]
        assert await store.book_totals() == totals
        assert not await store.needs_counting(1342, KEYWORDS, 2)
        assert not await store.needs_counting(99, KEYWORDS, 1)  # given up this pass...
        assert await store.needs_counting(99, KEYWORDS, 2)  # ...tried again in the next
        assert await store.needs_counting(1342, [*KEYWORDS, "fear"], 2)  # a new keyword: counted again
    finally:
        await store.close()

    status, said = await run_copy(env=env)
    assert status == 0 and said[0].startswith("nothing to copy: ")


async def test_a_count_file_of_an_older_schema_is_copied_as_its_migration_would_leave_it(
    tmp_path: Path, postgres_url: str
) -> None:
    await make_crawl(tmp_path, COUNT_MIGRATIONS[:2])
    status, _ = await run_copy("--crawler-from", str(tmp_path), "--crawler-to", postgres_url)
    assert status == 0
    store = await PostgresCountStore.open(postgres_url, 2, 60)
    try:
        position = await store.position()
        assert (position.next_page_url, position.pass_number, position.books_total) == (
            f"{CATALOGUE}/books/?page=8",
            2,
            None,
        )
        assert await store.stats(["love"], "") == [
            {"Keyword": "love", "BookTitle": "Frankenstein", "Count": 17}
        ]
    finally:
        await store.close()


async def test_a_database_holding_another_crawl_is_refused_and_left_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_url: str
) -> None:
    await make_crawl(tmp_path)
    store = await PostgresCountStore.open(postgres_url, 2, 60)
    await store.start_pass("https://gutendex.com", "https://gutendex.com/books/", 1)
    await store.save_counts(CountedBook(1, "Another", None, None), ["love"], {"love": 1}, 1)
    await store.close()
    status, _ = await run_copy("--crawler-from", str(tmp_path), "--crawler-to", postgres_url)
    assert status == 1
    line = one_error_line(capsys)
    assert (
        "already holds a crawl that is not this file's (1 books, pass 1, at https://gutendex.com/books/)"
        in line
    )
    store = await PostgresCountStore.open(postgres_url, 2, 60)
    try:
        assert (await store.position()).source_url == "https://gutendex.com"
        assert await store.stats(["love"], "") == [{"Keyword": "love", "BookTitle": "Another", "Count": 1}]
    finally:
        await store.close()


async def test_both_parts_commit_together_or_not_at_all(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    sqlite_file: Path,
    sqlite_history: tuple[list[dict[str, Any]], str],
    postgres_url: str,
) -> None:
    # The counts are refused: the messages, though they could be copied, are not either.
    await make_crawl(tmp_path)
    store = await PostgresCountStore.open(postgres_url, 2, 60)
    await store.start_pass("https://gutendex.com", "https://gutendex.com/books/", 1)
    await store.close()
    env = {
        "API_DB_FILEPATH": str(sqlite_file),
        "API_DATABASE_URL": postgres_url,
        "CRAWLER_DB_PATH": str(tmp_path),
        "CRAWLER_DATABASE_URL": postgres_url,
    }
    assert (await run_copy(env=env))[0] == 1
    assert "already holds a crawl" in one_error_line(capsys)
    assert (await database_state(postgres_url))[1] == []
    status, said = await run_copy("--only", "messages", env=env)
    assert status == 0 and said[0].startswith("copied 61 messages")
