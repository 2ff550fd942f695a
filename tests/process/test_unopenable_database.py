"""A database file SQLite cannot open stops a role with one line, and nothing after it.

aiosqlite's worker thread used to outlive a failed open and report to the closed
event loop: a second "RuntimeError: Event loop is closed" traceback after the
real error, which sent users looking in the wrong place.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO, free_port, role_env

pytestmark = pytest.mark.process


@pytest.mark.parametrize(
    ("role", "variable", "file"),
    [
        ("crawler", "CRAWLER_DB_PATH", "crawler.sqlite3"),
        ("api", "API_DB_FILEPATH", "messages.db"),
    ],
)
def test_a_database_path_that_is_a_folder_stops_with_one_line(
    tmp_path: Path, role: str, variable: str, file: str
) -> None:
    # The folder is writable; the database "file" in it is a folder, which SQLite can't open.
    (tmp_path / file).mkdir()
    value = str(tmp_path) if variable == "CRAWLER_DB_PATH" else str(tmp_path / file)
    port_variable = {"api": "API_PORT", "crawler": "CRAWLER_PORT"}[role]
    env = {variable: value, port_variable: str(free_port()), "CRAWLER_SOURCE_URL": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", role],
        cwd=REPO,
        env=role_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the exit status is checked below
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("synergychat:")]
    assert line.startswith(f"synergychat: {variable}=") and "unable to open database file" in line, line
