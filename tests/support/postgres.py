"""A real PostgreSQL for the tests, from Debian's ``postgresql`` package, started by the tests.

One server per test session, in a temporary folder, listening on a free port of
127.0.0.1 (and a socket in that folder), with fsync on as in production. Each
test gets a database of its own. When the tests run as root (CI does), the
server runs as the ``postgres`` user the package creates: PostgreSQL refuses to
run as root. A machine without the package fails the test that needs it; it
never skips.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port

# Debian installs each major version's programs here (the /usr/bin wrappers need a cluster).
BINARY_FOLDERS = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
# The superuser's password: the server asks for one over TCP (scram), as a real one does.
PASSWORD = "test-secret-pw"
MISSING = (
    "PostgreSQL's server programs (initdb, postgres, pg_ctl) are not in /usr/lib/postgresql/*/bin: "
    "install Debian's postgresql package (scripts/test.sh does, from scripts/apt-test-packages.txt)"
)


def find_binaries() -> Path:
    """The newest installed major version's bin folder."""
    found = [folder for folder in Path("/").glob(BINARY_FOLDERS.lstrip("/")) if (folder / "initdb").exists()]
    if not found:
        pytest.fail(MISSING, pytrace=False)

    def major(folder: Path) -> int:
        match = re.fullmatch(r"\d+", folder.parent.name)
        return int(match.group()) if match else 0

    return max(found, key=major)


class PostgresCommandFailed(Exception):
    """initdb, pg_ctl or psql exited with an error (its output and the server's log attached)."""


class PostgresServer:
    """A PostgreSQL server in ``folder``; ``stop`` and ``start`` it to simulate an outage."""

    def __init__(self, binaries: Path, folder: Path) -> None:
        self.binaries = binaries
        self.folder = folder
        self.data = folder / "data"
        self.log_path = folder / "server.log"
        self.port = free_port()
        self._user = SUPERUSER if os.geteuid() == 0 else None

    def _run(self, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.binaries / program), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=timeout, cwd=self.folder
        )
        if result.returncode != 0:
            raise PostgresCommandFailed(f"{program} failed: {result.stdout}{result.stderr}{self.log()}")
        return result

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def init(self) -> None:
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD)
        if self._user is not None:
            account = pwd.getpwnam(self._user)
            for path in (self.folder, password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(password_file),
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=on "
            "-c synchronous_commit=on -c max_connections=200"
        )
        self._run(
            "pg_ctl", "--pgdata", str(self.data), "--log", str(self.log_path), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "--pgdata", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def psql(self, database: str, sql: str) -> list[str]:
        """Run ``sql`` over the socket; each result row's single value (rows split on NUL)."""
        result = self._run(
            "psql", "-h", str(self.folder), "-p", str(self.port), "-U", SUPERUSER, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-0", "-c", sql,
        )  # fmt: skip
        return [row for row in result.stdout.rstrip("\n").split("\0") if row] if result.stdout.strip() else []

    def create_database(self) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    binaries = find_binaries()
    # Not under pytest's tmp folders: their parents are closed to the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="synergychat-pg-"))
    server = PostgresServer(binaries, folder)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop("immediate")
        except (PostgresCommandFailed, subprocess.TimeoutExpired):
            pass  # already stopped (a test's outage), or it never started
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database of this test's own."""
    return postgres_server.url(postgres_server.create_database())


def wait_for_server(server: PostgresServer, timeout: float = 30.0) -> None:
    """Until the server answers queries (after ``start``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.psql("postgres", "SELECT 1")
            return
        except PostgresCommandFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
