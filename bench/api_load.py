"""Load the api's /messages over 127.0.0.1 and print throughput and latency.

Starts a real ``--role api`` process on a database prefilled with 1k and then
100k messages, drives it with its own aiohttp client (bounded in time), prints
requests/s with p50/p99 latency per phase, and stops. GET /healthz is measured
in the same run as the baseline: the ratios say what the database costs on top
of the framework on this (noisy) machine.

    .venv/bin/python bench/api_load.py [--seconds 5] [--concurrency 32] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.processes import running_role  # noqa: E402

Request = Callable[[aiohttp.ClientSession, str, int], Awaitable[int]]


async def get_healthz(session: aiohttp.ClientSession, url: str, n: int) -> int:
    async with session.get(url + "/healthz") as response:
        await response.read()
        return response.status


async def get_messages(session: aiohttp.ClientSession, url: str, n: int) -> int:
    async with session.get(url + "/messages") as response:
        await response.read()
        return response.status


async def post_message(session: aiohttp.ClientSession, url: str, n: int) -> int:
    body = {"AuthorUsername": f"bench{n % 50}", "Text": f"benchmark message number {n}"}
    async with session.post(url + "/messages", json=body) as response:
        await response.read()
        return response.status


async def drive(url: str, request: Request, seconds: float, concurrency: int) -> tuple[float, float, float, int]:
    latencies: list[float] = []
    failures = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures, counter
        while time.perf_counter() < deadline:
            counter += 1
            started = time.perf_counter()
            status = await request(session, url, counter)
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                failures += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return len(latencies) / elapsed, p50, p99, failures


def prefill(db: Path, total: int) -> None:
    """Top the database up to ``total`` messages (the api created the schema)."""
    with sqlite3.connect(db) as conn:
        (have,) = conn.execute("SELECT COUNT(*) FROM messages").fetchone()
        conn.executemany(
            "INSERT INTO messages (author_username, text, created_at) VALUES (?, ?, ?)",
            ((f"user{n % 100}", f"prefilled message {n} " + "x" * 60, "2026-01-01T00:00:00.000Z")
             for n in range(have, total)),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3, help="repeats per phase; the median is printed")
    args = parser.parse_args()
    phases: list[tuple[str, Request]] = [
        ("GET /healthz (baseline)", get_healthz),
        ("GET /messages", get_messages),
        ("POST /messages", post_message),
    ]
    print(f"{args.concurrency} concurrent clients, {args.seconds:.0f} s per run, median of {args.runs} runs")
    print(f"{'stored':>8}  {'phase':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>11} {'errors':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "messages.sqlite3"
        for stored in (1_000, 100_000):
            with running_role("api", Path(tmp), env={"API_DB_FILEPATH": str(db)}):
                pass  # first start creates the schema
            prefill(db, stored)
            with running_role("api", Path(tmp), env={"API_DB_FILEPATH": str(db)}) as api:
                baseline = None
                for name, request in phases:
                    runs = [asyncio.run(drive(api.url, request, args.seconds, args.concurrency)) for _ in range(args.runs)]
                    rate = statistics.median(r[0] for r in runs)
                    p50 = statistics.median(r[1] for r in runs)
                    p99 = statistics.median(r[2] for r in runs)
                    errors = sum(r[3] for r in runs)
                    baseline = baseline or rate
                    print(f"{stored:>8}  {name:<24} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f} {rate / baseline:>10.2f}x {errors:>6}")


if __name__ == "__main__":
    main()
