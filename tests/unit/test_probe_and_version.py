"""``synergychat probe URL`` (the containers' healthcheck) and ``--version``, run as processes.

The probe is what Docker and podman run every few seconds in each container:
its exit status is the container's health, so each answer a role can give (and
a role that gives none) is tried against a small server, through the real
command. ``--version`` must work anywhere: no ROLE, no data folder.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from synergychat.doctor.http import USER_AGENT as DOCTOR_USER_AGENT
from synergychat.gutendex import USER_AGENT
from synergychat.loadgen.client import USER_AGENT as LOADGEN_USER_AGENT
from synergychat.version import UNKNOWN_VERSION, source_tree_version, version

REPO = Path(__file__).resolve().parents[2]
PYPROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


async def synergychat(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    """Run ``python -m synergychat ARGS`` from elsewhere: (status, stdout, stderr, seconds)."""
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **(env or {})}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synergychat",
        *args,
        env=environment,
        cwd="/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode(), time.monotonic() - started


async def readiness(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def not_ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "not ready", "checks": {"database": {"ok": False}}}, status=503)


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/readyz")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response({"status": "ready"})


@pytest.fixture
async def role_like_server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/readyz", readiness)
    app.router.add_get("/not-ready", not_ready)
    app.router.add_get("/moved", moved)
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize(
    "path, status, shown",
    [
        ("/readyz", 0, "200"),
        # A role that is up but not ready (its database unwritable): unhealthy, and why.
        ("/not-ready", 1, '503 {"status": "not ready", "checks": {"database": {"ok": false}}}'),
        # A probe URL that redirects is the wrong URL: reported, not followed to a 200.
        ("/moved", 1, "301"),
        ("/missing", 1, "404"),
    ],
)
async def test_probe_exit_status_is_the_answer(
    role_like_server: TestServer, path: str, status: int, shown: str
) -> None:
    url = str(role_like_server.make_url(path))
    code, out, err, _ = await synergychat("probe", url)
    assert code == status
    assert f"{url}: {shown}" in (out if status == 0 else err)


async def test_probe_gives_up_at_its_timeout(role_like_server: TestServer) -> None:
    # A hung role: the probe says so itself before the engine's timeout (5 s) kills it.
    url = str(role_like_server.make_url("/slow"))
    code, _, err, seconds = await synergychat("probe", "--timeout", "0.5", url)
    assert code == 1 and "timed out" in err
    assert seconds < 4


async def test_probe_of_a_port_nobody_listens_on() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        code, _, err, _ = await synergychat("probe", f"http://127.0.0.1:{port}/readyz")
    assert code == 1 and "no answer" in err and "refused" in err.lower()


async def test_probe_ignores_proxy_settings(role_like_server: TestServer) -> None:
    # A proxy set for the crawler's way out must not carry the probe of the container's own port.
    url = str(role_like_server.make_url("/readyz"))
    code, _, err, _ = await synergychat(
        "probe", url, env={"http_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
    )
    assert code == 0, err


async def test_probe_refuses_what_is_not_an_http_url() -> None:
    code, _, err, _ = await synergychat("probe", "127.0.0.1:8080/readyz")
    assert code == 2 and "not an http:// or https:// URL" in err


async def test_probe_loads_nothing_of_the_app() -> None:
    # It runs every few seconds in every container: no web framework, no settings.
    _, _, imports, _ = await synergychat(
        "probe", "http://127.0.0.1:1/readyz", env={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    loaded = {
        line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if line.startswith("import time:")
    }
    assert "synergychat.probe" in loaded
    heavy = {
        name for name in loaded if name.split(".")[0] in ("aiohttp", "pydantic", "pydantic_settings", "yarl")
    }
    assert not heavy and "synergychat.settings" not in loaded, sorted(heavy)


@pytest.mark.parametrize(
    "env",
    [
        {},
        # Whatever the environment says about a role or its data, --version needs neither.
        {"ROLE": "api", "API_DB_FILEPATH": "/nonexistent/folder/messages.db"},
        {"ROLE": "testcpu"},
        {"ROLE": "chef"},
    ],
)
async def test_version_needs_no_role_and_no_data(env: dict[str, str]) -> None:
    for flag in ("--version", "-V"):
        code, out, err, _ = await synergychat(flag, env=env)
        assert (code, out, err) == (0, f"synergychat {PYPROJECT_VERSION}\n", "")


async def test_version_after_a_role_option() -> None:
    code, out, _, _ = await synergychat("--role", "web", "--version")
    assert (code, out) == (0, f"synergychat {PYPROJECT_VERSION}\n")


def test_the_console_script_is_installed() -> None:
    # scripts/setup.sh installs the package (editable) into the venv: `synergychat` is a command.
    script = Path(sys.executable).parent / "synergychat"
    assert script.is_file(), f"{script} is missing: run scripts/setup.sh"
    text = script.read_text()
    assert "from synergychat.__main__ import main" in text


def test_one_version_everywhere() -> None:
    assert version() == PYPROJECT_VERSION != UNKNOWN_VERSION
    assert USER_AGENT.startswith(f"synergychat-crawler/{PYPROJECT_VERSION} ")
    assert LOADGEN_USER_AGENT.startswith(f"synergychat-loadgen/{PYPROJECT_VERSION} ")
    assert DOCTOR_USER_AGENT == f"synergychat-doctor/{PYPROJECT_VERSION}"


def test_a_pyproject_of_another_project_is_not_ours(tmp_path: Path) -> None:
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "something-else"\nversion = "9.9"\n')
    assert source_tree_version(other) is None
    assert source_tree_version(tmp_path / "missing.toml") is None
    broken = tmp_path / "broken.toml"
    broken.write_text("[project\n")
    assert source_tree_version(broken) is None
