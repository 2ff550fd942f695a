"""The push channel: Server-Sent Events at /messages/stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse

from synergychat import keys, live
from synergychat.api import create_api_app
from synergychat.settings import ApiSettings
from synergychat.transport import NoCrawlerClient
from tests.conftest import post_message


@pytest.fixture
def api_settings(api_settings_on_each_database: ApiSettings) -> ApiSettings:
    """Live delivery on each database (PostgreSQL's goes through LISTEN/NOTIFY as well)."""
    return api_settings_on_each_database


async def read_events(response: ClientResponse, count: int, timeout: float = 2.0) -> list[dict[str, Any]]:
    """Read ``count`` message events (skipping pings) within ``timeout`` seconds."""
    return await read_any_events(response, count, timeout, kinds=("message",))


async def read_any_events(
    response: ClientResponse, count: int, timeout: float = 2.0, kinds: tuple[str, ...] = ("message", "reset")
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while len(events) < count:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if line == "":
                if "data" in current and current.get("event") in kinds:
                    events.append(
                        {
                            "sse_id": current.get("id"),
                            "event": current.get("event"),
                            **json.loads(current["data"]),
                        }
                    )
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = value
    return events


async def test_new_message_arrives_within_a_second(api_client: Any) -> None:
    async with api_client.get("/messages/stream") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        await post_message(api_client, "ann", "live!")
        [event] = await read_events(stream, 1, timeout=1.0)
    assert event["event"] == "message"
    assert event["Text"] == "live!" and event["AuthorUsername"] == "ann"
    # The SSE id is the message id, so a reconnecting EventSource resumes from it.
    assert event["sse_id"] == str(event["id"])


async def test_event_ids_are_message_ids_and_bot_replies_stream_too(api_client: Any) -> None:
    async with api_client.get("/messages/stream") as stream:
        page = await post_message(api_client, "ann", "/stats")
        events = await read_events(stream, 2)
    assert [e["AuthorUsername"] for e in events] == ["ann", "crawler-bot"]
    assert [e["id"] for e in events] == [m["id"] for m in page[-2:]]


async def test_no_history_without_after(api_client: Any) -> None:
    await post_message(api_client, "ann", "old")
    async with api_client.get("/messages/stream") as stream:
        await post_message(api_client, "ann", "new")
        [event] = await read_events(stream, 1)
    assert event["Text"] == "new"


@pytest.mark.parametrize("how", ["last-event-id", "after"])
async def test_reconnect_replays_what_was_missed(api_client: Any, how: str) -> None:
    first = (await post_message(api_client, "ann", "seen"))[-1]
    await post_message(api_client, "ann", "missed 1")
    await post_message(api_client, "ann", "missed 2")
    kwargs: dict[str, Any] = (
        {"headers": {"Last-Event-ID": str(first["id"])}}
        if how == "last-event-id"
        else {"params": {"after": str(first["id"])}}
    )
    async with api_client.get("/messages/stream", **kwargs) as stream:
        await post_message(api_client, "ann", "live")
        events = await read_events(stream, 3)
    assert [e["Text"] for e in events] == ["missed 1", "missed 2", "live"]


async def test_a_stream_that_stops_reading_is_let_go_and_catches_up_on_reconnect(
    api_client: Any, monkeypatch: Any
) -> None:
    # A client that doesn't read costs no memory: its stream ends, and the reconnect
    # (EventSource sends Last-Event-ID) replays everything from the database, once each.
    monkeypatch.setattr(live, "MAX_UNSENT_BYTES", -1)
    hub = api_client.app[keys.MESSAGE_HUB]
    async with api_client.get("/messages/stream") as stream:
        hello = await read_any_events(stream, 1, kinds=("hello",))
        for _ in range(50):
            if len(hub) == 1:
                break
            await asyncio.sleep(0.02)
        await asyncio.gather(*(post_message(api_client, "ann", f"burst {n}") for n in range(20)))
        for _ in range(100):
            if len(hub) == 0:
                break
            await asyncio.sleep(0.02)
        assert len(hub) == 0, "the non-reading stream is still held"
    monkeypatch.setattr(live, "MAX_UNSENT_BYTES", 256 * 1024)
    headers = {"Last-Event-ID": str(hello[0]["last_id"])}
    async with api_client.get("/messages/stream", headers=headers) as stream:
        events = await read_events(stream, 20, timeout=5)
    assert sorted(e["Text"] for e in events) == sorted(f"burst {n}" for n in range(20))
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 20


async def test_many_streams_each_get_every_message(api_client: Any) -> None:
    streams = [await api_client.get("/messages/stream") for _ in range(10)]
    try:
        await post_message(api_client, "ann", "to all")
        for stream in streams:
            [event] = await read_events(stream, 1)
            assert event["Text"] == "to all"
    finally:
        for stream in streams:
            stream.close()


async def test_disconnected_stream_is_forgotten(api_client: Any) -> None:
    hub = api_client.app[keys.MESSAGE_HUB]
    stream = await api_client.get("/messages/stream")
    await asyncio.sleep(0.1)
    assert len(hub) == 1
    stream.close()
    await post_message(api_client, "ann", "nobody listens")
    for _ in range(50):
        if len(hub) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(hub) == 0


async def test_shutdown_ends_open_streams(api_client: Any) -> None:
    stream = await api_client.get("/messages/stream")
    await asyncio.sleep(0.1)
    await api_client.app.shutdown()
    async with asyncio.timeout(2):
        rest = await stream.content.read()
    # The stream ended (read() returned) having said nothing but hello.
    assert b"event: message" not in rest


@pytest.mark.parametrize("header", ["\u00b2", "99999999999999999999", "abc", "-1", " "])
async def test_unusable_last_event_id_is_ignored(api_client: Any, header: str) -> None:
    # "²".isdigit() is true and 10**20 overflows SQLite: neither may break the stream.
    async with api_client.get("/messages/stream", headers={"Last-Event-ID": header}) as stream:
        assert stream.status == 200
        await post_message(api_client, "ann", "still live")
        [event] = await read_events(stream, 1)
    assert event["Text"] == "still live"


async def test_client_ahead_of_the_database_is_told_to_reset(api_client: Any) -> None:
    # An api restarted on an empty database: the page's ids are from another history.
    newest = (await post_message(api_client, "ann", "only message"))[-1]["id"]
    async with api_client.get("/messages/stream", headers={"Last-Event-ID": str(newest + 50)}) as stream:
        [reset] = await read_any_events(stream, 1)
        assert reset["event"] == "reset" and reset["sse_id"] == str(newest)
        assert reset["last_id"] == newest
        await post_message(api_client, "bob", "new history")
        [event] = await read_events(stream, 1)
    assert event["Text"] == "new history"


async def test_every_stream_starts_by_naming_its_history(
    api_client: Any, aiohttp_client: Any, tmp_path: Any
) -> None:
    # The page compares it across reconnects: a new database means new meanings for ids.
    async with api_client.get("/messages/stream") as stream:
        [hello] = await read_any_events(stream, 1, kinds=("hello",))
    history = hello["history"]
    assert len(history) == 32
    async with api_client.get("/messages/stream") as stream:
        [again] = await read_any_events(stream, 1, kinds=("hello",))
    assert again["history"] == history
    other = await aiohttp_client(
        create_api_app(ApiSettings(api_db_filepath=str(tmp_path / "other.db")), NoCrawlerClient())
    )
    async with other.get("/messages/stream") as stream:
        [elsewhere] = await read_any_events(stream, 1, kinds=("hello",))
    assert elsewhere["history"] != history
