"""Real processes: a crawler whose catalogue is down or slow, and /stats clients that go or stall.

The crawler's CRAWLER_SOURCE_URL is a port where nothing listens. The chat must
say it can't reach the book catalogue (never where it is), over HTTP to a
standalone crawler and in-process under ``--role all``. A client that drops a
``/stats`` download is the client's doing: no 500, no traceback in the log.
"""

from __future__ import annotations

import socket
import sqlite3
import struct
import time
from pathlib import Path

import pytest

from tests.crawler import fake_gutendex as faults
from tests.crawler.test_stats_downloads import seed_counts
from tests.process.test_crawler_processes import (
    ask_stats,
    crawler_env,
    fake_gutendex_thread,
    http_json,
    wait_for_status,
)
from tests.support.processes import free_port, running_role

pytestmark = pytest.mark.process


def dead_catalogue_env(tmp_path: Path) -> tuple[str, dict[str, str]]:
    dead = f"http://127.0.0.1:{free_port()}"
    return dead, {
        "CRAWLER_SOURCE_URL": dead,
        "CRAWLER_DELAY_SECONDS": "0",
        "CRAWLER_DB_PATH": str(tmp_path / "crawler-data"),
        "CRAWLER_KEYWORDS": "love,hate",
    }


def assert_honest(reply: str, dead: str) -> None:
    assert reply.startswith("Beep boop! I can't reach the book catalogue since "), reply
    assert "So far I have found 0 matches" in reply and "I have read 0 books so far." in reply
    assert dead.split("//")[1] not in reply and "127.0.0.1" not in reply and "http" not in reply


def test_standalone_crawler_with_a_dead_catalogue_over_http(tmp_path: Path) -> None:
    dead, env = dead_catalogue_env(tmp_path)
    with running_role("crawler", tmp_path, env) as crawler:
        status = wait_for_status(f"{crawler.url}/status", lambda s: s["catalogue"]["reachable"] is False)
        # /status says it all to an operator: since when, and what failed.
        assert status["state"] in ("crawling", "retrying") and status["catalogue"]["error"]
        # Still ready: the counts it has can be served, and it keeps trying.
        assert http_json("GET", f"{crawler.url}/readyz")[0] == 200
        api_env = {"CRAWLER_BASE_URL": crawler.url, "API_DB_FILEPATH": str(tmp_path / "api" / "messages.db")}
        with running_role("api", tmp_path, api_env) as api:
            assert_honest(ask_stats(f"{api.url}/messages", "/stats")["Text"], dead)


def test_role_all_with_a_dead_catalogue_in_process(tmp_path: Path) -> None:
    dead, env = dead_catalogue_env(tmp_path)
    env["API_DB_FILEPATH"] = str(tmp_path / "messages.db")
    with running_role("all", tmp_path, env, wait_path="/api/healthz") as app:
        wait_for_status(f"{app.url}/crawler/status", lambda s: s["catalogue"]["reachable"] is False)
        assert_honest(ask_stats(f"{app.url}/api/messages", "/stats")["Text"], dead)


def test_a_client_that_drops_a_stats_download_is_no_server_error(tmp_path: Path) -> None:
    _, env = dead_catalogue_env(tmp_path)
    env["CRAWLER_STATS_MAX_CONCURRENT"] = "2"
    folder = tmp_path / "crawler-data"
    with running_role("crawler", tmp_path, env) as crawler:
        # Enough counts that the answer can't all be in flight when the client goes.
        seed_counts(folder / "crawler.sqlite3", 40_000)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", crawler.port)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(b"GET /stats HTTP/1.1\r\nHost: crawler\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # All three slots came back (only two exist): the downloads ended when their clients left.
        deadline = time.monotonic() + 30
        while http_json("GET", f"{crawler.url}/status")[1]["stats_downloads"]["active"]:
            assert time.monotonic() < deadline, crawler.log()
            time.sleep(0.1)
        status_code, body = http_json("GET", f"{crawler.url}/stats?keywords=love")
        assert status_code == 200 and len(body) == 40_000
        log = crawler.log()
        assert log.count("the client went away after") == 3, log
        assert "Traceback" not in log and "unexpected error" not in log, log
        # The access log says what was sent: a 200 cut short by the client, not a 500.
        assert log.count('"GET /stats" 200') == 3 and '" 500 ' not in log, log
    with sqlite3.connect(folder / "crawler.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM counts").fetchone() == (80_000,)


def test_a_client_that_stops_reading_is_cut_off_after_the_send_timeout(tmp_path: Path) -> None:
    _, env = dead_catalogue_env(tmp_path)
    env.update(CRAWLER_STATS_MAX_CONCURRENT="1", CRAWLER_SEND_TIMEOUT_SECONDS="1")
    with running_role("crawler", tmp_path, env) as crawler:
        seed_counts(tmp_path / "crawler-data" / "crawler.sqlite3", 40_000)
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", crawler.port))
            stalled.sendall(b"GET /stats HTTP/1.1\r\nHost: crawler\r\n\r\n")
            assert stalled.recv(12, socket.MSG_PEEK) == b"HTTP/1.1 200"
            # Meanwhile the one slot is taken: the next download is refused at once.
            assert http_json("GET", f"{crawler.url}/stats")[0] == 503
            deadline = time.monotonic() + 30
            while http_json("GET", f"{crawler.url}/status")[1]["stats_downloads"]["active"]:
                assert time.monotonic() < deadline, crawler.log()
                time.sleep(0.1)
        assert http_json("GET", f"{crawler.url}/stats?keywords=hate")[0] == 200
        log = crawler.log()
        assert "the client took nothing for 1 s (CRAWLER_SEND_TIMEOUT_SECONDS)" in log, log
        assert "Traceback" not in log and '" 500 ' not in log, log


def test_a_book_served_at_one_byte_a_second_is_abandoned_and_the_crawl_goes_on(tmp_path: Path) -> None:
    with fake_gutendex_thread() as gutendex:
        # Pride and Prejudice trickles, forever: only the download deadline can end it.
        gutendex.fail("/files/1342.txt", faults.TRICKLE)
        env = {**crawler_env(gutendex, tmp_path / "crawler-data"), "CRAWLER_DOWNLOAD_TIMEOUT_SECONDS": "2"}
        with running_role("crawler", tmp_path, env) as crawler:
            status = wait_for_status(f"{crawler.url}/status", lambda s: s["state"] == "waiting")
            # Every other book was counted; this one waits to be tried again later (an hour).
            counts = (status["books_counted"], status["books_skipped"], status["books_to_try_later"])
            assert counts == (6, 2, 1)
            message = status["last_error"]["message"]
            assert message.startswith(
                "book 1342 (Pride and Prejudice) skipped: too slow: not finished after 2 s"
            )
            assert "trying it again in 60 min" in message
            assert status["catalogue"]["reachable"] is True
            assert gutendex.requests["/files/1342.txt"] == 1
