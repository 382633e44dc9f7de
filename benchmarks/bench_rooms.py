"""Benchmark: many small Talk-cloud rooms read through the real tap CLI, sequentially and concurrently.

    .venv/bin/python benchmarks/bench_rooms.py [--rooms 20] [--latency 0.15] [--concurrency 1,4]

(The tap runs as ``python -m tap_livestream_viewers``: from another directory with
``PYTHONPATH=<a checkout>`` it measures that checkout's version.)

Starts the sandbox in this process with ``--rooms`` rooms of one or two pages each (the common
case: many short rooms), every answer delayed by ``--latency`` seconds, and runs
``tap-livestream-viewers`` once per ``max_concurrency`` value. Prints wall time, calls, the most
requests in flight at once, and whether the RECORD/STATE output equals the first run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Sandbox  # noqa: E402
from sandbox import talkcloud as tk  # noqa: E402
from sandbox.output import comparable  # noqa: E402


def output_of(stdout: bytes) -> list[tuple]:
    """RECORD and STATE messages in order, less the clock readings (``sandbox.output``)."""
    return comparable(json.loads(line) for line in stdout.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--concurrency", default="1,4")
    args = parser.parse_args()

    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=20)
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    for index in range(args.rooms):
        data.add_room(str(500100000 + index), 150 if index % 2 else 350, start, end, seed=index)
    box = Sandbox(latency_s=args.latency)
    tk.register(box, data)
    base_url = box.start()
    config = {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "talkcloud": tk.tap_config(data, base_url),
    }
    first: list[tuple] | None = None
    status = 0
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({**config, "max_concurrency": concurrency}, handle)
        box.reset_calls()
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "tap_livestream_viewers", "--config", handle.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=os.environ,
            check=False,
        )
        elapsed = time.perf_counter() - started
        output = output_of(proc.stdout)
        first = first if first is not None else output
        same = output == first
        status |= proc.returncode != 0 or not same
        print(
            f"talkcloud, {args.rooms} rooms, {args.latency * 1000:.0f} ms per answer, max_concurrency "
            f"{concurrency}: {elapsed:.2f} s, {len(box.calls_to(tk.PATH))} calls, "
            f"peak {box.peak_in_flight(tk.PATH)} in flight, exit {proc.returncode}, "
            f"{sum(1 for m in output if m[0] == 'RECORD')} records, output same as the first run: {same}"
        )
    box.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
