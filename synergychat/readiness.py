"""Readiness as every role reports it: 200 or 503, and each dependency's state.

The answer is public (a load balancer, or anyone on the internet, may ask), so it
says states only: ok, not configured, unreachable, not writable. What an operator
needs to fix a failure (the crawler's URL, the error with its host and port) goes
to the log, once each time a dependency's state changes rather than on every probe.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Checks = dict[str, Any]
# A part's readiness: whether it can serve, and what each of its dependencies says.
Readiness = Callable[[], Awaitable[tuple[bool, Checks]]]

# The state of a failing check that names none of its own.
FAILED_STATES = {"database": "not writable"}
FAILED_STATE = "unavailable"
# "in-process" says how the api reaches the crawler without naming an address.
PUBLIC_LOCATIONS = frozenset({"in-process"})
# The crawl's progress, as counts: its URLs and error messages stay in the logs.
PROGRESS_COUNTS = ("books_counted", "books_skipped", "books_to_recount", "pages_done", "pass")


def check_state(name: str, check: Mapping[str, Any]) -> str:
    state = check.get("state")
    if isinstance(state, str) and state:
        return state
    return "ok" if check.get("ok") is True else FAILED_STATES.get(name, FAILED_STATE)


def public_progress(progress: Any) -> dict[str, Any] | None:
    if not isinstance(progress, Mapping):
        return None
    public: dict[str, Any] = {}
    if isinstance(progress.get("state"), str):
        public["state"] = progress["state"]
    for name in PROGRESS_COUNTS:
        value = progress.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            public[name] = value
    return public


def public_check(name: str, check: Mapping[str, Any]) -> dict[str, Any]:
    public: dict[str, Any] = {"ok": check.get("ok") is True, "state": check_state(name, check)}
    if check.get("location") in PUBLIC_LOCATIONS:
        public["location"] = check["location"]
    if "progress" in check:
        public["progress"] = public_progress(check["progress"])
    return public


class ReadinessLog:
    """Logs each check's detail when its state changes: the first probe, a failure,
    a recovery. A healthy check moving between ok states (the crawl waiting, then
    crawling) is no change."""

    def __init__(self) -> None:
        self._seen: dict[tuple[frozenset[str], str], str] = {}

    def note(self, checks: Mapping[str, Mapping[str, Any]]) -> None:
        # A report is known by the checks in it: the api's (database, crawler) and the
        # crawler's (database, crawl) both have a "database", which are different files.
        # The web part's own check is always ok and only rides along under `all`.
        report = frozenset(checks) - {"web"}
        for name, check in checks.items():
            ok = check.get("ok") is True
            state = "ok" if ok else check_state(name, check)
            if self._seen.get((report, name)) == state:
                continue
            self._seen[(report, name)] = state
            details = "; ".join(str(check[key]) for key in ("location", "detail") if check.get(key))
            level = logging.INFO if ok else logging.WARNING
            log.log(level, "readiness: %s is %s (%s)", name, check_state(name, check), details or "no detail")


# One per process: a process probes one set of dependencies, however many endpoints report them.
PROCESS_READINESS_LOG = ReadinessLog()


# Liveness: the process answers. Every role's /healthz, the same bytes encoded once.
HEALTHY_BODY = b'{"status": "ok"}'


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=HEALTHY_BODY, content_type="application/json")


def readiness_response(ready: bool, checks: Checks, changes: ReadinessLog | None = None) -> web.Response:
    """The public readiness answer: the checks' states, their details logged (on change)."""
    (changes or PROCESS_READINESS_LOG).note(checks)
    public = {name: public_check(name, check) for name, check in checks.items()}
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": public}, status=200 if ready else 503
    )
