"""The access log: one line per request, written when its response is done, and the
request-duration histogram fed from the same call.

aiohttp calls the access logger for every request anyway, with the response and its
duration, so observing here costs no middleware and no second timer. Health probes and
metrics scrapes come every few seconds, forever: their lines are at DEBUG.

A line goes through Python's logging when anything but our own handler is listening
(tests, an embedding program). When ``setup_logging``'s handler is the only one, as in
every role, the line is formatted in that handler's format and written to it directly:
the same text a log record would have given (tests/unit/test_access_log.py compares
them), for about a third of what building and handling a record costs a small request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from .logs import REQUEST_ID, JsonLineFormatter, LoopFlushedHandler, RequestIdFilter, TextFormatter, iso_time

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
        message = f'{remote} "{method} {request.path_qs}" {status} {time * 1000:.1f}ms'

        def fields() -> dict[str, Any]:
            # The same, as fields of a JSON line (LOG_FORMAT=json); a text line has no use for them.
            return {
                "method": method,
                "path": path,
                "status": status,
                "duration": round(time, 6),
                "remote": remote,
            }

        handler = direct_handler(self.logger)
        if handler is None or not write_line(handler, self.logger.name, level, message, fields):
            self.logger.log(level, "%s", message, extra=fields())

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


def write_line(
    handler: LoopFlushedHandler,
    logger_name: str,
    level: int,
    message: str,
    fields: Callable[[], dict[str, Any]],
) -> bool:
    """Write the line a record of these would have made, in ``handler``'s format; False if
    the format is not one of ours (the caller logs a record instead)."""
    if level < handler.level:
        return True  # the handler would drop it
    if any(not isinstance(each, RequestIdFilter) for each in handler.filters):
        return False  # a filter of someone else's: let it see a record
    created = time.time()
    formatter = handler.formatter
    level_name = logging.getLevelName(level)
    if isinstance(formatter, TextFormatter):
        line = f"{formatter.time_text(created)} {level_name} {logger_name}: {message}"
    elif isinstance(formatter, JsonLineFormatter):
        entry = {"time": iso_time(created), "level": level_name, "logger": logger_name, "message": message}
        entry.update(formatter.static_fields)
        entry.update(fields())
        if (request_id := REQUEST_ID.get()) is not None:
            entry["request_id"] = request_id
        line = formatter.jsonify_log_record(entry)
    else:
        return False
    handler.write_line(line)
    return True
