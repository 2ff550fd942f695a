"""Connecting to PostgreSQL and bringing a store's schema up to date (shared by every store).

The PostgreSQL counterpart of ``database.py``. Every store opens a pool with
:func:`open_pool` and brings its tables up to date with :func:`migrate`, which
applies the numbered steps the database has not seen yet. Several stores (and
several replicas of each) may share one database, so the version is kept per
store in ``schema_versions``, and steps are applied under an advisory lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import asyncpg

from ..settings import StartupError, masked_database_url

log = logging.getLogger(__name__)

# A database that doesn't answer at start is an error, not a hang (Kubernetes restarts us).
CONNECT_TIMEOUT_SECONDS = 5.0
# No statement may keep a request (or the writer) waiting longer than this.
COMMAND_TIMEOUT_SECONDS = 5.0
# Advisory lock keys (one 64-bit space per database, shared with anything else in it):
# the ASCII of "synchat" and a letter, so they are unlikely to collide with others'.
MIGRATION_LOCK = int.from_bytes(b"synchatM", "big")
MESSAGE_ID_LOCK = int.from_bytes(b"synchatI", "big")

# What a database that is down, unreachable or refusing raises through asyncpg.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection the server dropped mid-operation can leave asyncpg's protocol in a state
    # it refuses to leave ("cannot switch to state ..."): a database failure like the others.
    asyncpg.InternalClientError,
)


StoreT = TypeVar("StoreT")
# What opening a store may raise: the database's errors, and asyncpg's for a bad URL.
STARTUP_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, ValueError, RuntimeError)


def text(value: str) -> str:
    """PostgreSQL's text holds no NUL character, which a catalogue's JSON or a SQLite file may:
    U+FFFD in its place."""
    return value.replace("\x00", "\ufffd")


def where(variable: str, url: str) -> str:
    """How a line names a database: the variable or argument, and the URL without its password."""
    return f"{variable}={masked_database_url(url)}"


async def open_store(variable: str, url: str, what: str, opening: Awaitable[StoreT]) -> StoreT:
    """Await ``opening`` (a store on ``url``); a failure is one StartupError naming
    ``variable``, with the password masked in the URL and in the driver's message."""
    try:
        return await opening
    except STARTUP_ERRORS as exc:
        raise StartupError(
            f"{where(variable, url)}: cannot open the {what}: {masked_detail(exc, url)}"
        ) from exc


def masked_detail(exc: BaseException, *urls: str) -> str:
    """The driver's message about ``exc`` with the passwords of ``urls`` shown as ***: it may
    quote the URL it was given."""
    detail = str(exc) or type(exc).__name__
    for url in urls:
        userinfo = url.partition("://")[2].rpartition("@")[0]
        passwords = [userinfo.partition(":")[2], *re.findall(r"(?i)[?&]password=([^&]*)", url)]
        for password in filter(None, passwords):
            detail = detail.replace(password, "***")
    return detail


async def open_pool(url: str, size: int, application_name: str) -> asyncpg.Pool:
    """A pool of up to ``size`` connections; one is opened now, so a wrong URL, password or
    database fails here, at start."""
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        timeout=CONNECT_TIMEOUT_SECONDS,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        server_settings={"application_name": application_name},
    )


async def connect(url: str, application_name: str) -> asyncpg.Connection:
    """One connection outside any pool (a LISTEN connection must stay the same one)."""
    return await asyncpg.connect(
        url,
        timeout=CONNECT_TIMEOUT_SECONDS,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        server_settings={"application_name": application_name},
    )


async def migrate(pool: asyncpg.Pool, store: str, steps: Sequence[str]) -> int:
    """Apply ``store``'s schema steps after the version it records, each in a transaction.

    N replicas may start together on a fresh database: the session-level advisory lock
    lets one migrate while the others wait, and the version is read again under it, so
    whoever comes second sees the first one's steps and applies none twice. The lock
    ends with the session, so a replica killed while migrating can't leave it held.
    """
    async with pool.acquire() as conn:
        # Migrations may take longer than a request may (an index on a big table).
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK, timeout=None)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            version = await conn.fetchval("SELECT version FROM schema_versions WHERE store = $1", store) or 0
            if version > len(steps):
                raise RuntimeError(
                    f"the {store} schema in the database is version {version}, "
                    f"newer than this program knows ({len(steps)})"
                )
            for number, step in enumerate(steps[version:], start=version + 1):
                async with conn.transaction():
                    await conn.execute(step, timeout=None)  # no arguments: several statements may run
                    await conn.execute(
                        "INSERT INTO schema_versions (store, version) VALUES ($1, $2)"
                        " ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                        store,
                        number,
                    )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    if version < len(steps):
        log.info("%s schema migrated from version %d to %d", store, version, len(steps))
    return len(steps)
