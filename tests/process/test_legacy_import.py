"""The original api's message file, taken over by a real api process.

The original keeps its history in API_DB_FILEPATH as an indented JSON array;
a user switching images keeps the same path. The api must start on it, serve
those messages first and in order, keep the JSON as a backup it names in its
log, and never import twice, even when killed in the middle of the import.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synergychat.storage.legacy_import import BACKUP_SUFFIX, BUILDING_SUFFIX, SQLITE_HEADER
from tests.process.test_crawler_processes import http_json
from tests.support.processes import REPO, free_port, role_env, running_role

pytestmark = pytest.mark.process

PAGE = 1000


def original_messages(count: int) -> list[dict[str, str]]:
    """Messages as the original's users wrote them: unicode, quotes, blank and long texts."""
    texts = ["hello", 'she said "hi"', "", "ünïcödé ✓ 日本語", "/stats keywords=love", "x" * 3000]
    return [
        {"AuthorUsername": f"user{n % 37}", "Text": f"{n}: {texts[n % len(texts)]}"} for n in range(count)
    ]


def write_original_file(path: Path, messages: list[dict[str, str]]) -> bytes:
    # The original writes json.MarshalIndent(messages, "", "  ") with mode 0644.
    raw = json.dumps(messages, indent=2, ensure_ascii=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    path.chmod(0o644)
    return raw


def all_messages(api_url: str) -> list[dict[str, Any]]:
    """The whole history, paged backwards with ``before`` as a client would."""
    collected: list[dict[str, Any]] = []
    before = ""
    while True:
        status, page = http_json("GET", f"{api_url}/messages?limit={PAGE}{before}")
        assert status == 200, page
        collected[:0] = page
        if len(page) < PAGE:
            return collected
        before = f"&before={page[0]['id']}"


def wire(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["AuthorUsername"], m["Text"]) for m in messages]


def test_ten_thousand_original_messages_are_imported_in_order_and_only_once(tmp_path: Path) -> None:
    db = tmp_path / "persist" / "db.json"
    messages = original_messages(10_000)
    raw = write_original_file(db, messages)
    env = {"API_DB_FILEPATH": str(db)}
    backup = db.with_name(db.name + BACKUP_SUFFIX)

    with running_role("api", tmp_path, env) as api:
        history = all_messages(api.url)
        assert wire(history) == wire(messages)
        assert [m["id"] for m in history] == list(range(1, 10_001))
        status, after = http_json("POST", f"{api.url}/messages", {"AuthorUsername": "new", "Text": "after"})
        assert status == 201 and after[-1]["id"] == 10_001, after[-1]
        assert api.stop() == 0
    log = api.log()
    assert f"imported 10000 of them, in order; the original file is kept as {backup}" in log
    assert backup.read_bytes() == raw
    assert db.read_bytes()[: len(SQLITE_HEADER)] == SQLITE_HEADER
    assert not db.with_name(db.name + BUILDING_SUFFIX).exists()

    # A second start finds SQLite there: nothing imported again, nothing lost.
    with running_role("api", tmp_path, env) as api:
        history = all_messages(api.url)
        assert len(history) == 10_001 and wire(history[:-1]) == wire(messages)
        assert api.stop() == 0
    assert "imported" not in api.log()
    assert sorted(p.name for p in db.parent.iterdir() if "original" in p.name) == [backup.name]


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the api exited before the moment to kill it"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.002)


# When to SIGKILL the first start: (what to wait for, then how long after it).
KILL_MOMENTS = [
    ("start", 0.2),  # still importing Python: the file untouched
    ("building", 0.0),  # the database beside it just created
    ("building", 0.05),
    ("building", 0.15),
    ("building", 0.3),
    ("imported", 0.0),  # just renamed into place, the store not yet open
]


@pytest.mark.parametrize(("moment", "after"), KILL_MOMENTS)
def test_a_kill_during_the_import_then_a_restart_leaves_every_message_exactly_once(
    tmp_path: Path, moment: str, after: float
) -> None:
    messages = original_messages(20_000)
    db = tmp_path / "db.json"
    raw = write_original_file(db, messages)
    building = db.with_name(db.name + BUILDING_SUFFIX)
    process = subprocess.Popen(
        [sys.executable, "-m", "synergychat", "--role", "api"],
        cwd=REPO,
        env=role_env({"API_DB_FILEPATH": str(db), "API_PORT": str(free_port())}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if moment == "building":
            wait_for(building.exists, process)
        elif moment == "imported":
            wait_for(lambda: db.read_bytes()[: len(SQLITE_HEADER)] == SQLITE_HEADER, process)
        time.sleep(after)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    if moment == "building" and after == 0.0:
        # The kill landed inside the import (else this test proves nothing).
        assert building.exists() and db.read_bytes() == raw

    with running_role("api", tmp_path, {"API_DB_FILEPATH": str(db)}) as api:
        history = all_messages(api.url)
    assert wire(history) == wire(messages)
    assert db.with_name(db.name + BACKUP_SUFFIX).read_bytes() == raw
    assert not building.exists()


def test_a_file_that_is_neither_sqlite_nor_the_originals_stops_with_one_line_and_is_untouched(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.json"
    db.write_text('[{"AuthorUsername": "a", "Text": "cut off by a cra')  # the original's non-atomic write
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", "api"],
        cwd=REPO,
        env=role_env({"API_DB_FILEPATH": str(db), "API_PORT": str(port)}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the exit status is checked below
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("synergychat:")]
    assert f"API_DB_FILEPATH={str(db)!r}" in line and "nothing was changed" in line, line
    assert db.read_text() == '[{"AuthorUsername": "a", "Text": "cut off by a cra'
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("db.json")) == ["db.json"]


def test_an_original_file_with_no_messages_yet(tmp_path: Path) -> None:
    # What the original writes when it creates the file: "[]".
    db = tmp_path / "db.json"
    db.write_text("[]")
    with running_role("api", tmp_path, {"API_DB_FILEPATH": str(db)}) as api:
        assert all_messages(api.url) == []
        status, posted = http_json("POST", f"{api.url}/messages", {"AuthorUsername": "a", "Text": "first"})
        assert status == 201 and wire(posted) == [("a", "first")]
    assert db.with_name(db.name + BACKUP_SUFFIX).read_text() == "[]"
