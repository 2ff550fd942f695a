"""Several api replicas on one PostgreSQL: durable POST throughput and cross-replica delivery.

Starts a PostgreSQL server (Debian's package, as the tests start it:
tests/support/postgres.py), then for 1, 2 and 3 ``--role api`` processes on a fresh
database of it: durable ``POST /messages`` throughput with the load spread evenly
over the replicas (one wrk per replica, or the small aiohttp client without wrk;
the rates are summed, the latencies are the median replica's), then the delivery
delay across replicas: a stream open on the last replica, messages posted one by one
to the first, from sending the POST to the event's arrival (p50/p99). Every figure
is the median of ``--runs`` runs. Everything it starts is stopped at the end.

    .venv/bin/python bench/scale.py [--replicas 1,2,3] [--seconds 5] [--runs 3]
                                    [--connections 32] [--messages 200]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]
# bench/ is not a package: its modules are imported from its folder.
from api_load import (
    POST_LUA,
    Load,
    Result,
    api_command,
    free_port,
    parse_wrk,
    percentile,
    pinned,
    post_json,
    server,
)

from tests.support.postgres import PostgresServer, find_binaries

POOL_SIZE = 10


def api_env(port: int, url: str) -> dict[str, str]:
    return {
        "ROLE": "api",
        "API_PORT": str(port),
        "API_DATABASE_URL": url,
        "API_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    """One server for the whole run (fsync on, as in production), removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="synergychat-bench-pg-"))
    database = PostgresServer(find_binaries(), folder)
    try:
        database.init()
        database.start()
        yield database
    finally:
        try:
            database.stop("fast")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def replicas(count: int, url: str, core: int | None) -> Iterator[list[str]]:
    """``count`` api processes on ``url``; their base URLs."""
    with ExitStack() as stack:
        bases = []
        for _ in range(count):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            stack.enter_context(server(api_command(), base + "/readyz", api_env(port, url), core))
            bases.append(base)
        yield bases


def spread_post(load: Load, bases: Sequence[str]) -> Result:
    """One POST load per replica at once, the connections split evenly: the rates summed."""
    connections = max(1, load.connections // len(bases))
    if load.wrk:
        commands = [
            [load.wrk, "-t1", f"-c{connections}", f"-d{load.seconds:g}s", "--latency", "-s", str(load.lua)]
            + [base + "/messages"]
            for base in bases
        ]
    else:
        client = str(BENCH / "load_client.py")
        commands = [
            [sys.executable, client, base + "/messages", str(load.seconds), str(connections), "--post"]
            for base in bases
        ]
    processes = [
        subprocess.Popen(pinned(load.core, command), stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    outputs = [process.communicate()[0] for process in processes]
    if load.wrk:
        results = [parse_wrk(output) for output in outputs]
    else:
        results = [Result(*json.loads(output)) for output in outputs]
    return Result(
        sum(r.rate for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def delivery(bases: Sequence[str], core: int | None, messages: int) -> tuple[float, float, int]:
    """Post to the first replica, stream on the last: (p50 ms, p99 ms, messages never delivered)."""
    clients = subprocess.Popen(
        pinned(core, [sys.executable, str(BENCH / "stream_clients.py"), bases[-1] + "/messages/stream", "1"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert clients.stdin is not None and clients.stdout is not None
    try:
        assert clients.stdout.readline().strip() == "ready"
        delays = []
        for number in range(messages):
            sent = time.time()
            message_id, _ = post_json(bases[0] + "/messages", f"across {number}")
            clients.stdin.write(f"wait {message_id}\n")
            clients.stdin.flush()
            (arrival,) = (float(value) for value in clients.stdout.readline().split())
            delays.append((arrival - sent) * 1000)
            time.sleep(0.02)
        clients.stdin.write("quit\n")
        clients.stdin.flush()
        clients.wait(30)
    finally:
        if clients.poll() is None:
            clients.kill()
            clients.wait()
    arrived = [delay for delay in delays if not math.isnan(delay)]
    return percentile(arrived, 0.5), percentile(arrived, 0.99), len(delays) - len(arrived)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", default="1,2,3", help="api process counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--connections", type=int, default=32, help="connections in all, split over replicas")
    parser.add_argument("--messages", type=int, default=200, help="messages timed across replicas per run")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    has_taskset = shutil.which("taskset") is not None
    server_core, load_core = (cores[0], cores[1]) if len(cores) >= 2 and has_taskset else (None, None)
    with tempfile.TemporaryDirectory() as directory, postgres() as database:
        lua = Path(directory) / "post.lua"
        lua.write_text(POST_LUA)
        load = Load(load_core, args.seconds, args.connections, 1, lua)
        where = (
            f"api processes on core {server_core}, load and streams on core {load_core}, PostgreSQL unpinned"
            if server_core is not None
            else "nothing pinned"
        )
        print(
            f"PostgreSQL {database.binaries.parent.name} (fsync on); load: {load.tool}, {args.connections} "
            f"connections split over the replicas, {args.seconds:g} s per run; median of {args.runs} runs; {where}"
        )
        print(
            f"{'replicas':>8} {'POST/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
            f"   {'delivery p50 ms':>15} {'p99 ms':>8} {'lost':>5}   (stream on the last, post to the first)"
        )
        for count in (int(value) for value in args.replicas.split(",") if value):
            throughput, deliveries = [], []
            for _ in range(args.runs):
                url = database.url(database.create_database())
                with replicas(count, url, server_core) as bases:
                    throughput.append(spread_post(load, bases))
                    deliveries.append(delivery(bases, load_core, args.messages))
            print(
                f"{count:>8} {statistics.median(r.rate for r in throughput):>9.0f}"
                f" {statistics.median(r.p50_ms for r in throughput):>8.2f}"
                f" {statistics.median(r.p99_ms for r in throughput):>8.2f}"
                f" {sum(r.errors for r in throughput):>6}"
                f"   {statistics.median(d[0] for d in deliveries):>15.1f}"
                f" {statistics.median(d[1] for d in deliveries):>8.1f} {sum(d[2] for d in deliveries):>5}",
                flush=True,
            )
    print(
        f"\nWhat limits these numbers here: {len(cores)} core(s). "
        + (
            "Every api process shares one core (the other drives the load), and PostgreSQL takes its time "
            "from both, so more replicas add no CPU: the figures show what spreading the same work over "
            "processes costs or saves (each commit is an fsync, shared by the requests grouped into it), "
            "not how far the api scales. With a core per replica and PostgreSQL on its own machine, "
            "throughput grows with replicas until PostgreSQL's commit rate (its disk's fsync rate x "
            "the batch size) is the limit."
            if server_core is not None
            else "nothing could be pinned, so the load generator competes with the servers for the same cores."
        )
    )


if __name__ == "__main__":
    main()
