"""Roles that run a program rather than serve the chat: the autoscaling lesson's
``testcpu`` and ``testram``, and the chat load generator ``loadgen``.

They share the image and ``ROLE`` with the chat roles (roles.py) but none of
the chat's parts, so they are dispatched before roles.py is imported: the
course's test roles start in a fraction of a second and load no web framework.
Each entry point parses its own settings and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when needed: testcpu reads no settings and should start at once
    from pydantic import ValidationError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _testcpu() -> Callable[[], int]:
    from .course_roles import run_testcpu

    return run_testcpu


def _testram() -> Callable[[], int]:
    from .course_roles import run_testram
    from .settings import RamHoldSettings

    settings = RamHoldSettings()
    return lambda: run_testram(settings)


def _loadgen() -> Callable[[], int]:
    from .loadgen import run_loadgen
    from .settings import LoadgenSettings

    settings = LoadgenSettings()
    return lambda: run_loadgen(settings)


# Each entry parses its settings (raising ValidationError) and returns the program to run.
PROGRAM_ROLES: dict[str, Callable[[], Callable[[], int]]] = {
    "testcpu": _testcpu,
    "testram": _testram,
    "loadgen": _loadgen,
}


def requested_role(argv: list[str]) -> str:
    """The role asked for, as ``__main__`` reads it: ``--role``, else ``ROLE``, else ``all``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--role")
    args, _ = parser.parse_known_args(argv)
    return (args.role or os.environ.get("ROLE") or "all").strip().lower()


def invalid_setting_line(error: ValidationError) -> str:
    """One line naming the variable and the value it had, as the chat roles say it."""
    first = error.errors()[0]
    variable = str(first["loc"][0]).upper() if first["loc"] else "settings"
    value = os.environ.get(variable)
    return f"invalid setting {variable}{f'={value!r}' if value is not None else ''}: {first['msg']}"


def run_program_role(name: str) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if os.geteuid() == 0:
        # Started as root (the image's default; the course's manifests set no user):
        # run as the image's user, like every role. These roles write no data.
        from .data_ownership import prepare_data_paths
        from .settings import StartupError

        try:
            prepare_data_paths([])
        except StartupError as error:
            print(f"synergychat: {error}", file=sys.stderr)
            return 1
    try:
        program = PROGRAM_ROLES[name]()
    except Exception as error:
        from pydantic import ValidationError

        if not isinstance(error, ValidationError):
            raise
        print(f"synergychat: {invalid_setting_line(error)}", file=sys.stderr)
        return 2
    return program()
