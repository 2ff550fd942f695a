"""Serving a role's app: connection limits, errors in JSON, a cheap access log, a clean exit.

aiohttp's ``run_app`` serves well; what it lacks for an internet-facing role is
here, each done the way nginx does it:

- a connection cap below the open-file limit (raised to its hard limit first), so
  the process never runs out of descriptors: at the cap an idle keep-alive
  connection is closed to make room (probes keep working), and when none is
  idle the newcomer gets a canned 503 and is closed; refusals are logged once
  every few seconds, not once each;
- a request that isn't HTTP (a 9,000-byte request line, broken headers) is a JSON
  400, logged at DEBUG without a traceback: it is the client's doing;
- each request observed once, when its response is done: into the request-duration
  histogram (``metrics.py``) and as one access line (``access_log.py``);
- a request id for each request (the client's ``X-Request-ID`` if acceptable), in
  every log line written for it and in the response's ``X-Request-ID``;
- a ``Server`` header that names no versions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .access_log import ProbeQuietAccessLogger, access_log
from .event_loop import loop_name
from .http_errors import json_answers, plain_errors_as_json
from .logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_for
from .metrics import PROCESS_METRICS, ProcessMetrics

log = logging.getLogger(__name__)

SERVER_NAME = "synergychat"
# How many long-lived streams the process may hold: the connection cap less a share kept
# for everything else (probes, posts, page loads). Set on the root app by ``serve``;
# absent (no limit) in tests that build apps directly.
MAX_STREAMS = web.AppKey("max_streams", int)
# asyncio accepts up to the listen backlog's number of connections in one go, each
# taking a descriptor before the cap sees it; so the backlog stays small...
LISTEN_BACKLOG = 128
# ...and descriptors kept back from the connection cap cover it, plus the databases,
# the crawler's client connections and logs.
RESERVED_DESCRIPTORS = 2 * LISTEN_BACKLOG
REFUSAL_LOG_SECONDS = 10.0
# On shutdown: how long a keep-alive connection may still bring a request (answered,
# with "Connection: close") before the idle ones are closed.
IDLE_GRACE_SECONDS = 0.5
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 61\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nServer: synergychat\r\n\r\n"
    b'{"error": "the server is at its connection limit, try again"}\n'
)


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard one (as nginx's worker_rlimit_nofile)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft


def stream_cap(connections: int) -> int:
    return connections - max(32, connections // 10)


def connection_cap(wanted: int, open_files: int) -> int:
    """``wanted``, or less when the open-file limit can't hold that many (said in the log).

    Half the descriptors at most: refused and evicted connections hold theirs for a
    loop iteration or two after asyncio accepted them, a listen backlog at a time.
    """
    room = max(min(open_files - RESERVED_DESCRIPTORS, open_files // 2), 16)
    if wanted > room:
        log.warning(
            "MAX_CONNECTIONS=%d is more than the open-file limit (%d) allows: serving at most %d",
            wanted,
            open_files,
            room,
        )
        return room
    return wanted


class CountedWarning:
    """An event that can come thousands of times a second (refusals at a limit, failed
    accepts), logged as one WARNING every ``REFUSAL_LOG_SECONDS`` with how many there were.
    ``template`` takes the count first, then the arguments given to ``count``."""

    def __init__(self, logger: logging.Logger, template: str) -> None:
        self._logger = logger
        self._template = template
        self._count = 0
        self._last = float("-inf")

    def count(self, *args: object) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= REFUSAL_LOG_SECONDS:
            self._logger.warning(self._template, self._count, *args)
            self._last, self._count = now, 0


def report_accept_failures(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio logs every failed accept with a traceback (thousands a second when out of
    descriptors): say it with a count instead, and pass everything else on as usual."""
    failures = CountedWarning(
        log,
        "out of open files: %d connection(s) not accepted (%s);"
        " raise the open-file limit or lower MAX_CONNECTIONS",
    )

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            failures.count(context.get("exception"))
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering unparseable requests in JSON, quietly."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # Not the client's doing: a bug. Keep aiohttp's logging (with the traceback).
            self.log_exception("error handling request from %s", request.remote, exc_info=exc)
            text = "internal error"
        else:
            log.debug("bad request from %s: %s", request.remote, exc or message)
            text = f"bad request: {getattr(exc, 'message', None) or message or 'not valid HTTP'}"
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; the connection is closed instead")
        response = web.json_response({"error": text}, status=status)
        response.force_close()
        stamp(cast(web.Request, request), response)
        return response

    @property
    def waiting(self) -> bool:
        """Between requests: nothing received that isn't answered."""
        return not self._request_in_progress and not self._messages

    @property
    def idle(self) -> bool:
        """Kept alive between requests: it has been answered and waits for another."""
        return self._request_count > 0 and not self._request_in_progress and not self._messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._manager
        if isinstance(server, CappedServer) and not server.make_room():
            # Refused before aiohttp sets the connection up: nothing runs for it.
            self._force_close = True
            assert isinstance(transport, asyncio.Transport)
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)


class CappedServer(web.Server):
    """aiohttp's server, holding at most ``max_connections`` connections open, and
    shutting down without leaving a request it has read unanswered.

    aiohttp closes idle keep-alive connections the moment shutdown starts and drops
    what arrives on them after; a client that had just sent its next request gets no
    answer. Here every response from then on says ``Connection: close``, a request
    that arrives within ``IDLE_GRACE_SECONDS`` is still answered, and only then are
    the connections still idle closed.
    """

    def __init__(
        self, *args: Any, max_connections: int, metrics: ProcessMetrics | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.metrics = metrics
        self.shutting_down = False
        self._refused = CountedWarning(
            log, "%d new connection(s) refused at the connection limit (MAX_CONNECTIONS=%d)"
        )
        self._evicted = CountedWarning(
            log, "%d idle keep-alive connection(s) closed to make room (MAX_CONNECTIONS=%d)"
        )

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)

    def pre_shutdown(self) -> None:
        # Not aiohttp's close-all-idle-now: see the class's comment.
        self.shutting_down = True

    async def shutdown(self, timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        grace_ends = loop.time() + IDLE_GRACE_SECONDS
        while self._connections and loop.time() < grace_ends:
            await asyncio.sleep(0.02)
        for handler in list(self._connections):
            if isinstance(handler, GuardedRequestHandler) and handler.waiting:
                handler.close()
        await super().shutdown(timeout)

    def make_room(self) -> bool:
        """True if a new connection may be served (closing an idle one if need be)."""
        if len(self._connections) < self.max_connections or self._evict_idle():
            return True
        self._refused.count(self.max_connections)
        return False

    def _evict_idle(self) -> bool:
        # The oldest idle keep-alive connection makes room, as nginx reuses them when short.
        for handler in self._connections:
            if isinstance(handler, GuardedRequestHandler) and handler.idle:
                handler.force_close()
                self._connections.pop(handler, None)
                self._evicted.count(self.max_connections)
                return True
        return False


class ChatAppRunner(web.AppRunner):
    """An AppRunner whose server is the capped, guarded one above."""

    def __init__(
        self,
        app: web.Application,
        *,
        max_connections: int,
        shutdown_timeout: float,
        metrics: ProcessMetrics | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            app,
            handle_signals=False,
            shutdown_timeout=shutdown_timeout,
            access_log_class=ProbeQuietAccessLogger,
            access_log=access_log,
            **kwargs,
        )
        self._max_connections = max_connections
        self._metrics = metrics
        self._handler_kwargs = kwargs

    async def cleanup(self) -> None:
        await self._stop_listening()
        await super().cleanup()  # its sites' listeners are closed already

    async def _stop_listening(self) -> None:
        """Close the listening sockets, answering every connection that had reached them.

        The kernel completes connections before the server accepts them; closing a
        listener resets those, and a proxy that had already sent a POST down one can't
        safely send it elsewhere: its client gets a 502 for a request we never saw. So
        what waits is accepted right before the close (nothing runs in between) and
        served like any other connection from before the shutdown.
        """
        loop = asyncio.get_running_loop()
        waiting: list[socket.socket] = []
        for site in self.sites:
            # asyncio's Server or uvloop's (which is no asyncio.AbstractServer): both have these.
            server: Any = getattr(site, "_server", None)
            if server is None or not hasattr(server, "sockets"):
                continue
            for listener in server.sockets:
                waiting += _accept_all(listener)
            server.close()
        assert self.server is not None
        for connection in waiting:
            await loop.connect_accepted_socket(self.server, connection)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, as AppRunner does
        return CappedServer(
            serving(plain.request_handler),
            request_factory=plain.request_factory,
            loop=asyncio.get_running_loop(),
            max_connections=self._max_connections,
            metrics=self._metrics,
            access_log_class=ProbeQuietAccessLogger,
            access_log=access_log,
            **self._handler_kwargs,
        )


def _accept_all(listener: Any) -> list[socket.socket]:
    """Every connection waiting on ``listener`` (asyncio's wrapper of a listening socket)."""
    accepted: list[socket.socket] = []
    # A second socket object on the same listening socket: asyncio's wrapper won't accept.
    with socket.socket(listener.family, listener.type, fileno=os.dup(listener.fileno())) as same:
        same.setblocking(False)
        while True:
            try:
                connection, _ = same.accept()
            except (BlockingIOError, InterruptedError):
                return accepted
            except OSError as exc:  # e.g. EMFILE: what is left is reset, as before
                log.warning("could not take a waiting connection while stopping: %s", exc)
                return accepted
            connection.setblocking(False)
            accepted.append(connection)


def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """``handler`` (the app) as the server runs it for each request: with the request's id
    set (the access line, every line logged for the request and the api's calls to the
    crawler run in this task and see it), the part's errors answered as it says
    (``http_errors.JsonAnswers``), and the answer stamped."""

    async def handle(request: web.Request) -> web.StreamResponse:
        REQUEST_ID.set(request_id_for(request.headers.get(REQUEST_ID_HEADER)))
        try:
            response = await handler(request)
        except Exception as exc:
            answers = json_answers(request)
            if answers is None:  # the page: aiohttp answers it (text, or our JSON 500)
                if isinstance(exc, web.HTTPException):
                    stamp(request, exc)
                raise
            try:
                response = answers.error_answer(request, exc)
            except web.HTTPException as redirect:
                stamp(request, redirect)
                raise
        stamp(request, response)
        return response

    return handle


def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """What every answer of this server carries, done before it is sent: the part's own
    (``JsonAnswers.finish``, JSON for the plain-text errors aiohttp makes itself), then
    ``Server``, the request's id and "Connection: close" once shutting down. A handler that
    sends its own headers (a stream) stamps its response before it does."""
    if response.prepared:
        return
    if (answers := json_answers(request)) is not None:
        if answers.finish is not None:
            answers.finish(request, response)
        if response.status >= 400:
            plain_errors_as_json(request, response)
    headers = response.headers
    headers["Server"] = SERVER_NAME
    if (request_id := REQUEST_ID.get()) is not None:
        headers[REQUEST_ID_HEADER] = request_id
    server = request.protocol._manager
    if isinstance(server, CappedServer) and server.shutting_down:
        # The client must be told, or it sends its next request into a closing socket.
        response.force_close()


async def serve(
    app: web.Application, port: int, max_connections: int, shutdown_timeout: float, access_log_on: bool = True
) -> None:
    """Serve ``app`` on ``port`` until SIGTERM or SIGINT, then shut down gracefully."""
    cap = connection_cap(max_connections, raise_open_file_limit())
    app[MAX_STREAMS] = stream_cap(cap)
    if not access_log_on:
        access_log.setLevel(logging.WARNING)
    runner = ChatAppRunner(
        app, max_connections=cap, shutdown_timeout=shutdown_timeout, metrics=app.get(PROCESS_METRICS)
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    report_accept_failures(loop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, port=port, backlog=LISTEN_BACKLOG)
        await site.start()
        log.info(
            "serving on port %d (at most %d connections, %d of them streams; event loop: %s)",
            port,
            cap,
            app[MAX_STREAMS],
            loop_name(loop),
        )
        await stop.wait()
        log.info("stopping: no new connections; finishing the requests in flight")
    finally:
        await runner.cleanup()
