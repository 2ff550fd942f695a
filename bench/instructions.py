"""Instructions a server executes per request, counted by callgrind: the steady figure.

On a shared machine req/s and even CPU time per request move by 10-15 % from one run of
the same build to the next. Instructions executed do not: the same build repeats to
about 0.3 %. So a change of a few per cent on the request path shows here first. The
count is of user space only; what the kernel does for a request (sending the answer,
writing a log line) is not in it.

Starts aiohttp's hello world (asyncio's loop and uvloop's) and ``--role api`` under
valgrind's callgrind, each in turn. Each server gets 100 messages and 200 warm-up
requests; then its counters are zeroed, ``--requests`` requests are sent on 4
keep-alive connections, and the counters are read. Prints instructions per request, and
the hello world's (asyncio) count divided by each: the ratio to aiohttp's own ceiling,
the way bench/api_load.py states its ratios.

    .venv/bin/python bench/instructions.py [--requests 1000] [--path /messages] [ENV=VALUE ...]

``ENV=VALUE`` arguments are set for the api (``ACCESS_LOG=false``, ``LOG_FORMAT=json``).
Needs valgrind (Debian: ``apt-get install valgrind``). Under it a server runs about 50
times slower: each server takes a minute or two.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from api_load import REPO, free_port, wait_ready

BODY = json.dumps({"AuthorUsername": "bench", "Text": "a benchmark message, about as long as a chat line"})
CONNECTIONS = 4
WARM_UP_REQUESTS = 200


def send(port: int, path: str, count: int) -> None:
    """``count`` requests (GET, or POST for ``POST /path``) on one keep-alive connection."""
    method, _, target = path.rpartition(" ")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(count):
            if method == "POST":
                connection.request("POST", target, body=BODY, headers={"Content-Type": "application/json"})
            else:
                connection.request("GET", target)
            response = connection.getresponse()
            response.read()
            if response.status >= 300:
                raise SystemExit(f"{method or 'GET'} {target}: HTTP {response.status}")
    finally:
        connection.close()


def send_spread(port: int, path: str, count: int) -> None:
    threads = [
        threading.Thread(target=send, args=(port, path, count // CONNECTIONS)) for _ in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def instructions(folder: Path) -> int:
    """The total of the last dump callgrind wrote into ``folder``."""
    dumps = sorted(folder.glob("callgrind.out*"), key=lambda path: path.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {dumps[-1]}")


def measure(
    command: list[str], env: dict[str, str], port: int, path: str, requests: int, seed: bool
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/callgrind.out", *command]
        process = subprocess.Popen(
            valgrind, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            # Up to 300 s: a server starts about 50 times slower under valgrind.
            wait_ready(f"http://127.0.0.1:{port}{'/healthz' if seed else '/'}", process, timeout=300)
            if seed:
                send_spread(port, "POST /messages", 100)
            send_spread(port, path, WARM_UP_REQUESTS)
            subprocess.run(["callgrind_control", "--zero", str(process.pid)], check=True, capture_output=True)
            send_spread(port, path, requests)
            subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True)
            time.sleep(1)
            return instructions(folder) / requests
        finally:
            process.terminate()
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests counted per server")
    parser.add_argument(
        "--path", default="/messages", help="the api's request: /messages, /healthz, 'POST /messages'"
    )
    parser.add_argument("settings", nargs="*", help="ENV=VALUE set for the api")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install valgrind)")
    settings = dict(setting.split("=", 1) for setting in args.settings)
    python = sys.executable
    hello = str(REPO / "bench" / "hello_app.py")
    rows: list[tuple[str, float]] = []
    for label, loop in (
        ("aiohttp hello world, asyncio", "asyncio"),
        ("aiohttp hello world, uvloop", "uvloop"),
    ):
        port = free_port()
        rows.append(
            (
                label,
                measure([python, hello, str(port), loop], dict(os.environ), port, "/", args.requests, False),
            )
        )
        print(f"{label:<45} {rows[-1][1]:>12,.0f}", flush=True)
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        env = {
            **os.environ,
            "ROLE": "api",
            "API_PORT": str(port),
            "API_DB_FILEPATH": f"{data}/messages.db",
            **settings,
        }
        label = f"--role api, {args.path}" + "".join(f", {key}={value}" for key, value in settings.items())
        rows.append(
            (label, measure([python, "-m", "synergychat"], env, port, args.path, args.requests, True))
        )
    ceiling = rows[0][1]
    print(f"\n{'server, request':<45} {'instructions':>12} {'hello ÷ it':>10}")
    for label, count in rows:
        print(f"{label:<45} {count:>12,.0f} {ceiling / count:>10.2f}")


if __name__ == "__main__":
    main()
