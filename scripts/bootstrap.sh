#!/usr/bin/env bash
# Create .venv and install the tap with its development tools (idempotent, quiet when done).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Bytecode for the tap's own modules, as an installed wheel has: where PYTHONDONTWRITEBYTECODE is
# set, each start of the tap (hundreds in the tests) would otherwise compile them from source.
.venv/bin/python -m compileall -q tap_livestream_viewers sandbox >/dev/null
