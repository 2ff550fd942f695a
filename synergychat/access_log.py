"""The access log: one line per request, written when its response is done, and the
request-duration histogram fed from the same call.

aiohttp calls the access logger for every request anyway, with the response and its
duration, so observing here costs no middleware and no second timer. Health probes and
metrics scrapes come every few seconds, forever: their lines are at DEBUG.

A line goes through Python's logging when anything but our own handler is listening
(tests, an embedding program). When ``setup_logging``'s handler is the only one, as in
every role, the line's facts are held by that handler and formatted, in its format, with
the others of the loop's turn when the turn ends (``LoopFlushedHandler.hold``): the same
text a log record would have given (tests/unit/test_access_log.py compares them), for
about a third of what building and handling a record costs a small request, and
formatted together rather than one at a time (a ``GET /messages`` took 58.6 µs of CPU
with a line formatted as its request ended, 54.8 µs held: wrk, three runs each).
"""

from __future__ import annotations

import logging
import time as time_module
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from .logs import (
    REQUEST_ID,
    Held,
    JsonLineFormatter,
    LoopFlushedHandler,
    RequestIdFilter,
    TextFormatter,
    iso_time,
)

access_log = logging.getLogger("synergychat.access")

# Every role's probes and the metrics scrape, at the root or under a part's prefix
# (/api/readyz under `all`).
QUIET_SUFFIXES = ("/healthz", "/readyz", "/metrics")
# A request marked so is logged at DEBUG: refusals at a limit are counted and reported
# in one line now and then, not one line each.
QUIET_ACCESS = web.RequestKey("quiet_access", bool)


class ProbeQuietAccessLogger(AbstractAccessLogger):
    """Each request, once its response is done: into the request-duration histogram (when
    its server has one), and one access line at INFO (probes and scrapes at DEBUG)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        metrics = getattr(request.protocol._manager, "metrics", None)
        if metrics is not None:
            metrics.observe(request, response.status, time)
        path, status = request.path, response.status
        # Only refusals are marked (a 503): a successful request skips the lookup, which
        # costs a KeyError when the mark is absent.
        quiet = path.endswith(QUIET_SUFFIXES) or (status >= 500 and request.get(QUIET_ACCESS, False))
        level = logging.DEBUG if quiet else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        remote, method = request.remote, request.method
        # The request target as the client sent it (as nginx logs it): already a string,
        # where the parsed URL's text would be built again for each line.
        target = request.raw_path
        handler = holder(self.logger)
        if handler is None:
            message = access_message(remote, method, target, status, time)
            self.logger.log(level, "%s", message, extra=access_fields(method, path, status, time, remote))
        elif level >= handler.level:  # else the handler would drop it
            handler.hold(
                (render, time_module.time(), level, self.logger.name, remote, method,
                 target, path, status, time, REQUEST_ID.get())
            )  # fmt: skip

    @property
    def enabled(self) -> bool:
        # Always: the histogram counts every request, whether or not its line is written.
        return True


def direct_handler(logger: logging.Logger) -> LoopFlushedHandler | None:
    """The handler a line of ``logger`` may be written to directly: ``setup_logging``'s, if
    it is the only one that would get the record and nothing filters on the way.

    As ``Logger.callHandlers`` finds handlers: on the logger and each parent up to the
    root, stopping at one that does not propagate.
    """
    if logger.filters or logger.disabled:
        return None
    on_the_way: logging.Logger | None = logger
    while on_the_way is not None and on_the_way is not logging.root:
        if on_the_way.handlers or not on_the_way.propagate:
            return None
        on_the_way = on_the_way.parent
    handlers = logging.root.handlers
    if len(handlers) != 1 or logging.root.filters:
        return None
    handler = handlers[0]
    return handler if isinstance(handler, LoopFlushedHandler) else None


# The logger whose lines are held this turn, and the handler holding them (``holder``).
_holder: tuple[logging.Logger | None, LoopFlushedHandler | None] = (None, None)


def holder(logger: logging.Logger) -> LoopFlushedHandler | None:
    """The handler that holds ``logger``'s access lines, or None when they must be records.

    Looked up once a turn of the loop: while the handler holds lines, they were held this
    turn (it writes them all by the turn's end), so the answer found for the first of them
    stands; a change to the logging set-up is seen from the next turn on. (Looking it up
    for every line cost a ``GET /messages`` about 2 µs of its ~50.)
    """
    global _holder
    held_for, found = _holder
    if found is None or held_for is not logger or not found.holding:
        found = direct_handler(logger)
        if found is not None and not holds_lines(found):
            found = None
        _holder = (logger, found)
    return found


def holds_lines(handler: LoopFlushedHandler) -> bool:
    """Whether an access line may be held by ``handler`` (``render`` formats it as a record of
    it would be): the format is one of ours, and no filter but ours would look at a record."""
    if not isinstance(handler.formatter, (TextFormatter, JsonLineFormatter)):
        return False
    for each in handler.filters:
        if not isinstance(each, RequestIdFilter):
            return False
    return True


def access_message(remote: str | None, method: str, path_qs: str, status: int, seconds: float) -> str:
    return f'{remote} "{method} {path_qs}" {status} {seconds * 1000:.1f}ms'


def access_fields(method: str, path: str, status: int, seconds: float, remote: str | None) -> dict[str, Any]:
    """The access line's facts as fields of a JSON line (LOG_FORMAT=json)."""
    return {"method": method, "path": path, "status": status, "duration": round(seconds, 6), "remote": remote}


def render(formatter: logging.Formatter | None, held: Held) -> str:
    """A held access line (``ProbeQuietAccessLogger.log``), as a record of it would have been
    formatted by ``formatter``, newline included."""
    _, created, level, logger_name, remote, method, path_qs, path, status, seconds, request_id = held
    message = access_message(remote, method, path_qs, status, seconds)
    level_name = logging.getLevelName(level)
    if isinstance(formatter, JsonLineFormatter):
        entry = {"time": iso_time(created), "level": level_name, "logger": logger_name, "message": message}
        entry.update(formatter.static_fields)
        entry.update(access_fields(method, path, status, seconds, remote))
        if request_id is not None:
            entry["request_id"] = request_id
        return formatter.jsonify_log_record(entry) + "\n"
    # Text (a formatter swapped for another after the line was held gets it in text too).
    when = formatter.time_text(created) if isinstance(formatter, TextFormatter) else iso_time(created)
    return f"{when} {level_name} {logger_name}: {message}\n"
