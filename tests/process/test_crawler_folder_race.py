"""Crawlers sharing one CRAWLER_DB_PATH, started at the same moment on a fresh folder.

The original's minikube pod runs two crawler containers on one volume. Both
create the count database at once: one of them used to exit with ``table
crawl_state already exists`` or ``database is locked`` (7 times in 20). Every
round here starts two real processes together on a new folder; both must come
up, and together they must keep every count exactly (none doubled).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.crawler.conftest import SAMPLE_COUNTS
from tests.process.test_crawler_processes import fake_gutendex_thread, http_json, wait_for_status
from tests.support.processes import REPO, free_port, role_env, wait_until_up

pytestmark = pytest.mark.process

ROUNDS = 20
CRAWLERS = 2
BOOKS_WITH_TEXT = 7  # sample_books(): eight entries, one without a plain text
LOVE = sum(count for (keyword, _), count in SAMPLE_COUNTS.items() if keyword == "love")
HATE = sum(count for (keyword, _), count in SAMPLE_COUNTS.items() if keyword == "hate")


# One test per round: each starts two Pythons, several seconds on a busy machine.
@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_crawlers_started_together_on_a_fresh_folder_all_come_up(tmp_path: Path, round_number: int) -> None:
    with fake_gutendex_thread() as gutendex:
        folder = tmp_path / f"round-{round_number}" / "counts"
        env = {
            "CRAWLER_SOURCE_URL": gutendex.base_url,
            "CRAWLER_DELAY_SECONDS": "0",
            "CRAWLER_DB_PATH": str(folder),
            "CRAWLER_KEYWORDS": "love,hate",
        }
        ports = [free_port() for _ in range(CRAWLERS)]
        logs = [tmp_path / f"round-{round_number}-crawler-{n}.log" for n in range(CRAWLERS)]
        # Both launched before either is waited for: they open the new file together.
        processes = []
        for port, log in zip(ports, logs):
            with open(log, "wb") as log_file:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "synergychat", "--role", "crawler"],
                        cwd=REPO,
                        env=role_env({**env, "CRAWLER_PORT": str(port)}),
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            for process, port, log in zip(processes, ports, logs):
                try:
                    wait_until_up(f"http://127.0.0.1:{port}/healthz", process, timeout=30)
                except (RuntimeError, TimeoutError) as error:
                    pytest.fail(f"round {round_number}: {error}\n{log.read_text()}", pytrace=False)
            for port in ports:
                url = f"http://127.0.0.1:{port}"
                status = wait_for_status(f"{url}/status", lambda s: s["state"] == "waiting")
                assert status["books_counted"] == BOOKS_WITH_TEXT, (round_number, status)
                status_code, ready = http_json("GET", f"{url}/readyz")
                assert status_code == 200, (round_number, ready)
                for keyword, expected in (("love", LOVE), ("hate", HATE)):
                    status_code, counts = http_json("GET", f"{url}/stats?keywords={keyword}")
                    assert status_code == 200
                    # One row per book: a book counted by both crawlers is not counted twice.
                    titles = [row["BookTitle"] for row in counts]
                    assert len(titles) == len(set(titles)), (round_number, counts)
                    assert sum(row["Count"] for row in counts) == expected, (round_number, counts)
        finally:
            for process in processes:
                process.terminate()
            codes = [process.wait(15) for process in processes]
        # SIGTERM: each stops cleanly (checked after the finally, so a failure above is the one shown).
        assert codes == [0] * CRAWLERS, [log.read_text() for log in logs]
