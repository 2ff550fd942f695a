"""The autoscaling lesson's test roles, drop-in for the course's testcpu and testram images.

``testcpu`` keeps every core it is given busy; ``testram`` holds ``MEGABYTES``
of memory. Neither serves HTTP (the originals don't either): a pod's CPU and
memory usage are what the lesson watches. Both wait for SIGTERM or SIGINT and
then exit 0 at once; as PID 1 of a container, a signal without a handler would
be ignored, so both block the signals and wait for them explicitly.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings (pydantic) cost testcpu a second of start-up on a busy node
    from .settings import RamHoldSettings

log = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
MIB = 2**20
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# prctl(2): have the kernel kill a worker the moment its parent dies.
PR_SET_PDEATHSIG = 1


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The container's CPU limit in cores (cgroup v2 ``cpu.max``, else v1's CFS quota); None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def cores_to_burn(affinity: int, limit: float | None) -> int:
    """One worker per core we may run on; a fractional limit (500m) still needs one whole worker."""
    if limit is None:
        return max(1, affinity)
    return max(1, min(affinity, math.ceil(limit)))


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the worker's loop checks its parent instead
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died before prctl took effect


def _burn(parent_pid: int) -> None:
    """A worker: spin, and stop if orphaned. Never returns."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS | {signal.SIGCHLD})
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_DFL)
    _die_with_parent(parent_pid)
    while True:
        for _ in range(10_000_000):
            pass
        if os.getppid() != parent_pid:
            os._exit(0)


def run_testcpu() -> int:
    affinity = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit()
    workers = cores_to_burn(affinity, limit)
    limit_text = "no CPU limit" if limit is None else f"a CPU limit of {limit:g} cores"
    log.info(
        "testcpu: keeping %d CPU core(s) busy with %d worker process(es) (%d usable, %s) until stopped",
        workers,
        workers,
        affinity,
        limit_text,
    )
    # Blocked before forking, so a signal can't slip in between; the workers unblock them.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS | {signal.SIGCHLD})
    parent_pid = os.getpid()
    children: set[int] = set()
    try:
        for _ in range(workers):
            pid = os.fork()
            if pid == 0:
                _burn(parent_pid)
            children.add(pid)
        while True:
            received = signal.sigwait(STOP_SIGNALS | {signal.SIGCHLD})
            if received in STOP_SIGNALS:
                log.info("testcpu: %s received, stopping", signal.Signals(received).name)
                return 0
            # A worker died (killed, or out of memory): fail together rather than burn less silently.
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid in children:
                children.discard(pid)
                log.error("testcpu: worker %d ended (wait status %d); stopping", pid, status)
                return 1
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def resident_bytes() -> int:
    """This process's resident set size (RSS), from /proc."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * PAGE_SIZE


def hold_memory(size: int) -> bytearray:
    """Allocate ``size`` bytes and write to every page, so the kernel really backs them (RSS grows)."""
    # bytearray(n) comes from calloc: its untouched pages are shared zero pages, counted nowhere.
    block = bytearray(size)
    pages = len(range(0, size, PAGE_SIZE))
    block[::PAGE_SIZE] = b"\x01" * pages
    return block


def run_testram(settings: RamHoldSettings) -> int:
    size = settings.megabytes * MIB
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    before = resident_bytes()
    try:
        block = hold_memory(size)
    except MemoryError:
        print(
            f"synergychat: cannot allocate MEGABYTES={settings.megabytes} MiB: the system refused the memory",
            file=sys.stderr,
        )
        return 1
    log.info(
        "testram: holding %d MiB (%d bytes), every page touched; resident memory %d MiB -> %d MiB; "
        "held until stopped",
        settings.megabytes,
        size,
        before // MIB,
        resident_bytes() // MIB,
    )
    received = signal.sigwait(STOP_SIGNALS)
    log.info("testram: %s received, releasing %d MiB", signal.Signals(received).name, len(block) // MIB)
    return 0
