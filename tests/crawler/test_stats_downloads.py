"""GET /stats under clients that don't play along: too many at once, never reading, going away.

Ten clients that sent ``GET /stats`` and never read pinned ~500 MB (one whole
body each), readiness failed behind them, and a client that went away was logged
as a 500 with a traceback. bench/crawler_stats_memory.py measures the memory on
a real process; these tests pin the behaviour.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import struct
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from synergychat.storage import SqliteCountStore

from .conftest import SAMPLE_COUNTS, RunningCrawler, crawler_settings
from .fake_gutendex import FakeGutendex

StartCrawler = Callable[..., Awaitable[RunningCrawler]]
SEEDED_BOOKS = 40_000  # 80,000 rows, ~5 MB of JSON: more than the sockets between us can hold
# Rows per keyword once seeded: the sample catalogue's, and one per seeded book.
LOVE_ROWS = SEEDED_BOOKS + sum(1 for keyword, _ in SAMPLE_COUNTS if keyword == "love")
HATE_ROWS = SEEDED_BOOKS + sum(1 for keyword, _ in SAMPLE_COUNTS if keyword == "hate")


def seed_counts(db_file: Path, books: int, keywords: tuple[str, ...] = ("love", "hate")) -> None:
    """Counts for ``books`` more books, written straight into the crawler's file (WAL: beside it)."""
    with sqlite3.connect(db_file) as conn:
        conn.executemany(
            "INSERT INTO books (id, title, title_folded, status, keywords, pass_number, updated_at)"
            " VALUES (?, ?, ?, 'counted', ?, 1, '2026-01-01T00:00:00.000Z')",
            (
                (10**6 + i, f"Seeded book {i}", f"seeded book {i}", json.dumps(sorted(keywords)))
                for i in range(books)
            ),
        )
        conn.executemany(
            "INSERT INTO counts (keyword, book_id, count) VALUES (?, ?, ?)",
            ((keyword, 10**6 + i, 1 + i % 997) for i in range(books) for keyword in keywords),
        )
    conn.close()


async def start_seeded(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path, **limits: Any
) -> RunningCrawler:
    settings = crawler_settings(tmp_path / "counts", gutendex.base_url).model_copy(update=limits)
    running = await start_crawler(settings)
    await running.wait_until_waiting()
    seed_counts(tmp_path / "counts" / "crawler.sqlite3", SEEDED_BOOKS)
    return running


@contextmanager
def clients_that_never_read(running: RunningCrawler, number: int) -> Iterator[list[socket.socket]]:
    """Raw connections that ask for the whole of /stats and read nothing; reset when the block ends."""
    port = running.client.server.port
    sockets = []
    try:
        for _ in range(number):
            sock = socket.socket()
            # A small window, so what is in flight stays small and the server must wait.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /stats HTTP/1.1\r\nHost: crawler\r\n\r\n")
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            # Linger 0: close with a reset, as a client that is killed does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


async def downloads(running: RunningCrawler) -> dict[str, Any]:
    found = (await running.get_json("/status"))["stats_downloads"]
    assert isinstance(found, dict), found
    return found


async def wait_for_downloads(running: RunningCrawler, active: int, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (await downloads(running))["active"] != active:
        assert asyncio.get_running_loop().time() < deadline, await downloads(running)
        await asyncio.sleep(0.02)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def test_downloads_beyond_the_limit_get_a_quick_503_and_the_rest_keeps_serving(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "synergychat")
    running = await start_seeded(gutendex, start_crawler, tmp_path, crawler_stats_max_concurrent=2)
    assert await downloads(running) == {"active": 0, "max": 2, "send_timeout_seconds": 60.0}
    with clients_that_never_read(running, 2) as stalled:
        await wait_for_downloads(running, 2)
        for sock in stalled:  # until their answers have begun
            sock.settimeout(30)
            await asyncio.to_thread(sock.recv, 1, socket.MSG_PEEK)
        response = await running.client.get("/stats")
        assert response.status == 503 and response.headers["Retry-After"] == "2"
        assert "too many /stats downloads at once (2)" in (await response.json())["error"]
        # Everything else still answers: readiness, the totals, the status.
        assert (await running.get_json("/readyz"))["status"] == "ready"
        totals = await running.get_json("/stats/totals", keywords="love")
        assert totals["books"] == LOVE_ROWS
    # The clients were reset: their slots are free again, and it was no server error.
    await wait_for_downloads(running, 0)
    body = await running.get_json("/stats", keywords="love")
    assert len(body) == LOVE_ROWS
    assert [row["Count"] for row in body] == sorted(row["Count"] for row in body)
    assert any("the client went away" in record.getMessage() for record in caplog.records)
    assert errors_logged(caplog) == []


async def test_a_client_that_takes_nothing_is_cut_off_after_the_send_timeout(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "synergychat")
    running = await start_seeded(
        gutendex, start_crawler, tmp_path, crawler_stats_max_concurrent=1, crawler_send_timeout_seconds=0.5
    )
    with clients_that_never_read(running, 1) as (stalled,):
        await wait_for_downloads(running, 1)
        await wait_for_downloads(running, 0)
        # What it got is visibly incomplete: chunked, without the last chunk.
        stalled.settimeout(5)
        received = b""
        try:
            while piece := await asyncio.to_thread(stalled.recv, 1 << 16):
                received += piece
        except ConnectionResetError:
            pass
    assert received.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in received
    assert not received.endswith(b"\r\n0\r\n\r\n")
    assert any(
        "took nothing for 0 s" in record.getMessage() or "took nothing for 1 s" in record.getMessage()
        for record in caplog.records
    ), [record.getMessage() for record in caplog.records]
    assert errors_logged(caplog) == []
    # The slot is free for the next client.
    assert len(await running.get_json("/stats", keywords="hate")) == HATE_ROWS


async def test_readiness_does_not_wait_behind_the_count_store(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    # Ten whole /stats built under the store's lock made /readyz 503 in 7 of 11 probes.
    running = await start_seeded(gutendex, start_crawler, tmp_path)
    store = running.crawler._store
    assert isinstance(store, SqliteCountStore)  # the lock is SQLite's: one connection, serialised
    async with store._lock:  # as a long /stats/totals or a crawl write holds it
        ready = await running.get_json("/readyz")
        assert ready["status"] == "ready" and ready["checks"]["database"]["ok"] is True
        # A /stats download streams from its own connection: it does not wait either.
        assert len(await running.get_json("/stats", keywords="love")) == LOVE_ROWS


async def test_a_count_file_that_is_gone_is_not_ready(
    gutendex: FakeGutendex, start_crawler: StartCrawler, tmp_path: Path
) -> None:
    # The volume is lost under a running crawler: the probe must not create an empty file.
    running = await start_seeded(gutendex, start_crawler, tmp_path)
    for name in ("crawler.sqlite3", "crawler.sqlite3-wal", "crawler.sqlite3-shm"):
        (tmp_path / "counts" / name).unlink(missing_ok=True)
    response = await running.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"]["database"]["ok"] is False
    assert not (tmp_path / "counts" / "crawler.sqlite3").exists()
    response = await running.client.get("/stats")
    assert response.status == 503 and "error" in await response.json()
