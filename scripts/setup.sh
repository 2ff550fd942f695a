#!/usr/bin/env bash
# Create .venv and install the pinned dependencies: runtime only, or with --dev the test tools too.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=requirements.txt
[[ "${1:-}" == "--dev" ]] && requirements=requirements-dev.txt
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "SynergyChat needs Python 3.11 or newer as $python (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  if ! "$python" -m venv .venv; then
    rm -rf .venv
    echo "could not create .venv: on Debian or Ubuntu, install python3-venv first" >&2
    exit 1
  fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
# The package itself, editable (the venv runs this tree's code, never a stale copy):
# the `synergychat` command. Once: it takes ~15 s, and nothing in it changes with the
# code (dependencies come from the requirements above; --version reads pyproject.toml).
if [[ ! -x .venv/bin/synergychat ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --editable .
fi
