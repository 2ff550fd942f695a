"""ROLE=testcpu and ROLE=testram as the autoscaling lesson runs them: real processes, real CPU, real RSS."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from synergychat.course_roles import cgroup_cpu_limit, cores_to_burn
from tests.support.processes import REPO, role_env

pytestmark = pytest.mark.process

MIB = 2**20


@contextmanager
def course_role(
    role: str, tmp_path: Path, env: dict[str, str] | None = None, cpus: set[int] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path / f"{role}.log"
    with open(log_path, "wb") as log:
        # taskset (util-linux) pins the role before it starts: no preexec_fn in a forked copy of
        # this threaded test process.
        pinned = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus)))] if cpus else []
        process = subprocess.Popen(
            [*pinned, sys.executable, "-m", "synergychat", "--role", role],
            cwd=REPO,
            env=role_env(env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def log_of(tmp_path: Path, role: str) -> str:
    return (tmp_path / f"{role}.log").read_text()


def wait_for_log(tmp_path: Path, role: str, fragment: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while fragment not in (text := log_of(tmp_path, role)):
        assert time.monotonic() < deadline, f"{fragment!r} not logged within {timeout} s:\n{text}"
        time.sleep(0.05)
    return text


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ---- testcpu ---------------------------------------------------------------------------


def scheduler_seconds(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) from /proc/PID/schedstat."""
    run_ns, wait_ns, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def test_testcpu_burns_at_least_90_percent_of_a_core_within_3_s_and_stops_on_sigterm(tmp_path: Path) -> None:
    with course_role("testcpu", tmp_path) as process:
        started = time.monotonic()
        wait_for_log(tmp_path, "testcpu", "testcpu: keeping")
        working = time.monotonic() - started
        time.sleep(max(0.0, started + 2.0 - time.monotonic()))
        # One second of wall clock: from 2 s after the start (or its first line, if later) on.
        workers = children_of(process.pid)
        before, t0 = [scheduler_seconds(pid) for pid in workers], time.monotonic()
        time.sleep(1.0)
        after, wall = [scheduler_seconds(pid) for pid in workers], time.monotonic() - t0
        used = sum(b[0] - a[0] for a, b in zip(before, after, strict=True)) / wall
        waited = sum(b[1] - a[1] for a, b in zip(before, after, strict=True)) / wall
        runnable = [(b[0] - a[0] + b[1] - a[1]) / wall for a, b in zip(before, after, strict=True)]
        seen = (
            f"{len(workers)} workers started after {working:.2f} s, used {used:.2f} cores, "
            f"waited {waited:.2f} s/s for a CPU"
        )
        # On a machine shared with other work the scheduler decides how much CPU we get, and
        # how fast Python starts; what testcpu controls is that every worker always wants a CPU.
        if waited < 0.1 * len(workers):
            assert used >= 0.9 and working < 2.0, seen
        assert all(share >= 0.9 for share in runnable), f"{seen}; runnable shares {runnable}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
        assert time.monotonic() - t0 < 3
    assert "SIGTERM received" in log_of(tmp_path, "testcpu")
    assert not [pid for pid in workers if alive(pid)], "workers outlived testcpu"


def test_testcpu_sizes_its_workers_by_the_cpus_it_may_use(tmp_path: Path) -> None:
    # One CPU allowed (taskset, or a cpuset): one worker, not one per core of the machine.
    with course_role("testcpu", tmp_path, cpus={0}) as process:
        text = wait_for_log(tmp_path, "testcpu", "testcpu: keeping")
        assert "1 CPU core(s) busy with 1 worker process(es)" in text
        time.sleep(0.3)
        assert len(children_of(process.pid)) == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(5) == 0


def test_testcpu_workers_die_with_their_parent(tmp_path: Path) -> None:
    # kill -9 of the main process (an OOM kill, a lost container) must not leave orphans spinning.
    with course_role("testcpu", tmp_path) as process:
        wait_for_log(tmp_path, "testcpu", "testcpu: keeping")
        time.sleep(0.3)
        workers = children_of(process.pid)
        assert workers
        process.kill()
        process.wait()
        deadline = time.monotonic() + 5
        while [pid for pid in workers if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if alive(pid)]


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "max 100000\n"}, None),
        # a pod with limits.cpu: 1500m
        ({"cpu.max": "150000 100000\n"}, 1.5),
        # cgroup v1 (older nodes)
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_limit(tmp_path: Path, files: dict[str, str], limit: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit


@pytest.mark.parametrize(
    "affinity, limit, workers",
    [
        (8, None, 8),
        (8, 1.5, 2),  # 1500m: two workers, the kernel throttles them to 1.5 cores
        (8, 0.1, 1),  # 100m still needs one worker
        (2, 4.0, 2),  # a limit above the CPUs we may run on
    ],
)
def test_cores_to_burn(affinity: int, limit: float | None, workers: int) -> None:
    assert cores_to_burn(affinity, limit) == workers


# ---- testram ----------------------------------------------------------------------------


def held_rss(tmp_path: Path, megabytes: int) -> int:
    with course_role("testram", tmp_path, env={"MEGABYTES": str(megabytes)}) as process:
        wait_for_log(tmp_path, "testram", "every page touched", timeout=20)
        rss = rss_bytes(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
    assert "SIGTERM received" in log_of(tmp_path, "testram")
    return rss


def test_testram_rss_grows_by_megabytes(tmp_path: Path) -> None:
    # The same program holding 1 MiB and 201 MiB: the difference is what MEGABYTES added.
    for run in ("small", "large"):
        (tmp_path / run).mkdir()
    baseline = held_rss(tmp_path / "small", 1)
    large = held_rss(tmp_path / "large", 201)
    grown = (large - baseline) / MIB
    assert 180 <= grown <= 220, f"RSS grew by {grown:.0f} MiB for 200 MiB more"


@pytest.mark.parametrize(
    "env, line",
    [
        ({}, "synergychat: invalid setting MEGABYTES: Field required"),
        ({"MEGABYTES": "lots"}, "synergychat: invalid setting MEGABYTES='lots'"),
        ({"MEGABYTES": "0"}, "synergychat: invalid setting MEGABYTES='0'"),
    ],
)
def test_testram_without_a_valid_megabytes_stops_with_one_line(env: dict[str, str], line: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synergychat", "--role", "testram"],
        cwd=REPO,
        env=role_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the exit status is checked below
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr
