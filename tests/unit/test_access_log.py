"""Access lines written straight to the process's handler are the lines a log record would
have made, in text and in JSON; with any other handler listening, they are records."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from synergychat.access_log import ProbeQuietAccessLogger, direct_handler, holds_lines
from synergychat.logs import REQUEST_ID, LoopFlushedHandler, RequestIdFilter, TextFormatter, json_formatter

FIELDS = {"method": "GET", "path": "/messages/ünï", "status": 200, "duration": 0.001234, "remote": "10.0.0.7"}
MESSAGE = '10.0.0.7 "GET /messages/%C3%BCn%C3%AF?x=1" 200 1.2ms'
TEXT_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture
def root_handler() -> Iterator[LoopFlushedHandler]:
    """The root logger with only a LoopFlushedHandler, as setup_logging leaves it."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    handler = LoopFlushedHandler(io.StringIO())
    root.handlers = [handler]
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])


def by_record(handler: LoopFlushedHandler, level: int) -> str:
    logger = logging.getLogger("synergychat.access")
    message, fields = MESSAGE, FIELDS
    if level == logging.DEBUG:
        message, fields = '10.0.0.7 "GET /healthz" 200 1.2ms', {**FIELDS, "path": "/healthz"}
    record = logger.makeRecord(logger.name, level, __file__, 1, "%s", (message,), None, extra=fields)
    assert handler.filter(record)
    return handler.format(record)


def log_request(level: int) -> None:
    """What the server does when a request's response is done: the access logger's call."""
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("10.0.0.7", 50123) if name == "peername" else default
    )
    path = "/healthz" if level == logging.DEBUG else "/messages/%C3%BCn%C3%AF?x=1"  # probes: DEBUG
    request = make_mocked_request("GET", path, transport=transport)
    logger = ProbeQuietAccessLogger(logging.getLogger("synergychat.access"), "")
    logger.log(request, web.Response(status=200), 0.001234)


def written(handler: LoopFlushedHandler, level: int) -> str:
    stream = handler.stream
    assert isinstance(stream, io.StringIO)
    stream.seek(0)
    stream.truncate()
    logging.root.handlers = [handler]  # pytest's own capture joined it for the test
    log_request(level)  # no loop runs here: written at once
    return stream.getvalue()


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_a_text_line_is_the_record_s_line(root_handler: LoopFlushedHandler, level: int) -> None:
    root_handler.setFormatter(TextFormatter())
    line = written(root_handler, level)
    expected = by_record(root_handler, level)
    assert line.endswith("\n") and line.count("\n") == 1
    assert TEXT_TIME.match(line) and TEXT_TIME.match(expected)
    assert TEXT_TIME.sub("", line, count=1) == TEXT_TIME.sub("", expected, count=1) + "\n"


@pytest.mark.parametrize("request_id", [None, "req-7"])
def test_a_json_line_is_the_record_s_line(root_handler: LoopFlushedHandler, request_id: str | None) -> None:
    root_handler.setFormatter(json_formatter("api"))
    root_handler.addFilter(RequestIdFilter())
    token = REQUEST_ID.set(request_id)
    try:
        line = json.loads(written(root_handler, logging.INFO))
        expected = json.loads(by_record(root_handler, logging.INFO))
    finally:
        REQUEST_ID.reset(token)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("time"))
    expected.pop("time")
    # The same fields, in the same order (collectors don't care; people reading do).
    assert list(line.items()) == list(expected.items())
    assert ("request_id" in line) == (request_id is not None)


def test_below_the_handler_s_level_nothing_is_written(root_handler: LoopFlushedHandler) -> None:
    root_handler.setFormatter(TextFormatter())
    root_handler.setLevel(logging.INFO)
    assert written(root_handler, logging.DEBUG) == ""


def test_any_other_listener_gets_records(root_handler: LoopFlushedHandler) -> None:
    access = logging.getLogger("synergychat.access")
    logging.root.handlers = [root_handler]  # pytest's own capture joined it for the test
    assert direct_handler(access) is root_handler
    other = logging.StreamHandler(io.StringIO())
    for add, remove in (
        (logging.root.addHandler, logging.root.removeHandler),
        (access.addHandler, access.removeHandler),
    ):
        add(other)
        try:
            assert direct_handler(access) is None
        finally:
            remove(other)
    # A formatter or filter of someone else's: the caller logs a record instead.
    root_handler.setFormatter(logging.Formatter("%(message)s"))
    assert not holds_lines(root_handler)
    assert written(root_handler, logging.INFO) == MESSAGE + "\n"  # a record, in that format
    root_handler.setFormatter(TextFormatter())
    assert holds_lines(root_handler)
    root_handler.addFilter(lambda record: True)
    assert not holds_lines(root_handler)


def test_a_handler_between_the_access_logger_and_the_root_gets_records(
    root_handler: LoopFlushedHandler,
) -> None:
    # Logging finds handlers on every logger from the access logger up to the root.
    access = logging.getLogger("synergychat.access")
    logging.root.handlers = [root_handler]
    between = logging.getLogger("synergychat")
    other = logging.StreamHandler(io.StringIO())
    between.addHandler(other)
    try:
        assert direct_handler(access) is None
    finally:
        between.removeHandler(other)
    assert direct_handler(access) is root_handler
    # A logger on the way that does not propagate: the root's handler never sees the line.
    between.propagate = False
    try:
        assert direct_handler(access) is None
    finally:
        between.propagate = True
    access.disabled = True
    try:
        assert direct_handler(access) is None
    finally:
        access.disabled = False


async def test_held_lines_are_written_at_the_end_of_the_turn_in_order(
    root_handler: LoopFlushedHandler,
) -> None:
    root_handler.setFormatter(TextFormatter())
    stream = root_handler.stream
    assert isinstance(stream, io.StringIO)
    other = logging.getLogger("synergychat.elsewhere")
    logging.root.handlers = [root_handler]
    stream.seek(0)
    stream.truncate()  # asyncio's line about its selector
    log_request(logging.INFO)
    log_request(logging.INFO)
    assert stream.getvalue() == ""  # held until the turn ends...
    other.info("after them")  # ...or another line comes: they go first
    lines = stream.getvalue().splitlines()
    assert [TEXT_TIME.sub("", line, count=1) for line in lines] == [
        f"INFO synergychat.access: {MESSAGE}",
        f"INFO synergychat.access: {MESSAGE}",
        "INFO synergychat.elsewhere: after them",
    ]
    log_request(logging.INFO)
    await asyncio.sleep(0)
    assert stream.getvalue().count("\n") == 4
    assert stream.getvalue().endswith(f"{MESSAGE}\n")


async def test_a_listener_added_while_lines_are_held_gets_records_from_the_next_turn(
    root_handler: LoopFlushedHandler,
) -> None:
    root_handler.setFormatter(TextFormatter())
    logging.root.handlers = [root_handler]
    log_request(logging.INFO)
    assert root_handler.holding
    other = logging.StreamHandler(io.StringIO())
    logging.root.addHandler(other)
    try:
        await asyncio.sleep(0)  # the turn ends: its lines are written
        assert not root_handler.holding
        log_request(logging.INFO)
        assert not root_handler.holding  # a record now, which both handlers get
        stream = other.stream
        assert isinstance(stream, io.StringIO)
        assert stream.getvalue() == MESSAGE + "\n"
    finally:
        logging.root.removeHandler(other)
