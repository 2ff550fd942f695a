"""bench/api_load.py, the one benchmark of the api, runs from start to end at its smallest.

No figure is judged here (timed tests fail on a busy machine, not on slow code): this
checks that the script a user runs starts what it measures, measures every row
without an error, prints each section and stops everything it started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO

ROWS = (
    "aiohttp hello world (uvloop)",
    "GET /healthz",
    "GET /messages (latest 100)",
    "GET /messages?before= (middle)",
    "POST /messages (durable)",
    "GET /messages, ACCESS_LOG=false",
    "POST /messages, EVENT_LOOP=asyncio",
    "POST /messages, PYTHONMALLOC=pymalloc",
)
ROLES = ("web", "api", "crawler", "all")


def in_process_group(group: int) -> list[str]:
    """The command lines of the processes in ``group``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:
                found.append(stat.with_name("cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def test_the_benchmark_measures_every_row_and_stops() -> None:
    command = [
        sys.executable,
        str(REPO / "bench" / "api_load.py"),
        "--seconds",
        "1",
        "--runs",
        "1",
        "--sizes",
        "1000",
        "--streams",
        "20",
        "--fanout-messages",
        "2",
    ]
    # A process group of its own: whatever it started and left running is found below.
    bench = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True
    )
    try:
        output, errors = bench.communicate(timeout=300)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
    left_running = in_process_group(bench.pid)
    assert left_running == [], f"still running after the benchmark: {left_running}"
    assert bench.returncode == 0, output + errors
    assert re.search(r"^load: (wrk|its own aiohttp client)", output, re.MULTILINE), output
    for what in ROWS:
        (line,) = [line for line in output.splitlines() if what in line]
        figures = line.split(what, 1)[1].split()
        assert len(figures) == 8, line  # req/s, p50, p99, ÷hello, ÷h CPU, CPU µs, RSS, errors
        requests_per_second, cpu_us, errors = float(figures[0]), float(figures[5]), figures[7]
        assert requests_per_second > 0 and cpu_us > 0 and errors == "0", line  # nan > 0 is False
    fan_out = [line for line in output.splitlines() if re.match(r"\s+20 streams", line)]
    assert len(fan_out) == 2 and all("(missed 0)" in line for line in fan_out), output
    for role in ROLES:
        assert re.search(
            rf"^\s+{role}: cold start to ready\s+\d+ ms \([\d.]+ × hello\)", output, re.MULTILINE
        )
