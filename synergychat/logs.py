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

import itertools
import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime

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
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_formatter(role: str) -> JsonLineFormatter:
    return JsonLineFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, static_fields={"role": role})


def setup_logging(settings: LogSettings, role: str) -> None:
    """Send every log record to stderr, formatted as ``LOG_FORMAT`` says, from ``LOG_LEVEL`` up."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(json_formatter(role))
        handler.addFilter(RequestIdFilter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
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
