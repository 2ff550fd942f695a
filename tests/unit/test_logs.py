"""Log settings, the JSON line format, and which request ids are taken from outside."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from synergychat.logs import (
    REQUEST_ID,
    TEXT_FORMAT,
    LoopFlushedHandler,
    RequestIdFilter,
    TextFormatter,
    fatal_line,
    iso_time,
    json_formatter,
    request_id_for,
)
from synergychat.settings import LogSettings


@pytest.mark.parametrize(
    "header",
    [
        "0b4f0d9e-54a8-4c53-9e0c-5d1b7c0f5d2a",  # a UUID
        "3f9a1c2b7d0e4f6a8b1c2d3e4f5a6b7c",  # nginx's $request_id
        "trace-4f2a.9:1",
        "x" * 128,  # the longest kept
    ],
)
def test_plain_request_ids_are_kept(header: str) -> None:
    assert request_id_for(header) == header


@pytest.mark.parametrize(
    "header",
    [
        None,  # none sent
        "",
        "x" * 129,  # too long to be an id: a flood of log bytes
        "a b",
        "abc\nlevel=ERROR forged",  # a forged log line
        '"}{"level":"ERROR"',  # a forged JSON field
        "-starts-with-a-dash",
        "ünïcode",
    ],
)
def test_other_request_ids_are_replaced_by_a_new_one(header: str | None) -> None:
    made = request_id_for(header)
    assert made != header and request_id_for(made) == made
    assert request_id_for(header) != made, "every request gets an id of its own"


def test_log_settings_default_to_text_at_info_and_take_any_case() -> None:
    assert (LogSettings().log_format, LogSettings().log_level) == ("text", "INFO")
    assert LogSettings(log_format=" JSON ", log_level="debug").model_dump() == {
        "log_format": "json",
        "log_level": "DEBUG",
    }
    # Any: these are wrong on purpose, for pydantic to refuse when the process starts.
    bad_settings: list[dict[str, Any]] = [{"log_format": "xml"}, {"log_level": "loud"}]
    for bad in bad_settings:
        with pytest.raises(ValidationError):
            LogSettings(**bad)


def record(message: str, *args: object, extra: Mapping[str, object] | None = None) -> logging.LogRecord:
    logger = logging.getLogger("synergychat.test")
    return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, message, args, None, extra=extra)


def test_a_json_line_has_the_fields_and_the_request_id() -> None:
    formatter = json_formatter("api")
    line = record("%d streams", 3)
    token = REQUEST_ID.set("req-1")
    try:
        assert RequestIdFilter().filter(line)
    finally:
        REQUEST_ID.reset(token)
    parsed = json.loads(formatter.format(line))
    assert parsed["level"] == "WARNING" and parsed["logger"] == "synergychat.test"
    assert parsed["message"] == "3 streams" and parsed["role"] == "api" and parsed["request_id"] == "req-1"
    assert parsed["time"].endswith("Z") and parsed["time"][:2] == "20"


def test_an_access_line_and_an_exception_stay_one_line() -> None:
    formatter = json_formatter("crawler")
    try:
        raise RuntimeError("broken\nacross lines")
    except RuntimeError:
        exc_info = sys.exc_info()
    line = record(
        'a "%s" line',
        "GET /x\n",
        extra={"method": "GET", "path": "/x", "status": 500, "duration": 0.0123},
    )
    line.exc_info = exc_info
    text = formatter.format(line)
    assert "\n" not in text
    parsed = json.loads(text)
    assert (parsed["method"], parsed["path"], parsed["status"], parsed["duration"]) == (
        "GET",
        "/x",
        500,
        0.0123,
    )
    assert "Traceback" in parsed["exception"] and "RuntimeError: broken\nacross lines" in parsed["exception"]
    # Outside a request nothing sets an id, and none is made up.
    assert RequestIdFilter().filter(line) and "request_id" not in json.loads(formatter.format(line))


def test_the_last_words_of_a_process_are_plain_in_text_and_json_in_json() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(json_formatter("web"))
    assert fatal_line("WEB_PORT=1: in use") == "synergychat: WEB_PORT=1: in use"
    root.addHandler(handler)
    try:
        parsed = json.loads(fatal_line("WEB_PORT=1: in use"))
    finally:
        root.removeHandler(handler)
    assert (parsed["level"], parsed["message"], parsed["role"]) == ("CRITICAL", "WEB_PORT=1: in use", "web")


def test_the_text_line_is_logging_s_own_with_its_time_written_once_a_second() -> None:
    plain, ours = logging.Formatter(TEXT_FORMAT), TextFormatter()
    lines = [record("one"), record("two")]
    lines[1].created += 1.5  # into another second
    lines[1].msecs = (lines[1].created % 1) * 1000
    for line in [*lines, *lines]:
        assert ours.format(line) == plain.format(line)


class FlushRecordingStream(io.StringIO):
    """What a reader of the stream would have seen: the text as of the last flush."""

    flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


def loop_flushed_logger(stream: FlushRecordingStream) -> logging.Logger:
    handler = LoopFlushedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"synergychat.test.flushed.{id(stream)}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger


async def test_lines_logged_on_the_loop_are_written_out_together_at_the_end_of_its_turn() -> None:
    stream = FlushRecordingStream()
    logger = loop_flushed_logger(stream)
    logger.info("first")
    logger.info("second")
    assert stream.flushed == ""
    await asyncio.sleep(0)
    assert stream.flushed == "INFO first\nINFO second\n"
    logger.info("third")
    logger.warning("a warning")  # at once, and everything before it with it
    assert stream.flushed.endswith("INFO third\nWARNING a warning\n")
    logger.info("fourth")
    await asyncio.sleep(0)
    assert stream.flushed.endswith("WARNING a warning\nINFO fourth\n")


def test_lines_logged_off_the_loop_are_written_out_at_once() -> None:
    stream = FlushRecordingStream()
    logger = loop_flushed_logger(stream)
    logger.info("no loop here")
    assert stream.flushed == "INFO no loop here\n"
    # A loop that closed before its turn ended leaves nothing waiting on it.
    loop = asyncio.new_event_loop()
    loop.call_soon(logger.info, "last turn")
    loop.call_soon(loop.stop)  # the flush it arranged would run in the next turn: none comes
    loop.run_forever()
    loop.close()
    assert stream.flushed == "INFO no loop here\n"
    logger.info("after the loop")
    assert stream.flushed.endswith("INFO no loop here\nINFO last turn\nINFO after the loop\n")


def test_iso_time_writes_what_datetime_writes() -> None:
    # iso_time keeps the text of the last second; it must still be datetime's text, to the
    # millisecond, at the edges too: microseconds rounded up into the next second, the epoch.
    def by_datetime(created: float) -> str:
        return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    start = 1764662540.0
    edges = [
        start + 0.9999996,
        start + 0.9999995,
        start + 0.0000004,
        start,
        0.0,
        0.0005,
        -0.5,
        4102444800.123456,
    ]
    steps = [start + microseconds / 1e6 for microseconds in range(0, 3_000_000, 997)]
    for created in [*edges, *steps, *reversed(steps)]:
        assert iso_time(created) == by_datetime(created), created
