"""``python -m synergychat copy-to-postgres`` as an operator runs it, between real api processes.

A chat written by an api on SQLite, the api stopped, the command run with the api's own
variables, then an api on PostgreSQL serving the same pages and resuming a browser's stream;
Ctrl-C in the middle of a big copy; and the one-line errors with their exit statuses.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.process.test_crawler_processes import http_json
from tests.support.postgres import PASSWORD, PostgresServer
from tests.support.processes import REPO, role_env, running_role

pytestmark = pytest.mark.process

TEXTS = ["hello", 'a "quoted" word', "ünïcödé ✓ 日本語 🎉", "two\nlines", "y" * 3990]


def copy_command(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synergychat", "copy-to-postgres", *args],
        cwd=REPO,
        env=role_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,  # the status is what the tests check
    )


def stream_events(
    api_url: str, last_event_id: int, count: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The stream's hello and the next ``count`` message events, resumed as EventSource does."""
    request = urllib.request.Request(
        api_url + "/messages/stream", headers={"Last-Event-ID": str(last_event_id)}
    )
    hello: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    with urllib.request.urlopen(request, timeout=10) as response:
        while not hello or len(events) < count:
            line = response.readline().decode().rstrip("\r\n")
            if line == "":
                if current.get("event") == "hello":
                    hello = json.loads(current["data"])
                elif current.get("event") == "message":
                    events.append({"sse_id": current.get("id"), **json.loads(current["data"])})
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = value
    return hello, events


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_command_moves_a_chat_from_an_api_on_sqlite_to_one_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite_file = tmp_path / "data" / "messages.db"
    with running_role("api", tmp_path, {"API_DB_FILEPATH": str(sqlite_file)}) as api:
        for number in range(30):
            status, _ = http_json(
                "POST",
                api.url + "/messages",
                {"AuthorUsername": f"user{number % 4}", "Text": f"{number} {TEXTS[number % len(TEXTS)]}"},
            )
            assert status == 201
        _, served = http_json("GET", api.url + "/messages?limit=1000")
        history = stream_events(api.url, 30, 0)[0]["history"]
    before = file_hash(sqlite_file)

    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_url}
    result = copy_command(env)
    assert result.returncode == 0, result.stderr
    masked = postgres_url.replace(PASSWORD, "***")
    [line] = result.stdout.splitlines()
    assert line.startswith(f"copied 30 messages (ids 1–30) from {sqlite_file} to {masked} in "), line
    assert result.stderr == "synergychat: messages schema migrated from version 0 to 3\n"

    with running_role("api", tmp_path, {"API_DATABASE_URL": postgres_url}) as api:
        assert http_json("GET", api.url + "/messages?limit=1000") == (200, served)
        # A browser that held ids up to 20 reconnects to the new api and gets the rest.
        hello, events = stream_events(api.url, 20, 10)
        assert hello == {"history": history, "last_id": 30}
        assert [event["sse_id"] for event in events] == [str(n) for n in range(21, 31)]
        assert [{k: v for k, v in event.items() if k != "sse_id"} for event in events] == served[20:]
        # Run again while that api serves: nothing left to copy, nothing touched.
        again = copy_command(env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"nothing to copy: {masked} already holds the 30 messages of")
    assert file_hash(sqlite_file) == before


def test_ctrl_c_in_the_middle_leaves_nothing_and_the_next_run_copies_it_all(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    # A history made by an api, then grown to 300,000 messages (a few seconds to copy).
    sqlite_file = tmp_path / "messages.db"
    with running_role("api", tmp_path, {"API_DB_FILEPATH": str(sqlite_file)}) as api:
        assert http_json("POST", api.url + "/messages", {"AuthorUsername": "ann", "Text": "first"})[0] == 201
    conn = sqlite3.connect(sqlite_file)
    with conn:
        conn.executemany(
            "INSERT INTO messages (author_username, text, created_at) VALUES (?, ?, ?)",
            (
                (f"user{n % 9}", f"message {n} " + "z" * (n % 200), "2024-05-01T12:00:00.000Z")
                for n in range(299_999)
            ),
        )
    conn.close()
    database = postgres_server.create_database()
    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": postgres_server.url(database)}
    process = subprocess.Popen(
        [sys.executable, "-m", "synergychat", "copy-to-postgres"],
        cwd=REPO,
        env=role_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while "messages copied: " not in (line := process.stderr.readline()):
        assert line and time.monotonic() < deadline, "no progress line"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert err == "synergychat: interrupted: nothing was copied (the transactions were rolled back)\n"
    assert postgres_server.psql(database, "SELECT count(*) FROM messages") == ["0"]

    result = copy_command(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("copied 300,000 messages (ids 1–300000) from ")
    assert postgres_server.psql(database, "SELECT count(*), max(id) FROM messages") == ["300000|300000"]


@pytest.mark.parametrize(
    ("case", "status", "expected"),
    [
        ("wrong-password", 1, "synergychat: API_DATABASE_URL=postgresql://postgres:***@127.0.0.1:"),
        ("missing-file", 1, "synergychat: API_DB_FILEPATH='{file}': no such file"),
        ("nothing-set", 2, "synergychat: nothing to copy: set API_DB_FILEPATH and API_DATABASE_URL"),
        ("not-postgresql", 2, "synergychat: --to='sqlite:///x.db': must be a postgresql:// URL"),
    ],
)
def test_each_failure_is_one_line_and_an_exit_status(
    tmp_path: Path, postgres_server: PostgresServer, case: str, status: int, expected: str
) -> None:
    sqlite_file = tmp_path / "messages.db"
    if case == "wrong-password":
        with running_role("api", tmp_path, {"API_DB_FILEPATH": str(sqlite_file)}):
            pass
    url = postgres_server.url("postgres", password="wrong-secret-pw")
    env = {"API_DB_FILEPATH": str(sqlite_file), "API_DATABASE_URL": url}
    args: tuple[str, ...] = ()
    if case == "nothing-set":
        env = {}
    elif case == "not-postgresql":
        args = ("--to", "sqlite:///x.db")
    result = copy_command(env, *args)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(expected.format(file=sqlite_file)), line
    assert "wrong-secret-pw" not in line and PASSWORD not in line and "Traceback" not in line


def test_help_names_the_arguments(tmp_path: Path) -> None:
    result = copy_command({}, "--help")
    assert result.returncode == 0
    for argument in ("--from FILE", "--to URL", "--crawler-from FOLDER", "--crawler-to URL", "--only"):
        assert argument in result.stdout
