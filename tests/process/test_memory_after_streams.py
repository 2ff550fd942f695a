"""The memory a wave of streams took goes back to the system once they close, with the
memory allocator the image runs with (the Dockerfile's PYTHONMALLOC and GLIBC_TUNABLES,
which scripts/run.sh sets too)."""

from __future__ import annotations

import re
import resource
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

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
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_streams(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^synergychat_stream_clients(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)
    assert match, text
    return int(float(match.group(1)))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


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
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, STREAMS + 512)), hard))
    env = {"API_DB_FILEPATH": str(tmp_path / "db.sqlite3")}
    try:
        with running_role("api", tmp_path, env={**env, **image_allocator()}) as api:
            # Every path a request takes once (the first post loads the confusables table).
            request = urllib.request.Request(
                f"{api.url}/messages",
                data=b'{"AuthorUsername": "ada", "Text": "before the wave"}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 201
            time.sleep(1)
            idle = rss_mb(api.process.pid)
            sockets = []
            try:
                for _ in range(STREAMS):
                    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
                    sock.sendall(b"GET /messages/stream HTTP/1.1\r\nHost: api\r\n\r\n")
                    sockets.append(sock)
                wait_for(lambda: open_streams(api.url) == STREAMS, 30, f"{STREAMS} streams open")
                with_streams = rss_mb(api.process.pid)
            finally:
                for sock in sockets:
                    sock.close()
            wait_for(lambda: open_streams(api.url) == 0, 15, "every stream let go")
            grown = with_streams - idle
            assert grown > 10, f"{STREAMS} streams took only {grown:.1f} MB: nothing to measure"
            # Given back a second or two after the wave (live.MessageHub.leave), not at once.
            wait_for(
                lambda: rss_mb(api.process.pid) - idle < 0.3 * grown,
                15,
                f"RSS back near idle ({idle:.0f} MB idle, {with_streams:.0f} MB with streams,"
                f" {rss_mb(api.process.pid):.0f} MB now)",
            )
            assert api.stop() == 0
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
