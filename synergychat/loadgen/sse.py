"""Read a Server-Sent Events stream from an aiohttp response, as EventSource does.

The wire format is a few lines of the HTML standard ("9.2 Server-sent
events"); the client libraries for aiohttp are unmaintained, and a browser's
behaviour (events dispatched on a blank line, ``data`` lines joined, comments
ignored) is what the load generator must mimic anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class Event:
    type: str
    data: str
    id: str | None


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Yield each event until the server ends the stream."""
    event_type, last_id = "", None
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield Event(event_type or "message", "\n".join(data), last_id)
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment: the api's keep-alive ping
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event_type = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            last_id = value
