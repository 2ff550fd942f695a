"""10,000 generated requests against each real role: no 5xx, no traceback, JSON errors.

Every role is started as users start it (``python -m synergychat --role ...``) and sent
the same hypothesis-generated cases, with that role's own paths filled in: odd methods,
paths, query strings, headers and bodies over kept-alive connections, and raw bytes that
are not quite HTTP, each on a connection of its own. ``FUZZ_CASES`` and ``FUZZ_SEED``
change how many and which; a failure prints the seed and the exact bytes.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.support.processes import free_port, running_role

from .cases import Case, generate
from .wire import fire, problems, readiness_refusals, tracebacks

pytestmark = pytest.mark.process

FUZZ_CASES = int(os.environ.get("FUZZ_CASES", "10000"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
# The api and the crawler answer every error as JSON with an "error"; the web role
# serves a page, and its 404s are plain.
JSON_ROLES = {"api", "crawler"}


@pytest.fixture(scope="module")
def fuzz_cases() -> list[Case]:
    # Generating is the slow half (hypothesis draws each case): two processes, two cores.
    started = time.monotonic()
    counts = [FUZZ_CASES // 2, FUZZ_CASES - FUZZ_CASES // 2]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        halves = list(pool.map(generate, counts, [FUZZ_SEED, FUZZ_SEED + 1]))
    cases = [case for half in halves for case in half]
    # Hypothesis may stop a run short (it judged the space covered); top up with another seed.
    next_seed = FUZZ_SEED + 2
    while len(cases) < FUZZ_CASES:
        cases += generate(FUZZ_CASES - len(cases), next_seed)
        next_seed += 1
    print(f"{FUZZ_CASES} cases generated in {time.monotonic() - started:.1f} s (FUZZ_SEED={FUZZ_SEED})")
    return cases[:FUZZ_CASES]


def role_env(role: str, tmp_path: Path) -> dict[str, str]:
    nowhere = f"http://127.0.0.1:{free_port()}"  # a closed port: the dependency is down
    if role == "api":
        return {
            "API_DB_FILEPATH": str(tmp_path / "messages.db"),
            "CRAWLER_BASE_URL": nowhere,
            # Restricted, so the cross-site write guard is in the way of the fuzzed Origins.
            "API_CORS_ORIGINS": "http://localhost:8080",
        }
    if role == "crawler":
        return {
            "CRAWLER_DB_PATH": str(tmp_path / "crawler"),
            "CRAWLER_SOURCE_URL": nowhere,
            "CRAWLER_DELAY_SECONDS": "0",
            # Above the fuzzer's 16 connections: a 503 at the download limit is the limit
            # working (tests/crawler/test_stats_downloads.py), not a server error to find here.
            "CRAWLER_STATS_MAX_CONCURRENT": "32",
        }
    return {"API_URL": nowhere}


def summary(found: list[str]) -> str:
    """One line per kind of problem (what came back), with a count and the first request."""
    kinds: dict[str, list[str]] = {}
    for problem in found:
        kinds.setdefault(problem.split(" to b", 1)[0][:100], []).append(problem)
    return "\n".join(f"{len(each)} x {kind}\n    e.g. {each[0][:700]}" for kind, each in kinds.items())


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("role", ["api", "crawler", "web"])
async def test_fuzzed_requests_get_no_server_error(role: str, tmp_path: Path, fuzz_cases: list[Case]) -> None:
    with running_role(role, tmp_path, role_env(role, tmp_path)) as running:
        started = time.monotonic()
        tally = await fire("127.0.0.1", running.port, role, fuzz_cases)
        elapsed = time.monotonic() - started
        # Still serving after all that.
        assert await asyncio.to_thread(get_json, running.url + "/healthz") == {"status": "ok"}
    log = running.log()
    statuses = tally.statuses()
    print(
        f"{role}: {len(fuzz_cases)} cases in {elapsed:.1f} s, seed {FUZZ_SEED}; statuses {statuses}; "
        f"/readyz said not ready {readiness_refusals(tally, role)} times"
    )

    found = problems(tally, role, json_errors=role in JSON_ROLES, answered=lambda case: not case.malformed)
    found_tracebacks = tracebacks(log)
    failures = []
    if found:
        failures.append(f"{len(found)} problems:\n{summary(found)}")
    if found_tracebacks:
        first = found_tracebacks[0]
        failures.append(f"{len(found_tracebacks)} tracebacks in the {role}'s log, the first:\n{first}")
    assert not failures, f"FUZZ_SEED={FUZZ_SEED}: " + "\n".join(failures)
    # The cases reached the handlers, not only the parser's refusals.
    assert sum(count for status, count in statuses.items() if status and status < 300) > len(fuzz_cases) // 10
