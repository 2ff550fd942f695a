#!/usr/bin/env bash
# Set up and run SynergyChat for development: every role in one process (--role all),
# messages in ./data/messages.sqlite3, on http://localhost:${WEB_PORT:-8080}/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export API_DB_FILEPATH="${API_DB_FILEPATH:-data/messages.sqlite3}"
export CRAWLER_DB_PATH="${CRAWLER_DB_PATH:-data/crawler}"
# The image's memory allocator (see the Dockerfile), unless set already.
export PYTHONMALLOC="${PYTHONMALLOC-malloc}"
export GLIBC_TUNABLES="${GLIBC_TUNABLES-glibc.malloc.tcache_count=64}"
exec .venv/bin/python -m synergychat --role all "$@"
