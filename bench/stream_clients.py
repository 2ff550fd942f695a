"""Hold N Server-Sent-Event streams of the api open and time each message's arrival.

    python bench/stream_clients.py URL N

Prints "ready" once every stream has its hello; then, for each line "wait ID" read
from stdin, waits until every stream has seen message ID and prints the wall-clock
arrival times (one float per stream, space-separated). "quit" closes the streams.
Kept cheap on purpose (a Protocol, no parsing beyond finding the id), so that the
clients cost as little as possible of the core they share with nothing but themselves.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time

from yarl import URL


class StreamClient(asyncio.Protocol):
    def __init__(self, request: bytes, ready: asyncio.Event, waiting: dict[str, object]) -> None:
        self.request = request
        self.hello = False
        self.ready = ready
        self.buffer = b""
        self.arrivals: dict[bytes, float] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.hello and b"event: hello" in self.buffer:
            self.hello = True
        # Record every "id: N" line seen; keep only the tail that may hold a partial line.
        for line in self.buffer.split(b"\n")[:-1]:
            if line.startswith(b"id: "):
                self.arrivals.setdefault(line[4:].strip(), now)
        self.buffer = self.buffer.rsplit(b"\n", 1)[-1]


async def main(url: str, count: int) -> None:
    target = URL(url)
    assert target.host is not None and target.port is not None, f"not an http URL: {url}"
    host, port = target.host, target.port
    request = (
        f"GET {target.path_qs} HTTP/1.1\r\nHost: {target.host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    clients: list[StreamClient] = []
    transports = []
    for _ in range(count):
        transport, client = await loop.create_connection(
            functools.partial(StreamClient, request, ready, {}), host, port
        )
        clients.append(client)
        transports.append(transport)
    while not all(client.hello for client in clients):
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "quit":
            break
        wanted = line.split()[1].encode()
        deadline = time.monotonic() + 30
        while not all(wanted in client.arrivals for client in clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        print(" ".join(f"{client.arrivals.get(wanted, float('nan')):.6f}" for client in clients), flush=True)
    for transport in transports:
        transport.close()
    await asyncio.sleep(0.2)


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
