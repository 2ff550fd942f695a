"""Several connections migrating one fresh database at the same moment (crawlers sharing a folder).

Each aiosqlite connection runs in its own thread, so these really race. Before
migrations took the write lock first, one of them would fail with "table
crawl_state already exists" or "database is locked".
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from synergychat.storage.counts import COUNT_MIGRATIONS
from synergychat.storage.database import open_database, split_statements
from synergychat.storage.messages import MESSAGE_MIGRATIONS

OPENERS = 6


@pytest.mark.parametrize("round_number", range(10))
async def test_connections_opening_a_fresh_file_together_all_migrate_it_once(
    tmp_path: Path, round_number: int
) -> None:
    path = tmp_path / f"round-{round_number}" / "crawler.sqlite3"
    connections = await asyncio.gather(*(open_database(path, COUNT_MIGRATIONS) for _ in range(OPENERS)))
    for opened in connections:
        await opened.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(COUNT_MIGRATIONS),)
        # The one-row table was created, and filled, once.
        assert conn.execute("SELECT COUNT(*) FROM crawl_state").fetchone() == (1,)


def test_migration_steps_split_into_whole_statements() -> None:
    script = """
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'z'; SELECT 1; END;
    INSERT INTO t (a) VALUES ('1');
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    # Every shipped migration splits cleanly.
    for step in (*COUNT_MIGRATIONS, *MESSAGE_MIGRATIONS):
        assert split_statements(step)
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;")
