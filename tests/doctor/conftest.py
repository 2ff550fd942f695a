"""Fixtures for the doctor's tests: the doctor run as a real command, stand-in
servers, and Debian's nginx as a plain process for the proxy shapes."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.support.processes import REPO, free_port, role_env

# Debian installs nginx in /usr/sbin, which a non-root PATH may lack.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
OPENSSL = shutil.which("openssl")
DOCTOR_TIMEOUT = "5"


@dataclass
class DoctorRun:
    code: int
    out: str
    err: str

    @property
    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.out)  # the doctor's --json: one object
        return report

    def check(self, name: str) -> dict[str, Any]:
        checks: list[dict[str, Any]] = self.report["checks"]
        (found,) = [check for check in checks if check["name"] == name]
        return found

    def statuses(self) -> dict[str, str]:
        return {check["name"]: check["status"] for check in self.report["checks"]}


DoctorRunner = Callable[..., Awaitable[DoctorRun]]


@pytest.fixture
def doctor() -> DoctorRunner:
    """Run ``python -m synergychat doctor ARGS...`` as a user would, without blocking the
    event loop (the stand-in servers of the test run on it)."""

    async def run(*args: str) -> DoctorRun:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "synergychat",
            "doctor",
            "--timeout",
            DOCTOR_TIMEOUT,
            *args,
            cwd=REPO,
            env=role_env({}),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode is not None
        run_ = DoctorRun(process.returncode, out.decode(), err.decode())
        # Whatever happened, the doctor explains it: a traceback is always a bug.
        assert "Traceback" not in run_.err, run_.err
        return run_

    return run


Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
def serve(aiohttp_server: AiohttpServer) -> Serve:
    """Serve a stand-in app on 127.0.0.1; returns its base URL without a trailing slash."""

    async def start(app: web.Application) -> str:
        server = await aiohttp_server(app)
        return f"http://127.0.0.1:{server.port}"

    return start


@dataclass
class Nginx:
    http_port: int
    https_port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}: {log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nginx did not listen on {port}")


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as the nginx shape of the course uses."""
    if OPENSSL is None:
        pytest.skip("openssl is not installed (scripts/apt-test-packages.txt lists it)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Start Debian's nginx as a plain process with the given ``location`` blocks.

    ``locations`` goes inside the server on a free port. With ``tls=(cert, key)`` that
    server speaks https and a second plain-http server redirects to it, like the
    course's nginx shape (80 → 443).
    """
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/apt-test-packages.txt lists it)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(locations: str, tls: tuple[Path, Path] | None = None) -> Nginx:
        folder = tmp_path / f"nginx-{len(processes)}"
        folder.mkdir()
        http_port = free_port()
        https_port = free_port() if tls else None
        if tls:
            cert, key = tls
            servers = f"""
  server {{
    listen 127.0.0.1:{http_port};
    return 301 https://$host:{https_port}$request_uri;
  }}
  server {{
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
{locations}
  }}"""
        else:
            servers = f"""
  server {{
    listen 127.0.0.1:{http_port};
{locations}
  }}"""
        temp = "\n".join(
            f"  {kind}_temp_path {folder}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"""worker_processes 1;
pid {folder}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
{temp}
{servers}
}}
"""
        )
        log = folder / "error.log"
        process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(log), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        _wait_for_port(http_port, process, log)
        if https_port:
            _wait_for_port(https_port, process, log)
        return Nginx(http_port, https_port)

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def nginx_proxy_pass(prefix: str, upstream: str) -> str:
    """A ``location`` that passes ``prefix`` to ``upstream``, stripping it when both end in "/"
    (the course's ``location /api/ { proxy_pass http://api:8080/; }``), streams unbuffered."""
    return f"""    location {prefix} {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}"""
