"""Logging for every role: text lines (the default) or one JSON object a line, and request ids.

``setup_logging`` is called once by ``__main__``. In JSON (``LOG_FORMAT=json``) each
record is one line with ``time``, ``level``, ``logger``, ``message``, ``role``, the
``request_id`` of the request it was written for (if any), the access line's fields
(``method``, ``path``, ``status``, ``duration`` in seconds, ``remote``) and an
``exception`` with its traceback, newlines escaped, still on the one line.

A request's id is held in a context variable for the request's task: the server
sets it when the request arrives (``request_id_for``), the response carries it back
in ``X-Request-ID``, and the api's HTTP calls to the crawler send it on, so the
crawler's lines for those calls carry the same id.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
import secrets
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from .settings import LogSettings

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID: ContextVar[str | None] = ContextVar("synergychat_request_id", default=None)
# An id from outside is kept if it is short and plain (what proxies and tracing systems
# make: UUIDs, hex, nginx's $request_id); anything else could forge or flood log lines.
_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger", "exc_info": "exception"}

# Ids made here: unique across processes by a random prefix, cheap by a counter (a
# uuid4 costs more than the rest of a small request's bookkeeping).
_PROCESS_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count(1)


def request_id_for(header: str | None) -> str:
    """The incoming ``X-Request-ID`` if it is acceptable, else a new id."""
    if header is not None and _ACCEPTED_REQUEST_ID.fullmatch(header):
        return header
    return f"{_PROCESS_PREFIX}-{next(_request_numbers):x}"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record written while it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        return True


class JsonLineFormatter(JsonFormatter):
    """python-json-logger's formatter, with the time in ISO 8601 UTC (what log collectors parse)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_time(record.created)


# The last whole second iso_time wrote, and its text: a busy server writes many lines a second.
_iso_second: tuple[int, str] = (-1, "")


def iso_time(created: float) -> str:
    """``created`` (seconds since the epoch) as ISO 8601 UTC to the millisecond, as
    ``datetime.isoformat(timespec="milliseconds")`` writes it: ``2026-12-02T07:42:20.123Z``."""
    global _iso_second
    # As datetime.fromtimestamp takes it apart: microseconds rounded half to even, then cut.
    fraction, whole = math.modf(created)
    second, microsecond = int(whole), round(fraction * 1e6)
    if microsecond >= 1_000_000 or microsecond < 0:
        carry, microsecond = divmod(microsecond, 1_000_000)
        second += carry
    cached_second, text = _iso_second
    if second != cached_second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _iso_second = (second, text)
    return f"{text}.{microsecond // 1000:03d}Z"


def json_formatter(role: str) -> JsonLineFormatter:
    return JsonLineFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, static_fields={"role": role})


class TextFormatter(logging.Formatter):
    """The text line, its time written once a second rather than once a line (the same text:
    ``2026-12-02 02:56:01,825``, local time)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.time_text(record.created)

    def time_text(self, created: float) -> str:
        """``created`` (seconds since the epoch) as logging writes it, in local time."""
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._second_text},{int((created - second) * 1000):03d}"


# A line held back as its facts, formatted at the end of the loop's turn with the others:
# ``(render, ...)``, where ``render(formatter, held)`` gives the line, newline included.
Held = tuple[Any, ...]


class LoopFlushedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, on an event loop's thread, writes its lines out once per turn of
    the loop instead of once per line: a busy api logs many access lines a turn, and each
    write to stderr is a system call. The order of lines is kept, nothing waits longer than
    the turn, and a WARNING or worse is written at once (a crash's last words).

    A line may also be *held* (``hold``): kept as its facts and formatted only when the turn
    ends, with the others held meanwhile. The access log does this: a turn's lines
    formatted together in one place cost a ``GET /messages`` about 4 µs of CPU less than
    each formatted as its request ended (58.6 against 54.8 µs, wrk, three runs each; the
    same text).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._flush_due_on: asyncio.AbstractEventLoop | None = None
        self._held: list[Held] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._held:
                self._write_held()  # they came first
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler: report it, never raise into the caller
            self.handleError(record)
            return
        self._flush_soon(urgent=record.levelno >= logging.WARNING)

    def hold(self, held: Held) -> None:
        """A line to format and write with the others at the end of this turn of the loop
        (at once when no loop runs here), and before any line logged after it."""
        # No lock: appending is atomic, and ``_write_held`` removes only what it wrote.
        self._held.append(held)
        # ``_flush_later``'s first check, here first: this runs for every access line, and
        # a flush is nearly always arranged already.
        due_on = self._flush_due_on
        if due_on is None or due_on.is_closed():
            self._flush_soon(urgent=False)

    @property
    def holding(self) -> bool:
        """Whether lines are held now (they were held this turn: all are written by its end)."""
        return bool(self._held)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._held:
                try:
                    self._write_held()
                except Exception:  # noqa: BLE001 - as emit: report it, never raise into the caller
                    self.handleError(logging.makeLogRecord({"msg": "held log lines could not be written"}))
            super().flush()

    def _write_held(self) -> None:
        # Under the handler's lock; the loop's thread may still be appending (``hold``).
        held = self._held[:]
        del self._held[: len(held)]
        formatter = self.formatter
        self.stream.write("".join([line[0](formatter, line) for line in held]))

    def _flush_soon(self, urgent: bool) -> None:
        """Flush now if ``urgent`` or no loop runs here, else at the end of the loop's turn."""
        if urgent or not self._flush_later():
            self.flush()

    def _flush_later(self) -> bool:
        """Arrange a flush at the end of this turn of the running loop; False if there is none."""
        due_on = self._flush_due_on
        if due_on is not None and not due_on.is_closed():
            return True  # already arranged (a loop closed before its turn ended arranges anew)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._flush_due_on = loop
        loop.call_soon(self._flush_due)
        return True

    def _flush_due(self) -> None:
        self._flush_due_on = None
        self.flush()


def stderr_stream() -> TextIO:
    """stderr, buffered: Python's own ``sys.stderr`` writes out every line as it comes. When
    it is no real file (a test capturing it), that one is used as it is."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    return open(
        descriptor, "w", buffering=1 << 16, encoding="utf-8", errors="backslashreplace", closefd=False
    )


def setup_logging(settings: LogSettings, role: str) -> None:
    """Send every log record to stderr, formatted as ``LOG_FORMAT`` says, from ``LOG_LEVEL`` up."""
    # What no line here shows, not gathered for every record (logging's own "Optimization"
    # advice): the calling file and line, thread, process.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = LoopFlushedHandler(stderr_stream())
    if settings.log_format == "json":
        handler.setFormatter(json_formatter(role))
        handler.addFilter(RequestIdFilter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)


def fatal_line(message: str) -> str:
    """The line a process that can't start ends with: a JSON record once JSON logging is on
    (a collector reads every line as JSON), else the plain ``synergychat: ...``."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonLineFormatter):
            record = logging.LogRecord("synergychat", logging.CRITICAL, __file__, 0, message, None, None)
            return handler.formatter.format(record)
    return f"synergychat: {message}"
