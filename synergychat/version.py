"""The package's version, whose one source is pyproject.toml's ``[project] version``.

Read from the pyproject.toml beside the package when there is one: a source
tree (installed editable or not at all) and the image (which copies it next to
the package) both have it, and it is never stale, whereas an editable install's
metadata says what the version was when it was installed. Elsewhere (a wheel
installed into site-packages) the installed metadata says it.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "synergychat"
SOURCE_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# PEP 440's local-version form: sorts before every real release, says what it is.
UNKNOWN_VERSION = "0+unknown"


def source_tree_version(pyproject: Path = SOURCE_PYPROJECT) -> str | None:
    """The version in ``pyproject`` if it is this project's, else None."""
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    found = project.get("version") if project.get("name") == DISTRIBUTION else None
    return found if isinstance(found, str) and found else None


@cache
def version() -> str:
    if (found := source_tree_version()) is not None:
        return found
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION
