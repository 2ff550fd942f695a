"""schemathesis against the real api and crawler: every documented operation, generated
requests valid and invalid, and every check it has (tests/schema/schemathesis.toml).

The crawler reads the fake catalogue (tests/crawler/fake_gutendex.py) and the api asks it
over HTTP, as in production. Pass: no 5xx, no answer the document does not describe.
``SCHEMA_SEED`` replays a run (the seed is printed).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process.test_crawler_processes import fake_gutendex_thread, wait_for_status
from tests.support.processes import RunningRole, running_role

pytestmark = pytest.mark.process

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMA_SEED = int(os.environ.get("SCHEMA_SEED") or random.randrange(2**32))
# A service's run takes about a minute here; past this something hangs.
RUN_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningRole]]:
    tmp = tmp_path_factory.mktemp("schema")
    with fake_gutendex_thread() as gutendex:
        crawler_env = {
            "CRAWLER_DB_PATH": str(tmp / "counts"),
            "CRAWLER_SOURCE_URL": gutendex.base_url,
            "CRAWLER_DELAY_SECONDS": "0",
        }
        with running_role("crawler", tmp, crawler_env) as crawler:
            # Counts to answer with: the whole (small) catalogue read once.
            wait_for_status(f"{crawler.url}/status", lambda status: status["state"] == "waiting")
            api_env = {"API_DB_FILEPATH": str(tmp / "messages.db"), "CRAWLER_BASE_URL": crawler.url}
            with running_role("api", tmp, api_env) as api:
                yield {"api": api, "crawler": crawler}


@pytest.mark.parametrize("service", ["api", "crawler"])
def test_schemathesis_finds_nothing(
    service: str, services: dict[str, RunningRole], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    role = services[service]
    command = [
        *schemathesis_command(),
        "--config-file",
        str(CONFIG),
        "run",
        f"{role.url}/openapi.json",
        "--seed",
        str(SCHEMA_SEED),
    ]
    started = time.monotonic()
    # In a folder of its own: schemathesis may leave a cache or reports behind.
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nschemathesis on the {service}: exit {done.returncode} in {elapsed:.0f} s (SCHEMA_SEED={SCHEMA_SEED})"
        )
    assert done.returncode == 0, (
        f"schemathesis found problems in the {service} (SCHEMA_SEED={SCHEMA_SEED}):\n{done.stdout}{done.stderr}"
        f"\n--- the {service}'s log ---\n{role.log()[-5000:]}"
    )
    assert "Traceback" not in role.log(), role.log()


def schemathesis_command() -> list[str]:
    """The schemathesis installed beside this Python (the venv's): a missing one fails."""
    return [sys.executable, "-m", "schemathesis.cli"]
