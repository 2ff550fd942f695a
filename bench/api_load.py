"""The api under load, against aiohttp's own ceiling, measured in one run.

Starts aiohttp's hello world (the ceiling; on asyncio's loop and on uvloop) and a real ``--role api`` on a
database seeded straight to each size (1k, 100k, 1M messages by default), drives
each with wrk (or, without wrk, a small aiohttp client: it says which), and
prints req/s, p50/p99 latency and RSS, with the ratios to the ceiling. Server and
load generator are pinned to different cores when there are two or more. Then the
live fan-out: 1,000 and 5,000 open streams, a message posted every 100 ms, the
delay until every stream has it (p50/p99), the POST's own latency meanwhile, and
RSS before, with and after the streams. Last, cold start to ready and idle RSS
of each role beside the hello world's. Our roles run with the image's memory allocator
(the Dockerfile's PYTHONMALLOC and GLIBC_TUNABLES); rows marked PYTHONMALLOC=pymalloc
run with Python's own. Every figure is the median of ``--runs`` runs; the
CPU µs column (the server's CPU time per request) is the steadier figure on a shared machine.

    .venv/bin/python bench/api_load.py [--seconds 5] [--runs 3] [--sizes 1000,100000,1000000]
                                       [--streams 1000,5000] [--original-api PATH]

``--original-api`` takes a binary of the original Go api; it is seeded with the
same messages as a JSON file (its own format) and measured beside ours.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from synergychat.storage.messages import MESSAGE_MIGRATIONS

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"AuthorUsername": "bench", "Text": "a benchmark message, about as long as a chat line"}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    # The server's CPU time (every thread, user and system) per request answered: steadier
    # than req/s on a machine whose cores are shared (a VM), since time stolen isn't counted.
    cpu_us: float = math.nan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int | None, command: Sequence[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if core is not None else list(command)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid``, all threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.005)
    raise TimeoutError(url)


@contextmanager
def server(
    command: Sequence[str], ready_url: str, env: dict[str, str], core: int | None
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        pinned(core, command),
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(ready_url, process)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api_command() -> list[str]:
    return [sys.executable, "-m", "synergychat", "--role", "api"]


def image_allocator() -> dict[str, str]:
    """The memory allocator settings the image runs with (the Dockerfile's ENV): every role
    here is measured as it runs in a container."""
    dockerfile = (REPO / "Dockerfile").read_text()
    return {
        name: match.group(1)
        for name in ("PYTHONMALLOC", "GLIBC_TUNABLES")
        if (match := re.search(rf"^\s*(?:ENV\s+)?{name}=(\S+)", dockerfile, re.MULTILINE))
    }


IMAGE_ALLOCATOR = image_allocator()
# Python's own allocator, in place of the image's: what it costs and what it keeps.
PYMALLOC = "PYTHONMALLOC=pymalloc"


def api_env(port: int, db: Path) -> dict[str, str]:
    return {
        "ROLE": "api",
        "API_PORT": str(port),
        "API_DB_FILEPATH": str(db),
        "PYTHONUNBUFFERED": "1",
        **IMAGE_ALLOCATOR,
    }


def seed_sqlite(db: Path, count: int) -> None:
    """Our schema, then ``count`` messages inserted straight into it."""
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        for number, step in enumerate(MESSAGE_MIGRATIONS, start=1):
            conn.executescript(f"BEGIN;\n{step}\nPRAGMA user_version = {number};\nCOMMIT;")
        conn.executemany(
            "INSERT INTO messages (author_username, text, created_at) VALUES (?, ?, ?)",
            (
                (f"user{n % 100}", f"seeded message {n}: " + "lorem ipsum " * 5, "2026-01-01T00:00:00.000Z")
                for n in range(count)
            ),
        )


def seed_original_json(path: Path, count: int) -> None:
    messages = [
        {"AuthorUsername": f"user{n % 100}", "Text": f"seeded message {n}: " + "lorem ipsum " * 5}
        for n in range(count)
    ]
    path.write_text(json.dumps(messages))


def parse_wrk(output: str) -> Result:
    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip()).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(group) for group in match.groups())
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return Result(rate, p50, p99, errors, requests)


class Load:
    """wrk when installed, else our own client; pinned to the load core."""

    def __init__(self, core: int | None, seconds: float, connections: int, runs: int, lua: Path) -> None:
        self.core, self.seconds, self.connections, self.runs, self.lua = core, seconds, connections, runs, lua
        self.wrk = shutil.which("wrk")

    @property
    def tool(self) -> str:
        return "wrk" if self.wrk else "its own aiohttp client (wrk is not installed)"

    def once(self, url: str, post: bool, pid: int) -> Result:
        cpu_before = cpu_seconds(pid)
        result = self._drive(url, post)
        if result.requests:
            result.cpu_us = (cpu_seconds(pid) - cpu_before) / result.requests * 1e6
        return result

    def _drive(self, url: str, post: bool) -> Result:
        if self.wrk:
            command = [self.wrk, "-t1", f"-c{self.connections}", f"-d{self.seconds:g}s", "--latency", url]
            if post:
                command[1:1] = ["-s", str(self.lua)]
            output = subprocess.run(
                pinned(self.core, command), capture_output=True, text=True, check=True
            ).stdout
            return parse_wrk(output)
        command = [
            sys.executable,
            str(REPO / "bench" / "load_client.py"),
            url,
            str(self.seconds),
            str(self.connections),
        ]
        if post:
            command.append("--post")
        output = subprocess.run(pinned(self.core, command), capture_output=True, text=True, check=True).stdout
        return Result(*json.loads(output))

    def paired(self, url: str, pid: int, baseline: Baseline, post: bool = False) -> Measured:
        """``runs`` runs of ours, each right after one of the hello world's."""
        pairs = [
            (self.once(baseline.url, False, baseline.pid), self.once(url, post, pid))
            for _ in range(self.runs)
        ]
        return Measured(
            self._median([ours for _, ours in pairs]),
            statistics.median(ours.rate / hello.rate for hello, ours in pairs),
            statistics.median(hello.cpu_us / ours.cpu_us for hello, ours in pairs),
        )

    def median(self, url: str, pid: int, post: bool = False) -> Result:
        return self._median([self.once(url, post, pid) for _ in range(self.runs)])

    @staticmethod
    def _median(results: list[Result]) -> Result:
        return Result(
            statistics.median(r.rate for r in results),
            statistics.median(r.p50_ms for r in results),
            statistics.median(r.p99_ms for r in results),
            sum(r.errors for r in results),
            sum(r.requests for r in results),
            statistics.median(r.cpu_us for r in results),
        )


@dataclass
class Measured:
    """A figure and its ratios to the hello world measured beside it: each run of ours is
    paired with a run of the hello world just before it, and the ratios are the medians of
    the pairs' ratios (the machine's speed drifts over minutes; a pair shares its moment)."""

    result: Result
    rate_ratio: float  # our req/s ÷ the hello world's
    cpu_ratio: float  # the hello world's CPU µs per request ÷ ours


@dataclass
class Baseline:
    """The hello world (asyncio's loop), kept running through the whole benchmark."""

    url: str
    pid: int


def row(stored: str, what: str, measured: Measured, rss: float) -> str:
    result = measured.result
    return (
        f"{stored:>9} {what:<38} {result.rate:>9.0f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f}"
        f" {measured.rate_ratio:>7.2f} {measured.cpu_ratio:>7.2f}"
        f" {result.cpu_us:>7.0f} {rss:>7.0f} {result.errors:>6}"
    )


def post_json(url: str, text: str) -> tuple[int, float]:
    body = json.dumps({"AuthorUsername": "fanout", "Text": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        page = json.loads(response.read())
    return next(m["id"] for m in reversed(page) if m["Text"] == text), (time.monotonic() - started) * 1000


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def fan_out(
    api_core: int | None, load_core: int | None, tmp: Path, streams: int, messages: int, setting: str = ""
) -> str:
    port = free_port()
    db = tmp / "fanout.sqlite3"
    seed_sqlite(db, 1000)
    url = f"http://127.0.0.1:{port}"
    env = api_env(port, db)
    if setting:
        variable, _, value = setting.partition("=")
        env[variable] = value
    with server(api_command(), url + "/readyz", env, api_core) as api:
        idle = rss_mb(api.pid)
        clients = subprocess.Popen(
            pinned(
                load_core,
                [
                    sys.executable,
                    str(REPO / "bench" / "stream_clients.py"),
                    url + "/messages/stream",
                    str(streams),
                ],
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert clients.stdin is not None and clients.stdout is not None
        assert clients.stdout.readline().strip() == "ready"
        time.sleep(1)
        with_streams = rss_mb(api.pid)
        delays: list[float] = []
        post_ms: list[float] = []
        for number in range(messages):
            sent = time.time()
            message_id, took = post_json(url + "/messages", f"fan-out {number}")
            post_ms.append(took)
            clients.stdin.write(f"wait {message_id}\n")
            clients.stdin.flush()
            arrivals = [float(value) for value in clients.stdout.readline().split()]
            delays += [(arrival - sent) * 1000 for arrival in arrivals]
            time.sleep(0.1)
        clients.stdin.write("quit\n")
        clients.stdin.flush()
        clients.wait(30)
        time.sleep(4)  # the api lets go of closed streams within a second or two
        after = rss_mb(api.pid)
    missing = sum(1 for delay in delays if math.isnan(delay))
    delays = [delay for delay in delays if not math.isnan(delay)]
    return (
        f"{streams:>6} streams{f' ({setting})' if setting else ''}: delivery p50 {percentile(delays, 0.5):6.1f} ms  p99 {percentile(delays, 0.99):6.1f} ms"
        f"  (missed {missing})  POST p50 {percentile(post_ms, 0.5):5.1f} ms  p99 {percentile(post_ms, 0.99):5.1f} ms"
        f"  RSS idle {idle:.0f} MB, with streams {with_streams:.0f} MB, after {after:.0f} MB"
    )


def time_to_ready(command: list[str], env: dict[str, str], url: str, core: int | None) -> tuple[float, float]:
    """Spawn ``command``: seconds until ``url`` answers 200, and its RSS a second later."""
    spawned = time.monotonic()
    with server(command, url, env, core) as process:
        seconds = time.monotonic() - spawned
        time.sleep(1)
        return seconds, rss_mb(process.pid)


def cold_starts(core: int | None, tmp: Path, runs: int) -> list[str]:
    # The floor on this machine, in the same run: aiohttp's hello world, spawn to its first 200.
    hello = []
    for _ in range(runs):
        port = free_port()
        command = [sys.executable, str(REPO / "bench" / "hello_app.py"), str(port)]
        hello.append(time_to_ready(command, {}, f"http://127.0.0.1:{port}/", core))
    hello_ms = statistics.median(seconds for seconds, _ in hello) * 1000
    hello_rss = statistics.median(rss for _, rss in hello)
    lines = [
        f"{'hello':>8}: cold start to ready {hello_ms:5.0f} ms, idle RSS {hello_rss:4.0f} MB (aiohttp's hello world: the floor)"
    ]
    dead_catalogue = f"http://127.0.0.1:{free_port()}"
    for role in ("web", "api", "crawler", "all"):
        started = []
        for run in range(runs):
            port = free_port()
            env = {
                "ROLE": role,
                "WEB_PORT": str(port),
                "API_PORT": str(port),
                "CRAWLER_PORT": str(port),
                "API_DB_FILEPATH": str(tmp / f"cold-{role}-{run}.sqlite3"),
                "CRAWLER_DB_PATH": str(tmp / f"cold-{role}-{run}"),
                "CRAWLER_SOURCE_URL": dead_catalogue,
                **IMAGE_ALLOCATOR,
            }
            command = [sys.executable, "-m", "synergychat"]
            started.append(time_to_ready(command, env, f"http://127.0.0.1:{port}/readyz", core))
        ms = statistics.median(seconds for seconds, _ in started) * 1000
        lines.append(
            f"{role:>8}: cold start to ready {ms:5.0f} ms ({ms / hello_ms:.2f} × hello),"
            f" idle RSS {statistics.median(rss for _, rss in started):4.0f} MB"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument(
        "--connections", type=int, default=16, help="concurrent connections of the load generator"
    )
    parser.add_argument("--sizes", default="1000,100000,1000000", help="stored messages, comma-separated")
    parser.add_argument(
        "--streams", default="1000,5000", help="open streams for the fan-out, comma-separated"
    )
    parser.add_argument("--fanout-messages", type=int, default=20)
    parser.add_argument(
        "--original-api", type=Path, help="a binary of the original Go api, measured beside ours"
    )
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    has_taskset = shutil.which("taskset") is not None
    server_core, load_core = (cores[0], cores[1]) if len(cores) >= 2 and has_taskset else (None, None)
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        lua = tmp / "post.lua"
        lua.write_text(POST_LUA)
        load = Load(load_core, args.seconds, args.connections, args.runs, lua)
        where = (
            f"server on core {server_core}, load on core {load_core}"
            if server_core is not None
            else "not pinned"
        )
        print(
            f"load: {load.tool}, {args.connections} connections, {args.seconds:g} s per run, median of {args.runs}; {where}"
        )
        print(
            f"{'stored':>9} {'what':<38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'÷hello':>7} {'÷h CPU':>7}"
            f" {'CPU µs':>7} {'RSS MB':>7} {'errors':>6}"
        )
        print(
            "÷hello: req/s ÷ the hello world's (asyncio) in the run just before; ÷h CPU: its CPU µs"
            " per request ÷ ours. Medians of the pairs."
        )
        # The hello world runs beside everything measured against it, then stops.
        with contextlib.ExitStack() as stack:
            hello_port = free_port()
            hello_command = [sys.executable, str(REPO / "bench" / "hello_app.py"), str(hello_port), "asyncio"]
            hello_url = f"http://127.0.0.1:{hello_port}/"
            hello = stack.enter_context(server(hello_command, hello_url, {}, server_core))
            baseline = Baseline(hello_url, hello.pid)
            port = free_port()
            command = [sys.executable, str(REPO / "bench" / "hello_app.py"), str(port), "uvloop"]
            with server(command, f"http://127.0.0.1:{port}/", {}, server_core) as uv_hello:
                measured = load.paired(f"http://127.0.0.1:{port}/", uv_hello.pid, baseline)
                print(row("-", "aiohttp hello world (uvloop)", measured, rss_mb(uv_hello.pid)), flush=True)

            sizes = [int(value) for value in args.sizes.split(",") if value]
            first_size = sizes[0] if sizes else None
            for size in sizes:
                db = tmp / "messages.sqlite3"
                seed_sqlite(db, size)
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                label = f"{size:,}"
                with server(api_command(), url + "/readyz", api_env(port, db), server_core) as api:
                    for what, path, post in (
                        ("GET /healthz", "/healthz", False),
                        ("GET /messages (latest 100)", "/messages", False),
                        ("GET /messages?before= (middle)", f"/messages?before={max(size // 2, 1)}", False),
                        ("POST /messages (durable)", "/messages", True),
                    ):
                        measured = load.paired(url + path, api.pid, baseline, post)
                        print(row(label, what, measured, rss_mb(api.pid)), flush=True)
                if size == first_size:
                    # The access log's share (ACCESS_LOG=false), uvloop's (EVENT_LOOP=asyncio), and
                    # the image's allocator against Python's own (PYTHONMALLOC=pymalloc).
                    for setting in ("ACCESS_LOG=false", "EVENT_LOOP=asyncio", PYMALLOC):
                        variable, _, value = setting.partition("=")
                        env = {**api_env(port, db), variable: value}
                        with server(api_command(), url + "/readyz", env, server_core) as api:
                            for what, post in (("GET /messages", False), ("POST /messages", True)):
                                measured = load.paired(url + "/messages", api.pid, baseline, post)
                                print(
                                    row(label, f"{what}, {setting}", measured, rss_mb(api.pid)),
                                    flush=True,
                                )
                if args.original_api:
                    seed_original_json(tmp / "original.json", size)
                    env = {"API_PORT": str(port), "API_DB_FILEPATH": str(tmp / "original.json")}
                    with server([str(args.original_api)], url + "/healthz", env, server_core) as original:
                        for what, post in (
                            ("original: GET /messages (all)", False),
                            ("original: POST /messages", True),
                        ):
                            measured = load.paired(url + "/messages", original.pid, baseline, post)
                            print(row(label, what, measured, rss_mb(original.pid)), flush=True)

        print("\nlive fan-out (a message every 100 ms; delay from POST sent to arrival on every stream)")
        counts = [int(value) for value in args.streams.split(",") if value]
        for streams in counts:
            print(fan_out(server_core, load_core, tmp, streams, args.fanout_messages), flush=True)
        if counts:
            # Python's own allocator keeps arenas a few live objects pin after the streams
            # close (reused by the next wave); the image's, glibc's malloc, gives them back.
            most = max(counts)
            print(fan_out(server_core, load_core, tmp, most, args.fanout_messages, PYMALLOC))

        print("\ncold start (spawn to /readyz 200) and idle RSS, per role")
        for line in cold_starts(server_core, tmp, args.runs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
