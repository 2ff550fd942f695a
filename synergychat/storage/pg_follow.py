"""Hearing of other replicas' commits: LISTEN on one dedicated connection, then read by id.

A notification only says "there is something newer than N": what is new is always
read from the database (``catch_up``), so a notification that is lost (while the
connection is down, or between its loss and a new LISTEN) costs latency, never a
message. The follower reads after every (re)connection, after every notification
of an id it hasn't seen, and once every ``POLL_SECONDS`` regardless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from .postgres import DATABASE_ERRORS
from .store import StoreUnavailable

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "synergychat_messages"
# The safety net: how late a message can be on a replica whose notifications are lost.
POLL_SECONDS = 1.0
# How often a broken LISTEN connection is tried again.
RECONNECT_SECONDS = 0.5
# A LISTEN connection that doesn't answer this fast is taken for dead and replaced.
PING_TIMEOUT_SECONDS = 2.0

_FOLLOW_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, StoreUnavailable)


class Follower:
    """Calls ``catch_up`` whenever another process may have committed messages."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        catch_up: Callable[[], Awaitable[None]],
        known_id: Callable[[], int],
    ) -> None:
        self._connect = connect
        self._catch_up = catch_up
        self._known_id = known_id
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing: str | None = None

    async def start(self) -> None:
        """Listen now (a database that refuses this connection fails the start), then follow."""
        self._conn = await self._listen()
        self._task = asyncio.create_task(self._follow_forever(), name="synergychat-message-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()  # no goodbye needed: LISTEN ends with the session

    def wake(self) -> None:
        self._wake.set()

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def _listen(self) -> asyncpg.Connection:
        conn = await self._connect()
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            # Woken when it breaks, to reconnect and read what was missed at once.
            conn.add_termination_listener(lambda _conn: self._wake.set())
        except BaseException:
            conn.terminate()
            raise
        return conn

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        # This process's own commits come back too; they are in memory already.
        newest = str(payload)
        if not newest.isdigit() or int(newest) > self._known_id():
            self._wake.set()

    async def _follow_forever(self) -> None:
        while True:
            # Cleared before reading: a notification during the read wakes the next round.
            self._wake.clear()
            problem: BaseException | None = None
            if not self.listening:
                try:
                    # LISTEN first, then read: nothing committed in between is missed.
                    self._conn = await self._listen()
                except _FOLLOW_ERRORS as exc:
                    problem = exc
            try:
                # Read even while LISTEN is broken: then polling is all there is.
                await self._catch_up()
            except _FOLLOW_ERRORS as exc:
                problem = problem or exc
            except Exception as exc:  # a follower that died would silently end live delivery
                log.exception("reading other replicas' messages failed unexpectedly (retrying)")
                problem = problem or exc
            if problem is not None:
                self._note_failure(problem)
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            self._note_recovery()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except TimeoutError:
                await self._ping()

    async def _ping(self) -> None:
        """A silently dead LISTEN connection (a dropped network) hears nothing, and says nothing."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return
        try:
            await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT_SECONDS)
        except _FOLLOW_ERRORS:
            conn.terminate()

    def _note_failure(self, exc: BaseException) -> None:
        if self._failing is None:
            log.warning("not hearing of new messages from the database (retrying): %s", exc or repr(exc))
        self._failing = str(exc)

    def _note_recovery(self) -> None:
        if self._failing is not None:
            log.info("hearing of new messages from the database again")
            self._failing = None
