"""The memory a wave of streams took goes back to the system once they close, with the
memory allocator the image runs with (the Dockerfile's PYTHONMALLOC and GLIBC_TUNABLES,
which scripts/run.sh sets too)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.process.test_api_limits import stream_clients
from tests.process.test_course_roles import rss_bytes
from tests.process.test_observability import Scrape, eventually, request
from tests.support.processes import REPO, running_role

pytestmark = pytest.mark.process

ALLOCATOR_VARIABLES = ("PYTHONMALLOC", "GLIBC_TUNABLES")
STREAMS = 2000


def allocator_settings(path: Path, pattern: str) -> dict[str, str]:
    """Each allocator variable's value in ``path``, found by ``pattern`` (``NAME`` replaced by the name)."""
    text = path.read_text()
    found = {}
    for name in ALLOCATOR_VARIABLES:
        match = re.search(pattern.replace("NAME", name), text, re.MULTILINE)
        assert match, f"{path.name} sets no {name}"
        found[name] = match.group(1)
    return found


def image_allocator() -> dict[str, str]:
    return allocator_settings(REPO / "Dockerfile", r"^\s*(?:ENV\s+)?NAME=(\S+)")


def run_sh_allocator() -> dict[str, str]:
    # export NAME="${NAME-default}": the default, unless the caller set one
    return allocator_settings(REPO / "scripts" / "run.sh", r'^export NAME="\$\{NAME-([^}]+)\}"$')


def rss_mb(pid: int) -> float:
    return rss_bytes(pid) / 2**20


def test_the_dev_run_uses_the_images_allocator() -> None:
    assert (
        run_sh_allocator()
        == image_allocator()
        == {
            "PYTHONMALLOC": "malloc",
            "GLIBC_TUNABLES": "glibc.malloc.tcache_count=64",
        }
    )


def test_what_thousands_of_streams_took_is_given_back_after_they_close(tmp_path: Path) -> None:
    env = {"API_DB_FILEPATH": str(tmp_path / "db.sqlite3"), **image_allocator()}
    with running_role("api", tmp_path, env=env) as api:
        # Every path a request takes once (the first post loads the confusables table).
        status, _, _ = request(
            "POST", api.url + "/messages", {"AuthorUsername": "ada", "Text": "before the wave"}
        )
        assert status == 201
        time.sleep(1)
        idle = rss_mb(api.process.pid)

        def streams() -> float:
            return Scrape(api.url).value("synergychat_stream_clients")

        with stream_clients(api.port, STREAMS):
            eventually(lambda: streams() == STREAMS, timeout=30)
            with_streams = rss_mb(api.process.pid)
        eventually(lambda: streams() == 0, timeout=15)
        grown = with_streams - idle
        assert grown > 10, f"{STREAMS} streams took only {grown:.1f} MB: nothing to measure"
        # Given back a second or two after the wave (live.MessageHub.leave), not at once.
        deadline = time.monotonic() + 15
        while (now := rss_mb(api.process.pid)) - idle >= 0.3 * grown:
            assert time.monotonic() < deadline, (
                f"RSS not back near idle within 15 s: {idle:.0f} MB idle,"
                f" {with_streams:.0f} MB with streams, {now:.0f} MB now"
            )
            time.sleep(0.2)
        assert api.stop() == 0
