#!/usr/bin/env bash
# Set up everything the tests need (Debian packages, the venv) and run the whole suite:
# in-process tests first, then real processes, the browser, and containers once.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs (podman, chromium, nginx, ...): one per line.
mapfile -t packages < <(grep -v '^\s*#' scripts/apt-test-packages.txt | awk 'NF')
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  # With recommends: podman needs several of its own (networking, pause, storage) to run here.
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

scripts/setup.sh --dev

# Code health before the tests (a few seconds): ruff's findings, unformatted files and mypy's
# errors each fail the run; all three report before it stops.
lint_paths=(synergychat tests bench scripts)
health=0
.venv/bin/ruff check --quiet "${lint_paths[@]}" || health=1
.venv/bin/ruff format --check --quiet "${lint_paths[@]}" || health=1
.venv/bin/mypy || health=1
if ((health)); then
  echo "code health failed: fix the ruff/mypy findings above (ruff format FILES fixes formatting); no tests were run" >&2
  exit 1
fi

# Order matters for speed only: fast in-process folders first, slow ones last.
suites=(tests/unit tests/api tests/web tests/crawler tests/fuzz tests/schema tests/process tests/doctor tests/browser tests/deploy)
present=()
for suite in "${suites[@]}"; do [[ -d "$suite" ]] && present+=("$suite"); done
status=0
.venv/bin/python -m pytest "${present[@]}" "$@" || status=$?
if ((status == 5)); then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
