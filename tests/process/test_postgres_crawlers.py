"""Two crawler processes on one PostgreSQL, against the fake catalogue (in a thread here).

Each book counted once and the totals exact; one crawler killed (SIGKILL) in the middle
of a book, which the other finishes once the lease runs out; the fleet's requests to the
catalogue spaced by CRAWLER_DELAY_SECONDS; an unusable database at start is one line.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.crawler.conftest import SAMPLE_COUNTS, SAMPLE_TEXT_FILES
from tests.crawler.fake_gutendex import TRICKLE, FakeGutendex
from tests.process.test_crawler_processes import fake_gutendex_thread, http_json, wait_for_status
from tests.process.test_observability import Scrape, eventually
from tests.support.postgres import PostgresServer
from tests.support.processes import RunningRole, running_role

pytestmark = pytest.mark.process

LEASE_SECONDS = 3.0
LAST_SUCCESS = "synergychat_crawler_last_success_timestamp_seconds"


@contextmanager
def crawlers(
    tmp_path: Path, url: str, catalogue: FakeGutendex, delay: float, count: int = 2
) -> Iterator[list[RunningRole]]:
    env = {
        "CRAWLER_DATABASE_URL": url,
        "CRAWLER_SOURCE_URL": catalogue.base_url,
        "CRAWLER_DELAY_SECONDS": str(delay),
        "CRAWLER_KEYWORDS": "love,hate",
        "CRAWLER_LEASE_SECONDS": str(LEASE_SECONDS),
        # The slow book's trickle must last until the test kills its crawler.
        "CRAWLER_DOWNLOAD_MIN_BYTES_PER_SECOND": "0",
    }
    with ExitStack() as stack:
        yield [stack.enter_context(running_role("crawler", tmp_path, env)) for _ in range(count)]


def stats(crawler: RunningRole, path: str = "/stats") -> Any:
    status, body = http_json("GET", crawler.url + path)
    assert status == 200, body
    return body


def assert_counted_once_and_exact(crawler_list: list[RunningRole]) -> None:
    for crawler in crawler_list:
        body = stats(crawler)
        assert {(row["Keyword"], row["BookTitle"]): row["Count"] for row in body} == SAMPLE_COUNTS
        assert len(body) == len(SAMPLE_COUNTS)
        love = sum(count for (keyword, _), count in SAMPLE_COUNTS.items() if keyword == "love")
        assert stats(crawler, "/stats/totals?keywords=love")["totals"] == {"love": love}


def test_two_crawlers_share_the_walk_count_each_book_once_and_keep_the_fleets_pace(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    delay = 0.4
    url = postgres_server.url(postgres_server.create_database())
    with fake_gutendex_thread() as catalogue:
        # The walk starts once both are up (a process takes seconds to start on a busy machine).
        gate = catalogue.hold("/books/")
        with crawlers(tmp_path, url, catalogue, delay) as pair:
            assert catalogue.loop is not None
            catalogue.loop.call_soon_threadsafe(gate.set)
            for crawler in pair:
                wait_for_status(f"{crawler.url}/status", lambda s: s["state"] == "waiting", timeout=60)
            assert_counted_once_and_exact(pair)
            statuses = [stats(crawler, "/status") for crawler in pair]
            logs = [crawler.log() for crawler in pair]
        # A replica started later reports the fleet's last success from its first scrapes,
        # read from the database (not "never" until it counts a book of its own).
        last_success = datetime.fromisoformat(statuses[0]["last_success_at"]).timestamp()
        with crawlers(tmp_path, url, catalogue, delay, count=1) as (later,):
            eventually(
                lambda: abs(Scrape(later.url).value(LAST_SUCCESS) - last_success) < 0.01,
                timeout=30,
            )
    # The same answers from either replica.
    shared = ("books_counted", "books_skipped", "pages_done", "pass", "next_page_url", "last_success_at")
    assert statuses[0]["books_counted"] == 7
    assert len({tuple(status[key] for key in shared) for status in statuses}) == 1
    assert catalogue.served == {name: 1 for name in SAMPLE_TEXT_FILES}
    assert all(catalogue.requests[catalogue.page_path(n)] == 1 for n in (1, 2, 3))
    # Both did some of the work.
    assert all("counted:" in log for log in logs), [log[-3000:] for log in logs]
    starts = sorted(when for when, _ in catalogue.request_times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    print(
        f"\n{len(starts)} catalogue requests from 2 crawlers at CRAWLER_DELAY_SECONDS={delay}: "
        f"smallest gap {min(gaps):.3f} s, median {sorted(gaps)[len(gaps) // 2]:.3f} s"
    )
    # The fleet's pace, not each crawler's: two crawlers must not ask twice as often. These
    # are arrival times at the catalogue: a crawler that sends late after its turn (a busy
    # machine) shortens the one gap after it, and the turns themselves are spaced exactly
    # (test_count_store checks them on the database's clock). So the typical gap and the
    # whole run's span hold the pace; no single gap is asked to.
    median_gap = sorted(gaps)[len(gaps) // 2]
    assert median_gap >= delay - 0.05, gaps
    assert starts[-1] - starts[0] >= len(gaps) * delay - 0.25, gaps


def test_a_crawler_killed_mid_book_leaves_it_to_the_other_after_the_lease(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url(postgres_server.create_database())
    slow = "/files/1342.txt"
    with fake_gutendex_thread() as catalogue:
        # The first download of this book trickles a byte a second: it is mid-download when killed.
        catalogue.fail(slow, TRICKLE)
        with crawlers(tmp_path, url, catalogue, 0.0) as pair:
            deadline = time.monotonic() + 30
            holder: RunningRole | None = None
            while holder is None:
                assert time.monotonic() < deadline, "nobody started the slow book"
                for crawler in pair:
                    book = stats(crawler, "/status")["current_book"]
                    if book is not None and book["id"] == 1342:
                        holder = crawler
                time.sleep(0.05)
            other = pair[1] if holder is pair[0] else pair[0]
            time.sleep(0.5)
            holder.process.kill()  # SIGKILL: no goodbye, the lease just stops being renewed
            holder.process.wait()
            killed_at = time.monotonic()
            wait_for_status(
                f"{other.url}/status",
                lambda s: s["state"] == "waiting" and s["books_counted"] == 7,
                timeout=60,
            )
            finished_after = time.monotonic() - killed_at
            assert_counted_once_and_exact([other])
    print(f"\nthe killed crawler's book was finished by the other {finished_after:.1f} s after the kill")
    # Taken over only once the lease had run out (renewed until the kill).
    assert finished_after >= LEASE_SECONDS * 2 / 3 - 0.5
    assert catalogue.requests[slow] == 2 and catalogue.served["1342.txt"] == 1
    assert catalogue.served == {name: 1 for name in SAMPLE_TEXT_FILES}
