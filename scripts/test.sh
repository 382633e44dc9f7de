#!/usr/bin/env bash
# The tests: lint and type-check (ruff, mypy), then pytest (unit, sandbox end-to-end, SDK standard suite, Meltano into
# DuckDB and PostgreSQL). Extra arguments go to pytest, e.g. `bash scripts/test.sh -k mudu`.
set -euo pipefail
cd "$(dirname "$0")/.."
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
bash scripts/bootstrap.sh
bash scripts/ensure_postgres.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy tap_livestream_viewers
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
