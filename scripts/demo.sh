#!/usr/bin/env bash
# The demo: start the provider sandbox, `meltano run` the tap into DuckDB, print what landed.
# Needs only Python 3.10+ and pip; everything else is installed into .venv and .meltano/.
set -euo pipefail
cd "$(dirname "$0")/.."
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
PORT=${SANDBOX_PORT:-8799}

echo "==> Installing the tap, Meltano and the loaders (first run takes a few minutes)"
bash scripts/bootstrap.sh
.venv/bin/meltano install > output.install.log 2>&1 || { cat output.install.log; exit 1; }
rm -f output.install.log

echo "==> Starting the provider sandbox on 127.0.0.1:$PORT"
mkdir -p output
.venv/bin/python -m sandbox --port "$PORT" --config-out output/sandbox-config.json > output/sandbox.log 2>&1 &
SANDBOX_PID=$!
trap 'kill $SANDBOX_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do grep -q ready output/sandbox.log 2>/dev/null && break; sleep 0.2; done
grep -q ready output/sandbox.log || { cat output/sandbox.log; exit 1; }

eval "$(.venv/bin/python scripts/sandbox_env.py output/sandbox-config.json)"
export TAP_LIVESTREAM_VIEWERS_START_DATE=${DEMO_START_DATE:-2026-09-01T00:00:00+08:00}
export TARGET_DUCKDB_FILEPATH="$PWD/output/warehouse.duckdb"
# The sandbox's Mudu token is counted in a ledger of the demo's own, never in yours
# (~/.local/state): the sandbox starts every demo with a fresh daily quota.
export XDG_STATE_HOME="$PWD/output/demo-state"
rm -rf "$XDG_STATE_HOME"

echo "==> meltano run tap-livestream-viewers target-duckdb"
.venv/bin/meltano run tap-livestream-viewers target-duckdb

.venv/bin/python scripts/show_landed.py output/warehouse.duckdb
