"""``python -m synergychat copy-to-postgres``: move a chat that ran on SQLite to PostgreSQL.

It copies what each pair of settings names, the same variables the roles read:

- the api's messages, ``API_DB_FILEPATH`` → ``API_DATABASE_URL`` (``--from``, ``--to``),
  ids, texts, times and the history id kept (``copy_messages.py``);
- the crawler's counts and its place in the catalogue, ``CRAWLER_DB_PATH`` →
  ``CRAWLER_DATABASE_URL`` (``--crawler-from``, ``--crawler-to``) (``copy_counts.py``).

The SQLite files are only read, never migrated or changed. Each database gets the store's
schema first, by the migrations its role runs at start. Each part is one transaction, and
the parts commit together at the end, after every part has looked and copied: a refusal,
an error or Ctrl-C leaves every database as it was. Run again, it copies only what is
missing, or nothing. Exit status 0: copied (or nothing left to copy); 1: refused or
failed, nothing changed; 2: wrong arguments; 130: interrupted, nothing changed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncpg

from ..settings import CRAWLER_DB_FILENAME, StartupError, masked_database_url, postgresql_url
from .copy_counts import PG_COUNT_MIGRATIONS, CountCopy, open_count_file
from .copy_counts import STORE_NAME as COUNT_STORE
from .copy_messages import PG_MESSAGE_MIGRATIONS, MessageCopy, open_message_file
from .copy_messages import STORE_NAME as MESSAGE_STORE
from .copy_rows import APPLICATION_NAME, Connection, CopyRefused
from .postgres import STARTUP_ERRORS, masked_detail, migrate, open_pool, open_store, where

log = logging.getLogger(__name__)

INTERRUPTED = 130  # as a shell reports a command ended by SIGINT


class Part(Protocol):
    """One store's copy (``MessageCopy``, ``CountCopy``), in a transaction the command holds."""

    what: str
    target: str

    async def prepare(self, conn: Connection) -> None: ...
    async def copy(self, conn: Connection) -> None: ...
    def summary(self, seconds: float) -> str: ...
    def after_commit(self) -> str | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Job:
    """One part to copy: from which file, to which database, and how the user named them."""

    what: str  # "messages" or "counts"
    file: Path
    source: str  # API_DB_FILEPATH='/data/messages.db' (or --from=...)
    variable: str  # API_DATABASE_URL (or --to)
    url: str


class UsageError(Exception):
    """Arguments or settings that name nothing to do, or half of it: exit status 2."""


# For each part: the source's argument and variable, the target's argument and variable.
_PAIRS = (
    ("messages", "source", "--from", "API_DB_FILEPATH", "target", "--to", "API_DATABASE_URL"),
    (
        "counts",
        "crawler_source",
        "--crawler-from",
        "CRAWLER_DB_PATH",
        "crawler_target",
        "--crawler-to",
        "CRAWLER_DATABASE_URL",
    ),
)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m synergychat copy-to-postgres",
        description="Copy a chat that ran on SQLite (its messages, and the crawler's counts) into"
        " PostgreSQL. Arguments override the variables the api and the crawler read.",
    )
    parser.add_argument(
        "--from", dest="source", metavar="FILE", help="the api's SQLite file ($API_DB_FILEPATH)"
    )
    parser.add_argument("--to", dest="target", metavar="URL", help="postgresql://... ($API_DATABASE_URL)")
    parser.add_argument(
        "--crawler-from",
        dest="crawler_source",
        metavar="FOLDER",
        help="the crawler's folder ($CRAWLER_DB_PATH)",
    )
    parser.add_argument(
        "--crawler-to", dest="crawler_target", metavar="URL", help="postgresql://... ($CRAWLER_DATABASE_URL)"
    )
    parser.add_argument(
        "--only", choices=["messages", "counts"], help="copy one part, though the other's settings are set"
    )
    return parser.parse_args(argv)


def jobs_from(args: argparse.Namespace, environ: Mapping[str, str]) -> list[Job]:
    """The parts to copy: each whose source and target are both given (an argument wins over
    its variable). A part given half by arguments (or asked for by ``--only``) is an error;
    half by variables, it is skipped with a note (an api's settings may name a crawler folder)."""
    jobs = []
    for what, source_key, source_arg, source_var, target_key, target_arg, target_var in _PAIRS:
        if args.only not in (None, what):
            continue
        source_value = getattr(args, source_key)
        target_value = getattr(args, target_key)
        source_name = source_arg if source_value is not None else source_var
        target_name = target_arg if target_value is not None else target_var
        source = (source_value if source_value is not None else environ.get(source_var, "")).strip()
        target = (target_value if target_value is not None else environ.get(target_var, "")).strip()
        if not source and not target:
            if args.only == what:
                raise UsageError(
                    f"nothing to copy: set {source_var} and {target_var} (or {source_arg}, {target_arg})"
                )
            continue
        if not source or not target:
            missing = f"{source_var} (or {source_arg})" if not source else f"{target_var} (or {target_arg})"
            present = source_name if source else target_name
            explicit = source_value is not None or target_value is not None or args.only == what
            if explicit:
                raise UsageError(
                    f"{missing} is not set, and {present} is: nothing to copy the {what} from or to"
                )
            print(f"synergychat: not copying the {what}: {missing} is not set", file=sys.stderr)
            continue
        try:
            postgresql_url(target)
        except ValueError as exc:
            raise UsageError(f"{target_name}={masked_database_url(target)!r}: {exc}") from None
        file = Path(source)
        if what == "counts" and not file.is_file():
            file = file / CRAWLER_DB_FILENAME  # CRAWLER_DB_PATH is the crawler's folder
        separator = " " if source_name.startswith("--") else "="
        jobs.append(Job(what, file, f"{source_name}{separator}{source!r}", target_name, target))
    if not jobs:
        raise UsageError(
            "nothing to copy: set API_DB_FILEPATH and API_DATABASE_URL (or --from, --to) for the messages,"
            " CRAWLER_DB_PATH and CRAWLER_DATABASE_URL (or --crawler-from, --crawler-to) for the counts"
        )
    return jobs


def open_part(job: Job) -> Part:
    """The file checked and opened read-only (a CopyRefused if it can't be copied)."""
    target, shown = where(job.variable, job.url), masked_database_url(job.url)
    if job.what == "messages":
        return MessageCopy(open_message_file(job.file, job.source), target, shown)
    return CountCopy(open_count_file(job.file, job.source), target, shown)


async def open_target(url: str, store: str, steps: Sequence[str]) -> asyncpg.Pool:
    """A pool of one connection on a database brought up to ``store``'s schema, as its role
    does at start (the same migrations, under the same lock)."""
    pool = await open_pool(url, 1, APPLICATION_NAME)
    try:
        await migrate(pool, store, steps)
    except BaseException:
        await pool.close()
        raise
    return pool


def _schema(what: str) -> tuple[str, Sequence[str], str]:
    """The store's name and migrations in PostgreSQL, and what a line calls its database."""
    if what == "messages":
        return MESSAGE_STORE, PG_MESSAGE_MIGRATIONS, "message database"
    return COUNT_STORE, PG_COUNT_MIGRATIONS, "count database"


async def copy(jobs: Sequence[Job], say: Callable[[str], None], committed: list[bool]) -> int:
    """Copy every part; say each outcome. ``committed`` becomes [True] once the copies are in."""
    parts: list[Part] = []
    pools: list[asyncpg.Pool] = []
    finished = False
    try:
        for job in jobs:  # every file checked before any database is touched
            parts.append(open_part(job))
        for job in jobs:
            store, steps, what = _schema(job.what)
            opening: Awaitable[asyncpg.Pool] = open_target(job.url, store, steps)
            pools.append(await open_store(job.variable, job.url, what, opening))
        seconds = [0.0] * len(parts)
        try:
            await _copy_in_transactions(parts, pools, jobs, seconds)
        except STARTUP_ERRORS as exc:
            # Opening a transaction, or a commit (a part's own steps say their own failures).
            detail = masked_detail(exc, *(job.url for job in jobs))
            raise CopyRefused(f"the copy failed: {detail}: run it again to finish it") from exc
        committed.append(True)
        for part, spent in zip(parts, seconds, strict=True):
            say(part.summary(spent))
        for part in parts:
            if warning := part.after_commit():
                print(f"synergychat: {warning}", file=sys.stderr)
        finished = True
        return 0
    except (CopyRefused, StartupError) as exc:
        print(f"synergychat: {exc}", file=sys.stderr)
        finished = True
        return 1
    finally:
        for part in parts:
            part.close()
        for pool in pools:
            if finished:
                await pool.close()
            else:
                # Interrupted, or a bug: no waiting on a connection in an unknown state. The
                # server rolls back whatever a closed connection had not committed.
                pool.terminate()


async def _copy_in_transactions(
    parts: Sequence[Part], pools: Sequence[asyncpg.Pool], jobs: Sequence[Job], seconds: list[float]
) -> None:
    """Every part in its own transaction, committed together at the end; ``seconds`` gets
    each part's time."""
    async with AsyncExitStack() as transactions:
        connections = []
        for pool in pools:
            conn = await transactions.enter_async_context(pool.acquire())
            await transactions.enter_async_context(conn.transaction())
            connections.append(conn)
        # Every part looks (and may refuse) before any part writes.
        for number, (part, conn, job) in enumerate(zip(parts, connections, jobs, strict=True)):
            started = time.monotonic()
            await _guarded(part, conn, part.prepare, job.url)
            seconds[number] += time.monotonic() - started
        for number, (part, conn, job) in enumerate(zip(parts, connections, jobs, strict=True)):
            started = time.monotonic()
            await _guarded(part, conn, part.copy, job.url)
            seconds[number] += time.monotonic() - started
        # Leaving the block commits every transaction (the last one first); a failed commit
        # rolls back the ones not yet committed.


async def _guarded(
    part: Part, conn: Connection, step: Callable[[Connection], Awaitable[None]], url: str
) -> None:
    """``step``, with a database failure said as one line about the part's database."""
    try:
        await step(conn)
    except STARTUP_ERRORS as exc:
        raise CopyRefused(
            f"{part.target}: the copy of the {part.what} failed: {masked_detail(exc, url)}: nothing was changed"
        ) from exc


def main(argv: Sequence[str]) -> int:
    # The migrations say what they applied; nothing else of ours logs.
    logging.basicConfig(level=logging.INFO, format="synergychat: %(message)s", stream=sys.stderr)
    args = parse_arguments(argv)
    try:
        jobs = jobs_from(args, os.environ)
    except UsageError as exc:
        print(f"synergychat: {exc}", file=sys.stderr)
        return 2
    committed: list[bool] = []
    try:
        return asyncio.run(copy(jobs, print, committed))
    except KeyboardInterrupt:
        if committed:
            print("synergychat: interrupted after the copy was committed", file=sys.stderr)
        else:
            print(
                "synergychat: interrupted: nothing was copied (the transactions were rolled back)",
                file=sys.stderr,
            )
        return INTERRUPTED
