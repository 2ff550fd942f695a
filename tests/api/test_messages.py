"""The api's message endpoints as the contract and our additions define them."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import pytest

from synergychat import keys
from synergychat.api import create_api_app
from synergychat.settings import ApiSettings
from synergychat.transport import NoCrawlerClient
from tests.conftest import expect_json, post_message


@pytest.fixture
def api_settings(api_settings_on_each_database: ApiSettings) -> ApiSettings:
    """These tests are the message store's promises as the api keeps them: on each database."""
    return api_settings_on_each_database


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_healthz(api_client: Any) -> None:
    assert await expect_json(await api_client.get("/healthz"), 200) == {"status": "ok"}


async def test_root_answers_load_balancer_probe(api_client: Any) -> None:
    # GKE's default health check probes GET /; the original's 404 there broke the seed deployment.
    body = await expect_json(await api_client.get("/"), 200)
    assert body["status"] == "ok"
    assert "/messages" in body["endpoints"]


async def test_post_returns_page_with_new_message(api_client: Any) -> None:
    page = await post_message(api_client, "john_doe", "Hello, world!")
    assert len(page) == 1
    message = page[0]
    assert message["AuthorUsername"] == "john_doe"
    assert message["Text"] == "Hello, world!"
    assert isinstance(message["id"], int)
    assert ISO_UTC.match(message["created_at"])


async def test_get_lists_oldest_first(api_client: Any) -> None:
    for number in range(3):
        await post_message(api_client, "ann", f"message {number}")
    listed = await expect_json(await api_client.get("/messages"), 200)
    assert [m["Text"] for m in listed] == ["message 0", "message 1", "message 2"]
    assert [m["id"] for m in listed] == sorted(m["id"] for m in listed)


async def test_pagination_latest_page_then_older(api_client: Any) -> None:
    for number in range(7):
        await post_message(api_client, "ann", f"m{number}")
    latest = await expect_json(await api_client.get("/messages", params={"limit": "3"}), 200)
    assert [m["Text"] for m in latest] == ["m4", "m5", "m6"]
    older = await expect_json(
        await api_client.get("/messages", params={"limit": "3", "before": str(latest[0]["id"])}), 200
    )
    assert [m["Text"] for m in older] == ["m1", "m2", "m3"]
    oldest = await expect_json(
        await api_client.get("/messages", params={"limit": "3", "before": str(older[0]["id"])}), 200
    )
    assert [m["Text"] for m in oldest] == ["m0"]


async def test_default_page_is_100_and_post_answers_it(api_client: Any) -> None:
    for number in range(104):
        await post_message(api_client, "ann", f"m{number}")
    listed = await expect_json(await api_client.get("/messages"), 200)
    assert len(listed) == 100
    assert listed[-1]["Text"] == "m103"
    page = await post_message(api_client, "bob", "last")
    assert len(page) == 100 and page[-1]["Text"] == "last"


async def test_limit_up_to_1000(api_client: Any) -> None:
    listed = await expect_json(await api_client.get("/messages", params={"limit": "1000"}), 200)
    assert listed == []


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"limit": "0"}, "limit must be between 1 and 1000"),
        ({"limit": "1001"}, "limit must be between 1 and 1000"),
        ({"limit": "-3"}, "limit must be a whole number"),
        # only ASCII digits: int() alone would take these
        ({"limit": "1_0"}, "limit must be a whole number"),
        ({"limit": "٥"}, "limit must be a whole number"),
        ({"limit": " 5"}, "limit must be a whole number"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"before": "0"}, "before must be between"),
        ({"before": "x"}, "before must be a whole number"),
        # larger than SQLite's integer range: must be refused, not crash the query
        ({"before": str(2**70)}, "before must be between"),
    ],
)
async def test_bad_paging_parameters(api_client: Any, params: dict[str, str], fragment: str) -> None:
    body = await expect_json(await api_client.get("/messages", params=params), 400)
    assert fragment in body["error"]


async def test_messages_are_on_disk_after_201(aiohttp_client: Any, api_settings: ApiSettings) -> None:
    # A second app on the same file is what a restarted process sees.
    first = await aiohttp_client(create_api_app(api_settings, NoCrawlerClient()))
    await post_message(first, "ann", "kept")
    second = await aiohttp_client(create_api_app(api_settings, NoCrawlerClient()))
    listed = await expect_json(await second.get("/messages"), 200)
    assert [m["Text"] for m in listed] == ["kept"]


async def test_concurrent_posts_lose_nothing(api_client: Any) -> None:
    # The original's file database drops messages under concurrent POSTs while answering 201.
    count = 200
    await asyncio.gather(*(post_message(api_client, f"user{n}", f"text {n}") for n in range(count)))
    listed = await expect_json(await api_client.get("/messages", params={"limit": "1000"}), 200)
    assert sorted(m["Text"] for m in listed) == sorted(f"text {n}" for n in range(count))
    assert len({m["id"] for m in listed}) == count


async def test_in_memory_store_when_no_file(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_api_app(ApiSettings(), NoCrawlerClient()))
    await post_message(client, "ann", "in memory")
    assert [m["Text"] for m in await expect_json(await client.get("/messages"), 200)] == ["in memory"]


@pytest.mark.parametrize(
    "text, stored",
    [
        ("what the heck", "what the ****"),
        ("Darn it, FETCH!", "**** it, *****!"),
        # whole words only: these contain a blocked word but are not one
        ("check the fetched darning", "check the fetched darning"),
    ],
)
async def test_blocked_words_are_masked_not_fatal(api_client: Any, text: str, stored: str) -> None:
    # The original kills its process on these words; we mask and carry on.
    page = await post_message(api_client, "ann", text)
    assert page[-1]["Text"] == stored
    await expect_json(await api_client.get("/healthz"), 200)


async def test_blocked_words_configurable(aiohttp_client: Any, tmp_path: Any) -> None:
    settings = ApiSettings(api_blocked_words="spoiler, Snape, c++", api_db_filepath=str(tmp_path / "m.db"))
    client = await aiohttp_client(create_api_app(settings, NoCrawlerClient()))
    page = await post_message(client, "ann", "spoiler: snape kills heck")
    assert page[-1]["Text"] == "*******: ***** kills heck"
    # words that begin or end in punctuation are whole words too
    page = await post_message(client, "ann", "I like C++ and c++17, not cc++")
    assert page[-1]["Text"] == "I like *** and c++17, not cc++"


async def test_unknown_path_is_json_404(api_client: Any) -> None:
    body = await expect_json(await api_client.get("/nope"), 404)
    assert body["error"]


async def test_wrong_method_is_json_405(api_client: Any) -> None:
    response = await api_client.delete("/messages")
    body = await expect_json(response, 405)
    assert body["error"] and "POST" in response.headers["Allow"]


async def test_database_failure_is_503_and_honest(aiohttp_client: Any, tmp_path: Any) -> None:
    # SQLite's own failure (another writer holds the file's lock); PostgreSQL's outages are
    # in tests/process/test_postgres_replicas.py.
    api_settings = ApiSettings(api_db_filepath=str(tmp_path / "db" / "messages.sqlite3"))
    client = await aiohttp_client(create_api_app(api_settings, NoCrawlerClient()))
    # Another process holding the write lock past the busy timeout: the insert can't happen.
    blocker = sqlite3.connect(api_settings.api_db_filepath, timeout=0)
    blocker.execute("PRAGMA busy_timeout = 0")
    await client.app[keys.MESSAGE_STORE]._writer.execute("PRAGMA busy_timeout = 100")
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        body = await expect_json(
            await client.post("/messages", json={"AuthorUsername": "ann", "Text": "hi"}), 503
        )
        assert "nothing was stored" in body["error"]
    finally:
        blocker.rollback()
        blocker.close()
    page = await post_message(client, "ann", "after the lock")
    assert [m["Text"] for m in page] == ["after the lock"]
