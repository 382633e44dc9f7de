"""Benchmark: Shangzhibo activity visits through the real tap CLI against the local sandbox.

    .venv/bin/python benchmarks/bench_shangzhibo.py --rows 60000 [--page-size 1000]

Starts the sandbox in this process with ``--rows`` visits of one activity over 30 days,
runs ``tap-livestream-viewers`` as a subprocess with its Singer output in a pipe, and prints
wall time, records/s, calls, and distinct keys (every visit must arrive once per key).
The goal lives here, not in a timed test: at least 15,000 records/s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Sandbox  # noqa: E402
from sandbox import shangzhibo as szb  # noqa: E402

TAP = str(Path(sys.executable).with_name("tap-livestream-viewers"))
GOAL_RECORDS_PER_S = 15_000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()

    box = Sandbox()
    data = szb.register(
        box, szb.ShangzhiboData(activities={"A": args.rows}, users={}, activity_page_cap=args.page_size)
    )
    base_url = box.start()
    config = {
        "start_date": "2026-09-01T00:00:00Z",
        "end_date": "2026-10-01T00:00:00Z",
        "shangzhibo": {**szb.tap_config(data, base_url), "page_size": args.page_size},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    started = time.perf_counter()
    proc = subprocess.run([TAP, "--config", handle.name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    box.stop()
    keys = set()
    sessions = 0
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD" and message["stream"] == "shangzhibo_activity_visits":
            keys.add(message["record"]["visit_key"])
        elif message["type"] == "RECORD" and message["stream"] == "viewer_sessions":
            sessions += 1
    rate = len(keys) / elapsed
    print(
        f"shangzhibo_activity_visits: {len(keys)} distinct of {args.rows} rows, {len(box.calls)} calls, "
        f"{elapsed:.2f} s, {rate:,.0f} records/s (goal {GOAL_RECORDS_PER_S:,}); "
        f"viewer_sessions from the same pages: {sessions} rows"
    )
    return 0 if proc.returncode == 0 and len(keys) == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
