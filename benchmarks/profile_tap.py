"""Profile the tap's per-row path: the benchmark's Nuoyun run under ``cProfile``.

    .venv/bin/python benchmarks/profile_tap.py [--rows 100000] [--top 25] [--out tap.prof] [--py-spy]

Starts the sandbox with ``--rows`` generated Nuoyun rows (as ``bench.py`` does), runs the
real CLI under ``cProfile`` with the same catalog (``viewer_sessions`` deselected), Singer
output to /dev/null, and prints the top entries by own time and by cumulative time. The
profile file can be read again with ``python -m pstats``.

cProfile's per-call cost inflates small functions; ``--py-spy`` samples the run instead
(``pip install py-spy``; no overhead in the tap) and prints each function's share of the
samples, own and inclusive.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} {where.rsplit('/', 1)[-1].split(':')[0]}"


def spy_summary(collapsed: Path, top: int) -> None:
    """Own and inclusive sample shares per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # "function (path/file.py:line)" -> "function file.py": one entry per function
        frames = [_function(frame) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    for title, counts in (("own", own), ("inclusive", inclusive)):
        print(f"\n{title} share of {total} samples")
        for frame, count in counts.most_common(top):
            print(f"{100 * count / total:6.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "tap.prof")
    parser.add_argument("--py-spy", action="store_true", help="sample with py-spy instead of cProfile")
    args = parser.parse_args()
    provider = bench.Provider(args.rows)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config_path = Path(tmp) / "config.json"
            config = {**bench.WINDOW, "nuoyun": provider.settings()}
            config_path.write_text(json.dumps(config))
            catalog_path = Path(tmp) / "catalog.json"
            catalog_path.write_text(json.dumps(bench.provider_stream_only(config_path)))
            tap = [
                "-m",
                "tap_livestream_viewers",
                "--config",
                str(config_path),
                "--catalog",
                str(catalog_path),
            ]
            if args.py_spy:
                spy = str(Path(sys.executable).with_name("py-spy"))
                command = [
                    spy,
                    "record",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(args.out),
                    "--",
                    sys.executable,
                    *tap,
                ]
            else:
                command = [sys.executable, "-m", "cProfile", "-o", str(args.out), *tap]
            with open(os.devnull, "wb") as sink, (Path(tmp) / "tap.log").open("wb") as log:
                done = subprocess.run(command, stdout=sink, stderr=log, check=False)
            if done.returncode:
                print((Path(tmp) / "tap.log").read_text()[-3000:], file=sys.stderr)
                raise SystemExit("the tap failed")
    finally:
        provider.stop()
    if args.py_spy:
        spy_summary(args.out, args.top)
        return
    stats = pstats.Stats(str(args.out))
    stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
