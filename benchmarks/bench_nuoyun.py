"""Benchmark: the Nuoyun stream through the real tap CLI against the local sandbox.

    .venv/bin/python benchmarks/bench_nuoyun.py --rows 200000 [--churn 0] [--out /dev/null]

Starts the sandbox in this process with ``--rows`` generated rows, runs
``tap-livestream-viewers`` as a subprocess with its Singer output going to ``--out``, and
prints wall time, records/s, calls, and the most calls the sandbox saw in any 10 seconds.
With ``--out`` a real file it also counts records, duplicates and rows lost. ``--churn k``
updates k already-served rows after every page (the moving-rows mode).
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
from sandbox import nuoyun as ny  # noqa: E402

TAP = str(Path(sys.executable).with_name("tap-livestream-viewers"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--churn", type=int, default=0, help="rows updated after every page")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--out", default="", help="Singer output file (default: a temp file, counted)")
    args = parser.parse_args()

    started = time.perf_counter()
    box = Sandbox()
    data = ny.register(box, ny.NuoyunData(rows=args.rows, churn_per_page=args.churn))
    base_url = box.start()
    print(f"sandbox: {args.rows} rows generated in {time.perf_counter() - started:.1f}s")

    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.json"
        settings = ny.tap_config(data, base_url)
        settings["page_size"] = args.page_size
        config = {
            "start_date": "2026-08-01T00:00:00Z",
            "end_date": "2026-11-05T00:00:00Z",
            "nuoyun": settings,
        }
        config_path.write_text(json.dumps(config))
        out_path = Path(args.out) if args.out else Path(tmp) / "out.jsonl"
        with out_path.open("wb") as out, (Path(tmp) / "tap.log").open("wb") as log:
            began = time.perf_counter()
            code = subprocess.call([TAP, "--config", str(config_path)], stdout=out, stderr=log)
            elapsed = time.perf_counter() - began
        if code != 0:
            print((Path(tmp) / "tap.log").read_text()[-3000:])
            raise SystemExit(f"tap failed with exit code {code}")

        calls = len(box.calls_to(ny.PATH))
        print(f"tap: {elapsed:.1f}s wall, {calls} calls, max {data.max_calls_in_period} calls in any 10 s")
        if str(out_path) != "/dev/null":
            keys = []
            with out_path.open("rb") as lines:
                for line in lines:
                    if line.startswith(b'{"type":"RECORD","stream":"nuoyun_user_durations"'):
                        record = json.loads(line)["record"]
                        keys.append((record["room_id"], record["wechat_user_space_id"]))
            unique = set(keys)
            lost = data.keys - set(data.moved) - unique
            print(
                f"records: {len(keys)} ({len(keys) / elapsed:,.0f}/s), duplicates {len(keys) - len(unique)}, "
                f"moved out of the window {len(set(data.moved))} (next window), lost {len(lost)}"
            )
    box.stop()


if __name__ == "__main__":
    main()
