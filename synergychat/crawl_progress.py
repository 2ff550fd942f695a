"""How far the crawl is through its catalogue and how fast it goes: ``/status``'s ``progress``.

``books_done`` is what the counts cover: books counted for the current keywords, or
given up on (skipped), over every pass; ``books_total`` is the catalogue's own
``count``. The rate is measured, not assumed: the slope of ``books_done`` over a recent
window, so a crawl that stops (waiting between passes, a catalogue that is down) shows
its rate falling to 0 instead of its last rate forever. docs/CRAWLER.md says why.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TypedDict

# The rate is measured over the last 10 minutes (~20 books at the default 30 s delay),
# or over this many requests' worth of time when the delay is longer, so that a slow,
# polite crawl still has a few books in its window.
RATE_WINDOW_SECONDS = 600.0
RATE_WINDOW_REQUESTS = 10
# Before any book is done, a rate of 0 is only said once this many requests' worth of
# time (plus a minute for a slow download) has passed with none: until then it is unknown.
QUIET_REQUESTS = 2
QUIET_GRACE_SECONDS = 60.0
# States in which the crawl will not go on by itself: no time left to promise.
STOPPED_STATES = frozenset({"failed", "stopped"})


class Progress(TypedDict):
    books_done: int
    books_total: int | None
    percent: float | None
    books_per_minute: float | None
    eta_seconds: float | None


class RateMeter:
    """How fast a running total grows: its slope over the last ``window_seconds``.

    ``record`` the total whenever it may have changed; between two records it is taken
    to have stayed put, so a total that stops growing shows a rate falling to 0.
    """

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_seconds
        self._clock = clock
        # (when, total) at each change, oldest first; the oldest may predate the window
        # (it gives the total at the window's start).
        self._samples: deque[tuple[float, int]] = deque()

    def record(self, total: int) -> None:
        now = self._clock()
        if self._samples and total < self._samples[-1][1]:
            # Fewer than before (books were removed from the store): measure afresh.
            self._samples.clear()
        if not self._samples or total != self._samples[-1][1]:
            self._samples.append((now, total))
        self._forget_before(now - self._window)

    def per_minute(self, quiet_seconds: float) -> float | None:
        """The rate over the window (or since the first record, if that is later).

        None until something was measured: no record yet, or nothing gained in less
        than ``quiet_seconds`` (too short to say the crawl is idle rather than busy).
        """
        if not self._samples:
            return None
        now = self._clock()
        start = now - self._window
        self._forget_before(start)
        first_at, first_total = self._samples[0]
        span = now - max(first_at, start)
        gained = self._samples[-1][1] - first_total
        if span <= 0 or (gained == 0 and span < quiet_seconds):
            return None
        return gained * 60.0 / span

    def _forget_before(self, start: float) -> None:
        # Keep the last sample at or before ``start``: it is the total when the window opens.
        while len(self._samples) >= 2 and self._samples[1][0] <= start:
            self._samples.popleft()


def rate_window_seconds(delay_seconds: float) -> float:
    return max(RATE_WINDOW_SECONDS, RATE_WINDOW_REQUESTS * delay_seconds)


def quiet_seconds(delay_seconds: float) -> float:
    return QUIET_REQUESTS * delay_seconds + QUIET_GRACE_SECONDS


def describe_progress(
    state: str,
    books_done: int,
    books_total: int | None,
    measured_per_minute: float | None,
    delay_seconds: float,
) -> Progress:
    """The ``progress`` object of ``/status``.

    The rate is never more than the delay allows: every book costs a request, and two
    requests are ``delay_seconds`` apart, so 60 / delay a minute at most (a run of books
    without plain text, which cost none, would otherwise promise a pace that can't last).
    """
    rate = measured_per_minute
    if rate is not None and delay_seconds > 0:
        rate = min(rate, 60.0 / delay_seconds)
    percent: float | None = None
    remaining: int | None = None
    if books_total is not None:
        remaining = max(books_total - books_done, 0)
        # Tenths, rounded down in integers: 99.96 % is not "100.0 %" while a book is left.
        tenths = 1000 if books_total == 0 else min(books_done, books_total) * 1000 // books_total
        percent = tenths / 10
    eta: float | None = None
    if remaining and rate and state not in STOPPED_STATES:
        eta = float(round(remaining / rate * 60.0))
    return {
        "books_done": books_done,
        "books_total": books_total,
        "percent": percent,
        "books_per_minute": None if rate is None else round(rate, 2),
        "eta_seconds": eta,
    }
