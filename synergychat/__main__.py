"""``python -m synergychat [--role web|api|crawler|all]`` (or the ``synergychat`` command).

Also ``doctor URL`` (walks a deployment's hops), ``probe URL`` (a container
healthcheck), ``copy-to-postgres`` (moves a chat's SQLite files into PostgreSQL) and
``--version``, none of which needs ROLE.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

# Shorter than Kubernetes' default 30 s grace period, so in-flight requests finish before SIGKILL.
SHUTDOWN_TIMEOUT_SECONDS = 10.0


def fail(message: str, status: int = 2) -> NoReturn:
    from .logs import fatal_line

    for handler in logging.getLogger().handlers:
        handler.flush()  # the lines before it come before it
    print(fatal_line(message), file=sys.stderr)
    raise SystemExit(status)


def run_role(argv: list[str]) -> None:
    # Imported here so the doctor starts without loading (or depending on) the roles.
    import asyncio

    from pydantic import ValidationError

    from .data_ownership import data_paths, prepare_data_paths
    from .event_loop import loop_factory
    from .logs import setup_logging
    from .roles import PORT_VARIABLES, Role, build_app, listen_port, load_settings
    from .server import serve
    from .settings import LogSettings, ServerSettings, StartupError, masked_database_url
    from .version import version

    parser = argparse.ArgumentParser(prog="python -m synergychat", description=__doc__)
    parser.add_argument("--role", help="web, api, crawler or all (default: $ROLE, else all)")
    parser.add_argument("--version", "-V", action="version", version=f"synergychat {version()}")
    args = parser.parse_args(argv)
    name = (args.role or os.environ.get("ROLE") or Role.ALL.value).strip().lower()
    if name not in {r.value for r in Role}:
        source = "--role" if args.role else "ROLE"
        choices = [*(r.value for r in Role), "testcpu", "testram", "loadgen"]
        fail(f"unknown role {name!r} ({source}): choose one of {', '.join(choices)}")
    role = Role(name)

    try:
        log_settings = LogSettings()
        settings = load_settings(role)
        server_settings = ServerSettings()
    except ValidationError as error:
        first = error.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "settings"
        value = os.environ.get(variable)
        if value is not None and variable.endswith("DATABASE_URL"):
            value = masked_database_url(value)  # it may hold a password
        fail(f"invalid setting {variable}{f'={value!r}' if value is not None else ''}: {first['msg']}")
    setup_logging(log_settings, role.value)
    port = listen_port(role, settings)
    logging.getLogger("synergychat").info("starting role %s on port %d", role.value, port)
    try:
        # Started as root (the image's default): own the data folders, then run as the image's user.
        prepare_data_paths(data_paths(settings.api, settings.crawler))
    except StartupError as error:
        fail(str(error), status=1)
    try:
        with asyncio.Runner(loop_factory=loop_factory(server_settings.event_loop)) as runner:
            runner.run(
                serve(
                    build_app(role, settings),
                    port,
                    server_settings.max_connections,
                    SHUTDOWN_TIMEOUT_SECONDS,
                    server_settings.access_log,
                )
            )
    except StartupError as error:
        fail(str(error), status=1)
    except OSError as error:
        # Almost always the port: in use, or privileged.
        fail(f"cannot listen on port {port} ({PORT_VARIABLES[role]}): {error.strerror or error}", status=1)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--version"], ["-V"]):
        from .version import version

        print(f"synergychat {version()}")
        return
    if argv[:1] == ["probe"]:
        # Every few seconds in every container: loads the HTTP client only, not the app.
        from .probe import main as probe_main

        raise SystemExit(probe_main(argv[1:]))
    if argv[:1] == ["doctor"]:
        from .data_ownership import prepare_data_paths
        from .doctor import main as doctor_main

        prepare_data_paths([])  # started as root in the image: the doctor runs as the image's user
        raise SystemExit(doctor_main(argv[1:]))
    if argv[:1] == ["copy-to-postgres"]:
        from .data_ownership import prepare_data_paths
        from .settings import StartupError
        from .storage.copy_to_postgres import main as copy_main

        try:
            # Started as root in the image: read the volume as the image's user, who owns the
            # files (a reader of a WAL file may create its -shm beside it: never root's).
            prepare_data_paths([])
        except StartupError as error:
            fail(str(error), status=1)
        raise SystemExit(copy_main(argv[1:]))
    # testcpu, testram, loadgen: programs, not chat servers; they start without loading the chat.
    from .program_roles import PROGRAM_ROLES, requested_role, run_program_role

    if (name := requested_role(argv)) in PROGRAM_ROLES:
        raise SystemExit(run_program_role(name))
    run_role(argv)


if __name__ == "__main__":
    main()
