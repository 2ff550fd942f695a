"""One load run: find the api, let the people in, report every few seconds, sum up, exit.

The run ends when LOADGEN_DURATION_SECONDS have passed, or on SIGTERM/SIGINT.
Then the people stop acting (requests in flight finish), messages still on
their way get a few seconds to arrive, the streams close, and the summary is
logged and printed as one JSON line on stdout. Exit 0, or 1 when more than
LOADGEN_MAX_ERROR_RATE of the requests failed (or of the deliveries were
missed), or when nothing succeeded at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import sys
import time
from typing import Any

from yarl import URL

from ..settings import LoadgenSettings
from . import chatter
from .client import REQUEST_FAILURES, ChatClient, failure_reason, new_session
from .endpoints import serve_endpoints
from .ledger import DeliveryLedger
from .measure import Kind, Latencies, Measurements
from .person import Pacing, Person
from .report import log_plan, log_summary, window_line
from .target import ApiTarget, TargetError, find_api

log = logging.getLogger("synergychat.loadgen")

# Messages still on their way when the run ends get this long to arrive.
DRAIN_SECONDS = 10.0
FIND_RETRY_SECONDS = (2.0, 60.0)  # first and longest pause between attempts to find the api
# Past these, the generator's own queueing shows in what it measures (it runs on one core).
SATURATED_CPU_SHARE = 0.8
SATURATED_LAG_SECONDS = 0.05
LAG_PROBE_SECONDS = 0.1


class LoadRun:
    def __init__(self, settings: LoadgenSettings, seed: int | None = None) -> None:
        self.settings = settings
        self.measurements = Measurements()
        self.ledger = DeliveryLedger(self.measurements)
        self.target: ApiTarget | None = None
        self._rng = random.Random(seed)
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self._people: list[Person] = []  # in the chat now
        self._visits = 0  # people who came, including those who left
        self._window_lag = Latencies()
        self._run_lag = Latencies()

    # ---- the run -----------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, self._stop.set)
        try:
            metrics_server = await serve_endpoints(
                self.settings.loadgen_port,
                self.measurements.registry,
                lambda: self.target.base if self.target else None,
                self.summary,
            )
        except OSError as exc:
            print(
                f"synergychat: cannot listen on port {self.settings.loadgen_port} (LOADGEN_PORT): "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
        duration = self.settings.loadgen_duration_seconds
        deadline = self._started + duration if duration else None
        log_plan(self.settings)
        reporter = asyncio.create_task(self._report_every(self.settings.loadgen_report_seconds))
        lag_watch = asyncio.create_task(self._watch_own_lag())
        try:
            self.target = await self._find_target(deadline)
            if self.target is not None:
                await self._chat(self.target, deadline)
        finally:
            reporter.cancel()
            lag_watch.cancel()
            await asyncio.gather(reporter, lag_watch, return_exceptions=True)
        summary = self.summary()
        log_summary(summary)
        print(json.dumps(summary), flush=True)
        await metrics_server.cleanup()
        return 0 if summary["passed"] else 1

    async def _until(self, deadline: float | None, pause: float | None = None) -> bool:
        """Wait until stopped, the deadline, or ``pause`` seconds; True when the run is over."""
        timeouts = [
            t for t in (pause, None if deadline is None else deadline - time.monotonic()) if t is not None
        ]
        try:
            await asyncio.wait_for(self._stop.wait(), max(0.0, min(timeouts)) if timeouts else None)
        except TimeoutError:
            pass
        return self._stop.is_set() or (deadline is not None and time.monotonic() >= deadline)

    async def _find_target(self, deadline: float | None) -> ApiTarget | None:
        url = URL(self.settings.loadgen_target_url)
        pause = FIND_RETRY_SECONDS[0]
        async with new_session(self.settings.loadgen_request_timeout_seconds) as session:
            while True:
                started = time.monotonic()
                try:
                    target = await find_api(session, url)
                except TargetError as exc:
                    self.measurements.failed(Kind.FIND, "no api on the page")
                    log.error("cannot find the api from %s: %s; trying again in %.0f s", url, exc, pause)
                except REQUEST_FAILURES as exc:  # nothing answered
                    self.measurements.failed(Kind.FIND, failure_reason(exc))
                    log.error(
                        "nothing answered at %s (%s); trying again in %.0f s", url, failure_reason(exc), pause
                    )
                else:
                    self.measurements.succeeded(Kind.FIND, time.monotonic() - started)
                    found = f"through the page {target.page}" if target.page else "as given"
                    log.info("the api is at %s (%s)", target.base, found)
                    return target
                if await self._until(deadline, pause):
                    return None
                pause = min(FIND_RETRY_SECONDS[1], pause * 2)

    async def _chat(self, target: ApiTarget, deadline: float | None) -> None:
        leaving = asyncio.Event()

        async def seat() -> None:
            # One place in the chat, taken by one person after another.
            while not leaving.is_set():
                self._visits += 1
                person = Person(
                    chatter.person_name(self._visits, self._rng),
                    ChatClient(target, self.settings.loadgen_request_timeout_seconds),
                    self.ledger,
                    self.measurements,
                    Pacing(self.settings.loadgen_post_interval_seconds),
                    random.Random(self._rng.random()),
                )
                self._people.append(person)
                self.measurements.people.set(len(self._people))
                await person.visit(leaving, self._stay_seconds())
                if leaving.is_set():
                    return  # stays, stream open, until the messages on their way have arrived
                await person.close()
                self.ledger.leave(person.name)
                self._people.remove(person)

        async def let_people_in() -> None:
            for _ in range(self.settings.loadgen_users):
                seats.append(asyncio.create_task(seat()))
                await asyncio.sleep(1 / self.settings.loadgen_spawn_rate)

        seats: list[asyncio.Task[None]] = []
        spawner = asyncio.create_task(let_people_in())
        await self._until(deadline)
        spawner.cancel()
        leaving.set()
        log.info("the run is over: people stop talking; requests in flight finish")
        await asyncio.gather(spawner, *seats, return_exceptions=True)
        drain_until = time.monotonic() + DRAIN_SECONDS
        while self.ledger.outstanding and time.monotonic() < drain_until:
            await asyncio.sleep(0.05)
        if missed := self.ledger.give_up():
            log.warning("%d deliveries had not arrived %.0f s after the last message", missed, DRAIN_SECONDS)
        await asyncio.gather(*(person.close() for person in self._people), return_exceptions=True)
        self.measurements.people.set(0)

    def _stay_seconds(self) -> float | None:
        mean = self.settings.loadgen_visit_seconds
        if not mean:
            return None
        # Exponential, like arrivals at a chat; never so short that the page load is all there is.
        return max(mean / 10, self._rng.expovariate(1 / mean))

    # ---- reporting ----------------------------------------------------------------------

    async def _report_every(self, seconds: float) -> None:
        while True:
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            self.ledger.expire(time.monotonic())
            line = window_line(
                self.measurements.take_window(),
                time.monotonic() - self._started,
                len(self._people),
                self.measurements.open_streams,
            )
            share = (time.process_time() - cpu) / (time.monotonic() - wall)
            lag = self._window_lag.quantile(0.99) or 0.0
            self._window_lag = Latencies()
            if share > SATURATED_CPU_SHARE or lag > SATURATED_LAG_SECONDS:
                log.warning(
                    "%s | the load generator itself is busy "
                    "(%.0f %% of a core, its clock late by up to %.0f ms): "
                    "its latencies include its own delays; run fewer people per generator",
                    line,
                    share * 100,
                    lag * 1000,
                )
            else:
                log.info("%s", line)

    async def _watch_own_lag(self) -> None:
        """How late this process's event loop wakes up: a busy generator measures itself, not the chat."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            late = max(0.0, time.monotonic() - before - LAG_PROBE_SECONDS)
            self._window_lag.add(late)
            self._run_lag.add(late)

    def summary(self) -> dict[str, Any]:
        total = self.measurements.total
        failed = {kind: sum(n for (k, _), n in total.failures.items() if k is kind) for kind in Kind}
        ok = {kind: total.requests[kind] - failed[kind] for kind in Kind}
        requests = {
            kind.value: {"ok": ok[kind], "failed": failed[kind], **total.latency[kind].as_json()}
            for kind in Kind
        }
        succeeded = sum(ok.values())
        limit = self.settings.loadgen_max_error_rate
        reasons = []
        if succeeded == 0:
            reasons.append("no request succeeded")
        if total.error_rate > limit:
            reasons.append(f"{total.error_rate:.1%} of requests failed (LOADGEN_MAX_ERROR_RATE={limit:g})")
        if total.missed_rate > limit:
            reasons.append(
                f"{total.missed_rate:.1%} of deliveries were missed (LOADGEN_MAX_ERROR_RATE={limit:g})"
            )
        return {
            "target": self.settings.loadgen_target_url,
            "api": str(self.target.base) if self.target else None,
            "duration_seconds": round(time.monotonic() - self._started, 2),
            # The generator's own load: numbers measured by a saturated generator are its own delays.
            "generator": {
                "cpu_share": round(time.process_time() / max(1e-9, time.monotonic() - self._started), 3),
                "loop_lag_p99_ms": round((self._run_lag.quantile(0.99) or 0.0) * 1000, 2),
            },
            "people": self._visits,
            "users": self.settings.loadgen_users,
            "requests": requests,
            "messages_sent": ok[Kind.POST] + ok[Kind.STATS],
            "deliveries": {
                "missed": total.missed,
                **{"delivered" if k == "count" else k: v for k, v in total.delivery.as_json().items()},
            },
            "bot_replies_seen": len(self.ledger.bot_replies_seen),
            "failures": {f"{kind} {reason}": n for (kind, reason), n in total.failures.most_common()},
            "error_rate": round(total.error_rate, 4),
            "missed_rate": round(total.missed_rate, 4),
            "max_error_rate": limit,
            "passed": not reasons,
            "verdict": "; ".join(reasons) or "within LOADGEN_MAX_ERROR_RATE",
        }


def run_loadgen(settings: LoadgenSettings) -> int:
    return asyncio.run(LoadRun(settings).run())
