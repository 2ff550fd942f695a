"""Every role runs on uvloop unless EVENT_LOOP=asyncio asks for the standard library's loop;
the start-up line says which, and the chat works the same on either."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import REPO, role_env, running_role


def post(url: str, text: str) -> dict[str, object]:
    body = json.dumps({"AuthorUsername": "loop", "Text": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        page = json.loads(response.read())
    assert isinstance(page, list)
    last = page[-1]
    assert isinstance(last, dict)
    return last


@pytest.mark.parametrize(
    ("setting", "expected"), [(None, "uvloop"), ("asyncio", "asyncio"), (" UVLOOP ", "uvloop")]
)
def test_the_role_runs_on_the_loop_asked_for_and_says_so(
    tmp_path: Path, setting: str | None, expected: str
) -> None:
    env = {"API_DB_FILEPATH": str(tmp_path / "db.sqlite3")}
    if setting is not None:
        env["EVENT_LOOP"] = setting
    with running_role("api", tmp_path, env=env) as api:
        newest = post(f"{api.url}/messages", f"on {expected}")
        with urllib.request.urlopen(f"{api.url}/messages", timeout=5) as response:
            assert json.loads(response.read())[-1] == newest
        assert api.stop() == 0
    assert f"event loop: {expected})" in api.log(), api.log()


def test_an_unknown_loop_is_refused_at_start_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", "api"],
        cwd=REPO,
        env=role_env({"EVENT_LOOP": "trio", "API_DB_FILEPATH": str(tmp_path / "db.sqlite3")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "synergychat: invalid setting EVENT_LOOP='trio'" in result.stderr, result.stderr
