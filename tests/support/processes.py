"""Start real ``python -m synergychat`` processes for tests, and stop them.

Every process listens on a free port on this machine, gets its own environment
(nothing inherited from the developer's shell but PATH and the like), and is
stopped with SIGTERM (then SIGKILL) when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Variables of ours that must not leak from the caller's environment into a test process.
OWN_PREFIXES = ("ROLE", "WEB_", "API_", "CRAWLER_", "EVENT_LOOP")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningRole:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wait_until_up(
    url: str, process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None, timeout: float = 20.0
) -> None:
    """Poll ``url`` until it answers anything but a connection error."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.1)


def role_env(env: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    base["PYTHONUNBUFFERED"] = "1"
    base.update(env)
    return base


@contextmanager
def running_role(
    role: str,
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    wait_path: str = "/healthz",
    open_files: int | None = None,
) -> Iterator[RunningRole]:
    """Run ``python -m synergychat --role ROLE`` on a free port until the block ends.

    The port variable of the role is set for you; ``wait_path`` is polled until
    it answers (for ``all`` and ``web`` pass ``/`` or ``/api/healthz``).
    ``open_files`` sets the process's open-file limit, soft and hard (as ``ulimit -n``).
    """
    port = port or free_port()
    port_variable = {"web": "WEB_PORT", "all": "WEB_PORT", "api": "API_PORT", "crawler": "CRAWLER_PORT"}[role]
    full_env = role_env({port_variable: str(port), **(env or {})})
    log_path = tmp_path / f"{role}-{port}.log"
    # prlimit (util-linux) sets the limit before the role starts, which reads it at once; a
    # preexec_fn would do it in a forked copy of this threaded test process (unsafe).
    limit = [] if open_files is None else ["prlimit", f"--nofile={open_files}:{open_files}", "--"]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [*limit, sys.executable, "-m", "synergychat", "--role", role],
            cwd=REPO,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = RunningRole(process, port, log_path)
    try:
        wait_until_up(running.url + wait_path, process)
        yield running
    except BaseException:
        print(running.log(), file=sys.stderr)
        raise
    finally:
        running.stop()
