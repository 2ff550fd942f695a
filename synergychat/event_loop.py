"""Which event loop a role runs on: uvloop (libuv's loop, the usual choice for aiohttp
in production) unless ``EVENT_LOOP=asyncio`` asks for the standard library's.

uvloop answers a small request in less CPU time than asyncio's own loop (bench/api_load.py
measures both); everything here runs the same on either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

log = logging.getLogger(__name__)

EventLoopName = Literal["uvloop", "asyncio"]


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for ``asyncio.Runner``: uvloop's loop, or asyncio's when asked for (or when
    uvloop can't be imported on this platform, which is said in the log)."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            log.warning("EVENT_LOOP=uvloop, but uvloop can't be imported (%s): using asyncio's loop", exc)
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> EventLoopName:
    """Which of the two ``loop`` is (for the start-up line)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
