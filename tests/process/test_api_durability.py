"""A 201 means stored: under SIGKILL, on a full disk, with many writers at once."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import pytest

from tests.support.processes import running_role

pytestmark = pytest.mark.process


def post(url: str, text: str, timeout: float = 10) -> int:
    request = urllib.request.Request(
        url + "/messages",
        data=json.dumps({"AuthorUsername": "writer", "Text": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            page = json.loads(response.read())
            # The answer is the latest page, and the sender's own message is on it.
            assert text in [message["Text"] for message in page]
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        assert "error" in body
        return error.code
    except OSError:
        return 0  # no answer at all: the process died or the connection broke


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def stored_texts(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        return Counter(text for (text,) in conn.execute("SELECT text FROM messages"))


class Writers:
    """``count`` threads posting unique texts until stopped; remembers every 201."""

    def __init__(self, url: str, count: int, prefix: str) -> None:
        self.url = url
        self.acknowledged: list[str] = []
        self.statuses: Counter[int] = Counter()
        self._numbers = itertools.count()
        self._prefix = prefix
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        while not self._stop.is_set():
            text = f"{self._prefix} {next(self._numbers)}"
            status = post(self.url, text, timeout=5)
            with self._lock:
                self.statuses[status] += 1
                if status == 201:
                    self.acknowledged.append(text)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def test_twenty_sigkills_under_sixteen_writers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    db = tmp_path / "data" / "messages.sqlite3"
    acknowledged: list[str] = []
    for round_number in range(20):
        with running_role("api", tmp_path, env={"API_DB_FILEPATH": str(db)}) as api:
            with Writers(api.url, 16, f"round {round_number}") as writers:
                time.sleep(0.3 + (round_number % 5) * 0.1)
                api.process.kill()  # SIGKILL, with writes in flight
                api.process.wait()
            acknowledged += writers.acknowledged
            assert writers.statuses[201] > 0, writers.statuses
    stored = stored_texts(db)
    assert not [text for text in acknowledged if stored[text] != 1]
    assert not [text for text, times in stored.items() if times > 1]


@contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (as root: CI runs the suite as root)."""
    path.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, check=False
    )
    assert result.returncode == 0, f"could not mount a tmpfs (the suite runs as root): {result.stderr!r}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


@pytest.mark.parametrize("writers", [1, 4, 16])
def test_a_full_disk_answers_503_never_a_false_201_and_recovers_without_restart(
    tmp_path: Path, writers: int
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "messages.sqlite3"
        with running_role("api", tmp_path, env={"API_DB_FILEPATH": str(db)}) as api:
            assert post(api.url, "before the disk filled") == 201
            filler = fill(disk)
            with Writers(api.url, writers, "while full") as load:
                time.sleep(2.0)
                readiness_while_full = readyz(api.url)
            # Every write failed or was really stored; none got a 201 without a row.
            assert load.statuses[503] > 0, load.statuses
            assert set(load.statuses) <= {201, 503}, load.statuses
            assert readiness_while_full == 503
            stored = stored_texts(db)
            assert not [text for text in load.acknowledged if stored[text] != 1]
            # Space again: writes work at once, readiness follows, no restart.
            filler.unlink()
            assert post(api.url, "after space came back") == 201
            assert readyz(api.url) == 200
            assert api.process.poll() is None
        stored = stored_texts(db)
    assert stored["before the disk filled"] == 1 and stored["after space came back"] == 1
