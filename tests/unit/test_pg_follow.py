"""The follower outlives any failure of a catch-up: one that died would end live delivery
from other replicas without a word (CI once saw asyncpg's "cannot switch to state" error,
which is no InterfaceError, kill it while PostgreSQL stopped)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from synergychat.storage.pg_follow import POLL_SECONDS, Follower


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        RuntimeError("a bug of ours"),
    ],
)
async def test_the_follower_keeps_catching_up_after_a_failure(postgres_url: str, failure: Exception) -> None:
    calls = 0
    caught_up_again = asyncio.Event()

    async def catch_up() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise failure
        caught_up_again.set()

    follower = Follower(lambda: asyncpg.connect(postgres_url), catch_up, lambda: 0)
    await follower.start()
    try:
        await asyncio.wait_for(caught_up_again.wait(), 5 * POLL_SECONDS)
    finally:
        await follower.stop()
    assert calls >= 2
