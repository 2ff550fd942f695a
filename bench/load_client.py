"""A small load generator for when wrk is not installed (``bench/api_load.py`` says which it used).

    python bench/load_client.py URL SECONDS CONNECTIONS [--post]

Prints ``[req_per_s, p50_ms, p99_ms, errors, requests]`` as JSON. Being Python, it saturates
sooner than wrk; its figures are a floor, not the server's ceiling.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

BODY = {"AuthorUsername": "bench", "Text": "a benchmark message, about as long as a chat line"}


async def drive(
    url: str, seconds: float, connections: int, post: bool
) -> tuple[float, float, float, int, int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            request = session.post(url, json=BODY) if post else session.get(url)
            async with request as response:
                await response.read()
                if response.status >= 400:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return len(latencies) / elapsed, p50, p99, errors, len(latencies)


if __name__ == "__main__":
    url, seconds, connections = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(drive(url, seconds, connections, "--post" in sys.argv[4:]))))
