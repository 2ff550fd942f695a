"""The crawler's memory and readiness while clients abuse ``GET /stats`` (issue 9, items 2 and 3).

Starts a real ``--role crawler`` process on a count database seeded straight
with ``--books`` books x 8 keywords (75,000 by default: the whole catalogue,
~600k rows, ~50 MB of JSON), its catalogue a dead port (so it only serves), and
measures, ``--runs`` times (medians printed):

1. RSS idle, and after one whole ``/stats`` read (the working set);
2. ``--stalled`` clients (100) that send ``GET /stats`` and never read: the
   crawler's peak RSS over ``--hold`` seconds above the working set, how many
   were served (held until the send timeout) and how many refused (503);
3. ``--readers`` clients (10) reading the whole ``/stats`` at once while
   ``/readyz`` is probed every 0.1 s: each probe's status and latency, and the
   downloads' time.

Every request whose time is reported is made by ``curl`` (its own
``time_total``), so the bench's own Python does not weigh on what is measured.

    .venv/bin/python bench/crawler_stats_memory.py [--books 75000] [--runs 3]
    .venv/bin/python bench/crawler_stats_memory.py --checkout /tmp/old   # another checkout, to compare

The target (issue 9): phase 2 grows RSS by less than 50 MB; in phase 3 every
``/readyz`` answers 200 within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEYWORDS = ("love", "hate", "joy", "sadness", "anger", "disgust", "fear", "surprise")
TITLE = "A Gutenberg Book Title Of Typical Length"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def seed(db_file: Path, books: int) -> None:
    """The crawler's schema (its own migration, run by a first start) filled with ``books`` books."""
    with sqlite3.connect(db_file) as conn:
        conn.executemany(
            "INSERT INTO books (id, title, title_folded, status, keywords, pass_number, updated_at)"
            " VALUES (?, ?, ?, 'counted', ?, 1, '2026-01-01T00:00:00.000Z')",
            (
                (i, f"{TITLE}, Volume {i}", f"{TITLE.lower()}, volume {i}", json.dumps(sorted(KEYWORDS)))
                for i in range(1, books + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO counts (keyword, book_id, count) VALUES (?, ?, ?)",
            (
                (keyword, i, 1 + (i * 7 + n) % 2000)
                for i in range(1, books + 1)
                for n, keyword in enumerate(KEYWORDS)
            ),
        )
    conn.close()


class Crawler:
    def __init__(self, checkout: Path, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        dead = free_port()
        own = ("ROLE", "WEB_", "API_", "CRAWLER_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        env.update(
            CRAWLER_PORT=str(self.port),
            CRAWLER_DB_PATH=str(folder),
            CRAWLER_SOURCE_URL=f"http://127.0.0.1:{dead}",
            CRAWLER_KEYWORDS=",".join(KEYWORDS),
            PYTHONUNBUFFERED="1",
        )
        # The crawler writes to its own copy of the file descriptor; ours closes at once.
        with open(folder / "crawler.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "synergychat", "--role", "crawler"],
                cwd=checkout,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the crawler did not start") from None
                time.sleep(0.1)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def curl(url: str, max_seconds: float = 300) -> tuple[int, int, float]:
    """GET ``url`` with curl, body discarded: (status, bytes, seconds as curl timed them)."""
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        str(max_seconds),
        "-w",
        "%{http_code} %{size_download} %{time_total}",
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    code, size, seconds = out.decode().split()
    return int(code), int(size), float(seconds)


def stalled_clients(crawler: Crawler, number: int) -> list[socket.socket]:
    sockets = []
    for _ in range(number):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", crawler.port))
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: crawler\r\n\r\n")
        sockets.append(sock)
    return sockets


def status_line(sock: socket.socket) -> str:
    """The answer's status code, peeked at (nothing is consumed from the body)."""
    sock.settimeout(0.2)
    try:
        head = sock.recv(12, socket.MSG_PEEK)
    except OSError:
        return "none"
    return head[9:12].decode() or "none"


def reset(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


async def wait_until_no_downloads(crawler: Crawler, timeout: float = 60) -> None:
    """Until the reset clients' downloads have ended (an older crawler without the count: 2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        downloads = (await asyncio.to_thread(get_json, crawler.url + "/status")).get("stats_downloads")
        if downloads is None:
            await asyncio.sleep(2)
            return
        if downloads["active"] == 0:
            return
        await asyncio.sleep(0.2)


async def phase_stalled(crawler: Crawler, number: int, hold: float) -> dict[str, Any]:
    before = crawler.rss_mb()
    sockets = stalled_clients(crawler, number)
    peak = before
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        peak = max(peak, crawler.rss_mb())
        await asyncio.sleep(0.1)
    statuses: dict[str, int] = {}
    for sock in sockets:
        code = status_line(sock)
        statuses[code] = statuses.get(code, 0) + 1
    reset(sockets)
    await wait_until_no_downloads(crawler)
    after = crawler.rss_mb()
    return {"before": before, "peak": peak, "growth": peak - before, "after": after, "statuses": statuses}


async def phase_readers(crawler: Crawler, readers: int) -> dict[str, Any]:
    probes: list[tuple[int, int, float]] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            probes.append(await curl(crawler.url + "/readyz", 5))
            await asyncio.sleep(0.1)

    prober = asyncio.create_task(probe())
    results = await asyncio.gather(*(curl(crawler.url + "/stats") for _ in range(readers)))
    done.set()
    await prober
    latencies = sorted(seconds for _, _, seconds in probes)
    return {
        "downloads": [status for status, _, _ in results],
        "bytes": results[0][1],
        "download_seconds": statistics.median(seconds for _, _, seconds in results),
        "probes": len(probes),
        "probes_200_within_1s": sum(1 for status, _, seconds in probes if status == 200 and seconds < 1),
        "probe_median_ms": statistics.median(latencies) * 1000,
        "probe_max_ms": latencies[-1] * 1000,
        "peak_rss": crawler.rss_mb(),
    }


async def one_run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    crawler = Crawler(args.checkout, folder)
    try:
        idle = crawler.rss_mb()
        status, size, seconds = await curl(crawler.url + "/stats")
        assert status == 200, status
        warm = crawler.rss_mb()
        stalled = await phase_stalled(crawler, args.stalled, args.hold)
        readers = await phase_readers(crawler, args.readers)
        return {
            "idle": idle,
            "warm": warm,
            "one_download_seconds": seconds,
            "body_mb": size / 1e6,
            "stalled": stalled,
            "readers": readers,
        }
    finally:
        crawler.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--books", type=int, default=75_000)
    parser.add_argument("--stalled", type=int, default=100)
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the stalled clients are held")
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=REPO, help="the checkout whose crawler to run")
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="crawler-stats-bench-") as tmp:
        folder = Path(tmp)
        # A first start creates the schema (the checkout's own migration); then seed it.
        Crawler(args.checkout, folder).stop()
        seed(folder / "crawler.sqlite3", args.books)
        for run in range(args.runs):
            result = asyncio.run(one_run(args, folder))
            runs.append(result)
            stalled, readers = result["stalled"], result["readers"]
            print(
                f"run {run + 1}: idle {result['idle']:.0f} MB, after one /stats {result['warm']:.0f} MB"
                f" ({result['body_mb']:.1f} MB body, {result['one_download_seconds']:.2f} s);"
                f" {args.stalled} stalled: peak {stalled['peak']:.0f} MB (+{stalled['growth']:.1f} MB),"
                f" answers {stalled['statuses']}, after reset {stalled['after']:.0f} MB;"
                f" {args.readers} readers: {readers['downloads'].count(200)}/{args.readers} got 200 in"
                f" {readers['download_seconds']:.2f} s (median), /readyz {readers['probes_200_within_1s']}"
                f"/{readers['probes']} 200 within 1 s (median {readers['probe_median_ms']:.0f} ms,"
                f" max {readers['probe_max_ms']:.0f} ms)",
                flush=True,
            )

    def median(pick: Callable[[dict[str, Any]], float]) -> float:
        return float(statistics.median(pick(run) for run in runs))

    readers_ok = sum(r["readers"]["probes_200_within_1s"] for r in runs)
    probes = sum(r["readers"]["probes"] for r in runs)
    print(f"\n{args.books} books x {len(KEYWORDS)} keywords, {args.runs} runs, medians:")
    print(
        f"  RSS idle {median(lambda r: r['idle']):.0f} MB,"
        f" after one whole /stats {median(lambda r: r['warm']):.0f} MB"
        f" ({median(lambda r: r['one_download_seconds']):.2f} s)"
    )
    print(
        f"  {args.stalled} clients that never read: RSS growth"
        f" {median(lambda r: r['stalled']['growth']):.1f} MB (target < 50 MB)"
    )
    print(
        f"  {args.readers} concurrent whole /stats: download"
        f" {median(lambda r: r['readers']['download_seconds']):.2f} s;"
        f" /readyz median {median(lambda r: r['readers']['probe_median_ms']):.0f} ms,"
        f" max {median(lambda r: r['readers']['probe_max_ms']):.0f} ms;"
        f" probes 200 within 1 s: {readers_ok}/{probes} (target: all)"
    )


if __name__ == "__main__":
    main()
