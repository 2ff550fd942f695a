"""The message store's promises, held by both backends: SQLite's and PostgreSQL's.

Every test in the first part runs against both (the ``backend`` fixture), so neither
drifts; the second part is PostgreSQL's own: several replicas on one database.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from synergychat.api import open_message_store
from synergychat.settings import ApiSettings, StartupError
from synergychat.storage import Message, MessageStore, SqliteMessageStore, StoreUnavailable
from synergychat.storage.pg_follow import POLL_SECONDS
from synergychat.storage.pg_messages import PostgresMessageStore
from synergychat.storage.store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tests.support.postgres import PostgresServer

POOL_SIZE = 4


class Backend:
    """Opens stores on one database of either kind, and runs SQL on it behind their back."""

    def __init__(self, kind: str, sqlite_path: Path, postgres_url: str) -> None:
        self.kind = kind
        self.sqlite_path = sqlite_path
        self.postgres_url = postgres_url
        self.stores: list[MessageStore] = []

    async def open(self) -> MessageStore:
        store: MessageStore
        if self.kind == "sqlite":
            store = await SqliteMessageStore.open(self.sqlite_path)
        else:
            store = await PostgresMessageStore.open(self.postgres_url, POOL_SIZE)
        self.stores.append(store)
        return store

    async def execute(self, sqlite_sql: str, postgres_sql: str) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.sqlite_path) as sqlite:
                sqlite.executescript(sqlite_sql)
            return
        conn = await asyncpg.connect(self.postgres_url)
        try:
            await conn.execute(postgres_sql)
        finally:
            await conn.close()

    async def count(self) -> int:
        if self.kind == "sqlite":
            with sqlite3.connect(self.sqlite_path) as sqlite:
                return int(sqlite.execute("SELECT count(*) FROM messages").fetchone()[0])
        conn = await asyncpg.connect(self.postgres_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM messages"))
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    # PostgreSQL's server is started only when a postgres case runs.
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    backend = Backend(request.param, tmp_path / "messages.sqlite3", url)
    yield backend
    for store in backend.stores:
        await store.close()


def texts(page: bytes) -> list[str]:
    return [message["Text"] for message in json.loads(page)]


async def test_a_message_is_on_the_page_its_commit_answers(backend: Backend) -> None:
    store = await backend.open()
    message, page = await store.add_and_page("ann", "hello")
    assert texts(page) == ["hello"]
    assert json.loads(page)[0] == message.to_json()
    assert await store.last_id() == message.id
    assert await store.page_json(DEFAULT_PAGE_SIZE) == page


async def test_pages_newest_and_older_oldest_first(backend: Backend) -> None:
    store = await backend.open()
    for number in range(7):
        await store.add_and_page("ann", f"m{number}")
    latest = json.loads(await store.page_json(3))
    assert [m["Text"] for m in latest] == ["m4", "m5", "m6"]
    older = json.loads(await store.page_json(3, before=latest[0]["id"]))
    assert [m["Text"] for m in older] == ["m1", "m2", "m3"]
    # Older pages come from the database, in the shape the newest come in from memory.
    assert older[0].keys() == latest[0].keys()
    assert texts(await store.page_json(3, before=older[0]["id"])) == ["m0"]


async def test_concurrent_writers_share_commits_and_lose_nothing(backend: Backend) -> None:
    store = await backend.open()
    heard: list[list[Message]] = []
    store.add_listener(heard.append)
    count = 300
    results = await asyncio.gather(*(store.add_and_page(f"user{n}", f"text {n}") for n in range(count)))
    ids = [message.id for message, _ in results]
    assert len(set(ids)) == count
    for message, page in results:
        assert message.text in texts(page)  # each writer's own message is on its answer
    # Listeners heard every message once, in id order.
    flat = [message.id for batch in heard for message in batch]
    assert flat == sorted(ids)
    assert len(heard) < count  # group commit: batches, not one commit per message


async def test_after_reads_from_memory_and_from_the_database(backend: Backend) -> None:
    store = await backend.open()
    await asyncio.gather(*(store.add_and_page("ann", f"m{n}") for n in range(MAX_PAGE_SIZE + 50)))
    first = json.loads(await store.page_json(1, before=10**9))[0]["id"] - MAX_PAGE_SIZE - 49
    # Older than what memory holds: from the database.
    oldest = await store.after(first - 1, 10)
    assert [m.id for m in oldest] == list(range(first, first + 10))
    newest = await store.after(await store.last_id() - 3, 10)
    assert len(newest) == 3


async def test_history_and_messages_survive_a_reopen(backend: Backend) -> None:
    store = await backend.open()
    message, _ = await store.add_and_page("ann", "kept")
    history = store.history_id
    await store.close()
    backend.stores.remove(store)
    again = await backend.open()
    assert again.history_id == history
    assert await again.last_id() == message.id
    assert texts(await again.page_json(DEFAULT_PAGE_SIZE)) == ["kept"]


async def test_a_failed_commit_fails_exactly_its_writers_and_readiness_for_a_while(backend: Backend) -> None:
    store = await backend.open()
    await store.add_and_page("ann", "before")
    await store.check()
    # The database refuses one text: the batch holding it is refused whole, nothing stored.
    await backend.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        "ALTER TABLE messages ADD CONSTRAINT poison CHECK (text <> 'poison')",
    )
    with pytest.raises(StoreUnavailable):
        await store.add_and_page("ann", "poison")
    assert await backend.count() == 1
    with pytest.raises(StoreUnavailable, match="failed moments ago"):
        await store.check()
    _, page = await store.add_and_page("ann", "after")
    assert texts(page) == ["before", "after"]
    await store.check()  # a stored message clears the failure


# PostgreSQL's own: several replicas (stores) on one database.


def note_ids(ids: list[int], batch: list[Message]) -> None:
    ids.extend(message.id for message in batch)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.01)


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[list[PostgresMessageStore]]:
    # Opened together on a fresh database: the migrations race, under their lock.
    stores = await asyncio.gather(*(PostgresMessageStore.open(postgres_url, POOL_SIZE) for _ in range(3)))
    yield list(stores)
    for store in stores:
        await store.close()


async def test_replicas_migrating_together_share_one_history(
    replicas: list[PostgresMessageStore], postgres_url: str
) -> None:
    assert len({store.history_id for store in replicas}) == 1
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT version FROM schema_versions WHERE store = 'messages'") == 3
        assert await conn.fetchval("SELECT count(*) FROM history") == 1
    finally:
        await conn.close()


async def test_a_message_stored_on_one_replica_reaches_the_others(
    replicas: list[PostgresMessageStore],
) -> None:
    first, _, third = replicas
    heard: list[Message] = []
    third.add_listener(heard.extend)
    message, _ = await first.add_and_page("ann", "across")

    async def arrived() -> bool:
        return [m.id for m in heard] == [message.id]

    # Notified, not polled: well within the safety net's period.
    await eventually(arrived, timeout=POLL_SECONDS / 2)
    assert texts(await third.page_json(DEFAULT_PAGE_SIZE)) == ["across"]


async def test_a_commit_answers_with_other_replicas_messages_before_it(
    replicas: list[PostgresMessageStore],
) -> None:
    first, second, _ = replicas
    await first.add_and_page("ann", "one")
    await first.add_and_page("ann", "two")
    # Whether or not the notification has arrived, the page holds all three, in order.
    _, page = await second.add_and_page("bob", "three")
    assert texts(page) == ["one", "two", "three"]
    # A stream resuming from an id another replica issued is not told its history changed.
    assert await second.last_id() == await first.last_id()


async def test_ids_appear_in_commit_order_to_a_reader_that_resumes_by_id(
    replicas: list[PostgresMessageStore], postgres_url: str
) -> None:
    """With a sequence, two replicas could commit ids 8 then 7: a reader that read 8 and then
    asks "after 8" never sees 7. The id lock makes that impossible; this reader would notice."""
    heard: dict[int, list[int]] = {index: [] for index in range(len(replicas))}
    for index, store in enumerate(replicas):
        store.add_listener(functools.partial(note_ids, heard[index]))
    stop = asyncio.Event()
    seen: list[int] = []

    async def reader() -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            while not stop.is_set():
                after = seen[-1] if seen else 0
                rows = await conn.fetch("SELECT id FROM messages WHERE id > $1 ORDER BY id", after)
                seen.extend(row["id"] for row in rows)
        finally:
            await conn.close()

    async def writer(store: PostgresMessageStore, name: str) -> None:
        for number in range(60):
            await asyncio.gather(*(store.add_and_page(name, f"{name} {number}.{k}") for k in range(3)))

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(store, f"w{n}") for n, store in enumerate(replicas * 2)))
    await asyncio.sleep(0.2)
    stop.set()
    await reading
    total = 2 * len(replicas) * 60 * 3
    assert seen == list(range(1, total + 1)), "the reader skipped or repeated an id"

    async def all_heard() -> bool:
        return all(len(ids) == total for ids in heard.values())

    await eventually(all_heard)
    for ids in heard.values():
        assert ids == list(range(1, total + 1))  # every replica: every message, once, in order


async def test_a_lost_listen_connection_costs_latency_not_messages(
    replicas: list[PostgresMessageStore], postgres_url: str
) -> None:
    first, second, _ = replicas
    heard: list[str] = []
    second.add_listener(lambda batch: heard.extend(m.text for m in batch))
    conn = await asyncpg.connect(postgres_url)
    try:
        # Every connection of this database but ours is cut: pools and LISTEN connections.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    stored = []
    for number in range(5):
        try:
            stored.append((await first.add_and_page("ann", f"after the cut {number}"))[0].text)
        except StoreUnavailable:
            pass  # at most the first try finds its pooled connection gone
    assert len(stored) >= 4

    async def caught_up() -> bool:
        return heard == stored

    await eventually(caught_up)


async def test_a_lost_commit_answer_is_settled_by_looking(replicas: list[PostgresMessageStore]) -> None:
    first = replicas[0]
    message, _ = await first.add_and_page("ann", "committed")
    assert await first._were_stored([message]) is True
    forged = Message(message.id, "ann", "never committed", message.created_at)
    assert await first._were_stored([forged]) is False


@pytest.mark.parametrize(
    "mangle",
    [
        # the password is wrong: the server refuses, and the password is not repeated
        lambda url: url.replace("test-secret-pw", "wrong-pw"),
        # nothing listens there
        lambda url: url.replace(url.split(":")[-1].split("/")[0], "1"),
        # the database does not exist
        lambda url: url.rsplit("/", 1)[0] + "/no_such_database",
    ],
)
async def test_an_unusable_database_stops_the_start_naming_the_variable(
    postgres_url: str, mangle: Callable[[str], str]
) -> None:
    url = mangle(postgres_url)
    with pytest.raises(StartupError) as raised:
        await open_message_store(ApiSettings(api_database_url=url))
    message = str(raised.value)
    assert message.startswith("API_DATABASE_URL=postgresql://postgres:***@127.0.0.1")
    assert "pw" not in message.replace("***", "")


async def test_postgres_server_fixture_serves_fsync_on(postgres_server: PostgresServer) -> None:
    # A 201 is only as durable as the commit under it: the test server must not cheat.
    assert postgres_server.psql("postgres", "SHOW fsync") == ["on"]
