"""Fixtures of the deployment tests: tools, rendered overlays, the image, podman.

Everything podman creates here is named ``sc-deploy-<pid>-...`` and removed when
the test ends, pass or fail; leftovers of runs whose process is gone are swept
at the start of a session. A missing tool fails the test (it never skips): the
deployment is part of what we ship. The app image is built once per session on
a local base image (scripts/build-base-image.sh), as docs/CONTAINERS.md says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OVERLAYS = ("minikube", "gke", "all-in-one")
BASE_IMAGE = os.environ.get("SYNERGYCHAT_BASE_IMAGE", "localhost/python-base:bookworm")
APP_IMAGE = "localhost/synergychat:deploy-test"
NGINX_IMAGE = "localhost/synergychat-nginx:deploy-test"
# Stands in for the official postgres:17 that the scale overlay and compose.scale.yaml name.
POSTGRES_IMAGE = "localhost/synergychat-postgres:deploy-test"
PREFIX = "sc-deploy-"
OWNER = f"{PREFIX}{os.getpid()}-"
# The image's user (Dockerfile ARG UID/GID), which the manifests must also run as.
APP_UID = 10001
FAKE_GUTENDEX_PORT = 8080


def tool(name: str) -> str:
    """The path of a tool, from the project's venv first; a missing one fails the test."""
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which(name, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail(
            f"{name} is not installed: the deployment tests need it "
            "(scripts/apt-test-packages.txt, requirements-dev.txt; scripts/test.sh installs both)",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
    cwd: Path = REPO,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args),
        check=False,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout[-4000:]}\n"
            f"stderr:\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result


# ---- Kubernetes manifests ---------------------------------------------------


def render(overlay_dir: Path) -> list[dict[str, Any]]:
    result = run([tool("kubectl"), "kustomize", str(overlay_dir)])
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay, rendered once: overlay name -> its objects."""
    return {name: render(REPO / "k8s" / "overlays" / name) for name in OVERLAYS}


# ---- HTTP polling -------------------------------------------------------------

UNVERIFIED = ssl.create_default_context()
UNVERIFIED.check_hostname = False
UNVERIFIED.verify_mode = ssl.CERT_NONE


def get_json(url: str, timeout: float = 5) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=UNVERIFIED) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, body.decode(errors="replace")


def wait_ready(url: str, timeout: float = 60, describe: Any = None, crawler: bool = False) -> Any:
    """Poll ``url`` (a /readyz) until it answers 200 (and, with ``crawler``, reaches its crawler)."""
    deadline = time.monotonic() + timeout
    last: Any = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = get_json(url, timeout=3)
            last = (status, body)
            if status == 200 and (not crawler or body["checks"]["crawler"]["ok"]):
                return body
        except OSError as error:
            last = error
        time.sleep(0.3)
    details = describe() if callable(describe) else ""
    pytest.fail(f"{url} not ready within {timeout} s; last answer: {last}\n{details}", pytrace=False)


# ---- podman ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    """The environment for podman and podman-compose: our containers.conf (runc, cgroupfs)."""
    for name in ("podman", "runc"):
        tool(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROLE", "WEB_", "API_", "CRAWLER_"))}
    env["CONTAINERS_CONF"] = str(REPO / "deploy" / "podman" / "containers.conf")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    sweep_leftovers(env)
    return env


def owner_is_gone(name: str) -> bool:
    match = re.match(rf"{PREFIX}(\d+)-", name)
    return match is not None and not Path(f"/proc/{match.group(1)}").exists()


def sweep_leftovers(env: Mapping[str, str]) -> None:
    """Remove what killed runs of these tests left behind (never a live run's)."""
    podman = tool("podman")
    listings = {
        "pod": [podman, "pod", "ls", "--format", "{{.Name}}"],
        "container": [podman, "ps", "-a", "--format", "{{.Names}}"],
        "network": [podman, "network", "ls", "--format", "{{.Name}}"],
        "volume": [podman, "volume", "ls", "--format", "{{.Name}}"],
    }
    removals = {
        "pod": [podman, "pod", "rm", "-f"],
        "container": [podman, "rm", "-f", "-t", "0"],
        "network": [podman, "network", "rm", "-f"],
        "volume": [podman, "volume", "rm", "-f"],
    }
    for kind, listing in listings.items():
        names = run(listing, env=env, check=False).stdout.split()
        stale = [name for name in names if owner_is_gone(name)]
        if stale:
            run([*removals[kind], *stale], env=env, check=False)


@contextmanager
def compose_up(project: str, files: Sequence[Path], env: Mapping[str, str], log_lines: int) -> Iterator[None]:
    """``podman-compose up -d`` of ``files`` as ``project``; after: its last log lines, ``down -v``,
    and a failure if any container or volume of the project is left."""
    compose = [tool("podman-compose"), "-p", project]
    for file in files:
        compose += ["-f", str(file)]
    try:
        # Builds the nginx image on the local base if it is missing; the others exist.
        run([*compose, "up", "-d"], env=env, timeout=300)
        yield
    finally:
        print(run([*compose, "logs", "--tail", str(log_lines)], env=env, check=False).stdout)
        run([*compose, "down", "-v", "-t", "2"], env=env, check=False, timeout=120)
        label = f"label=io.podman.compose.project={project}"
        leftovers = run(
            [tool("podman"), "ps", "-a", "--filter", label, "-q"], env=env, check=False
        ).stdout.split()
        volumes = run(
            [tool("podman"), "volume", "ls", "-q", "--filter", label], env=env, check=False
        ).stdout.split()
        assert not leftovers and not volumes, f"compose down left {leftovers} {volumes}"


@pytest.fixture(scope="session")
def base_image(podman_env: dict[str, str]) -> str:
    tool("debootstrap")
    run(["bash", str(REPO / "scripts" / "build-base-image.sh"), BASE_IMAGE], env=podman_env, timeout=600)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def app_image(podman_env: dict[str, str], base_image: str) -> str:
    """The app image, built once per session from the repo's Dockerfile on the local base."""
    podman = tool("podman")
    previous = run(
        [podman, "image", "inspect", "--format", "{{.Id}}", APP_IMAGE], env=podman_env, check=False
    )
    run(
        [podman, "build", "--build-arg", f"PYTHON_IMAGE={base_image}", "--tag", APP_IMAGE, str(REPO)],
        env=podman_env,
        timeout=600,
    )
    current = run(
        [podman, "image", "inspect", "--format", "{{.Id}}", APP_IMAGE], env=podman_env
    ).stdout.strip()
    old = previous.stdout.strip()
    if previous.returncode == 0 and old and old != current:
        # The last run's image, now untagged: don't let one pile up per run.
        run([podman, "rmi", old], env=podman_env, check=False)
    return APP_IMAGE


@pytest.fixture(scope="session")
def postgres_image(podman_env: dict[str, str], base_image: str) -> str:
    """PostgreSQL from Debian's package on the local base (deploy/podman/postgres.Containerfile).

    Nothing can be pulled here, so this stands in for the official image the scale overlay
    and compose.scale.yaml name. Built once per session; podman's layer cache makes the
    build of an unchanged file a matter of seconds.
    """
    run(
        [
            tool("podman"),
            "build",
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "--file",
            str(REPO / "deploy" / "podman" / "postgres.Containerfile"),
            "--tag",
            POSTGRES_IMAGE,
            str(REPO / "deploy" / "podman"),
        ],
        env=podman_env,
        timeout=600,
    )
    return POSTGRES_IMAGE


class Podman:
    """Runs podman for one test and removes everything it made, newest first."""

    def __init__(self, env: Mapping[str, str], image: str) -> None:
        self.env = dict(env)
        self.image = image
        self.binary = tool("podman")
        self._cleanups: list[list[str]] = []
        self.containers: list[str] = []

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run([self.binary, *args], env=self.env, check=check, timeout=timeout)

    def on_cleanup(self, *args: str) -> None:
        self._cleanups.append([self.binary, *args])

    def name(self, what: str) -> str:
        return f"{OWNER}{what}"

    def network(self, what: str = "net") -> str:
        name = self.name(what)
        self("network", "create", name)
        self.on_cleanup("network", "rm", "-f", name)
        return name

    def volume(self, what: str) -> str:
        name = self.name(what)
        self("volume", "create", name)
        self.on_cleanup("volume", "rm", "-f", name)
        return name

    def container(self, what: str, *args: str, image: str | None = None, command: Sequence[str] = ()) -> str:
        """``podman run -d`` a container of the app image (by default) named after ``what``."""
        name = self.name(what)
        self.on_cleanup("rm", "-f", "-t", "2", name)
        self("run", "-d", "--name", name, *args, image or self.image, *command)
        self.containers.append(name)
        return name

    def app(
        self,
        what: str,
        role: str | None,
        network: str,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[str, str] | None = None,
        publish: bool = True,
        alias: str | None = None,
        user: str | None = None,
    ) -> tuple[str, int | None]:
        """Run a role the hardened way: read-only root, non-root, data on volumes.

        The user is the image's (10001, as our manifests set it: the image itself
        starts as root) unless ``user`` ("UID:GID") names another.
        """
        port = free_port() if publish else None
        args = [
            "--read-only",
            "--network",
            network,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ]
        if alias:
            args += ["--network-alias", alias]
        args += ["--user", user or f"{APP_UID}:{APP_UID}"]
        if role is not None:
            args += ["-e", f"ROLE={role}"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        for volume, path in (volumes or {}).items():
            args += ["-v", f"{volume}:{path}"]
        if port is not None:
            args += ["-p", f"127.0.0.1:{port}:8080"]
        return self.container(what, *args), port

    def fake_gutendex(self, network: str) -> str:
        """The fake catalogue on ``network`` as http://gutendex:8080 (never the public service)."""
        return self.container(
            "gutendex",
            "--network",
            network,
            "--network-alias",
            "gutendex",
            "-v",
            f"{HERE / 'fake_gutendex.py'}:/fake/fake_gutendex.py:ro",
            "--entrypoint",
            "python3",
            command=["/fake/fake_gutendex.py", str(FAKE_GUTENDEX_PORT)],
        )

    def logs(self) -> str:
        parts = []
        for name in self.containers:
            result = self("logs", "--tail", "40", name, check=False)
            parts.append(f"--- logs of {name} ---\n{result.stdout}{result.stderr}")
        return "\n".join(parts)

    def close(self) -> list[str]:
        failures = []
        # Stop every container at once first (a stop waits for the app's graceful exit).
        if self.containers:
            run([self.binary, "rm", "-f", "-t", "2", *self.containers], env=self.env, check=False, timeout=60)
        for args in reversed(self._cleanups):
            result = run(args, env=self.env, check=False, timeout=60)
            if result.returncode != 0 and "no such" not in result.stderr.lower():
                failures.append(f"{' '.join(args[1:])}: {result.stderr.strip()}")
        self._cleanups.clear()
        return failures


@pytest.fixture
def podman(podman_env: dict[str, str], app_image: str) -> Iterator[Podman]:
    helper = Podman(podman_env, app_image)
    try:
        yield helper
    finally:
        print(helper.logs())
        failures = helper.close()
        assert not failures, f"cleanup failed: {failures}"


GUTENDEX_ENV = {
    "CRAWLER_SOURCE_URL": f"http://gutendex:{FAKE_GUTENDEX_PORT}",
    "CRAWLER_DELAY_SECONDS": "0",
}
