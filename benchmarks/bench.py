"""The benchmark: the tap against a bare loop over the same pages, memory, calls and latency.

    .venv/bin/python benchmarks/bench.py [--rows 100000] [--big-rows 1000000] [--quick]
                                         [--only throughput,memory,latency] [--repeat 5]

Starts the provider sandbox in this process (Nuoyun, the provider with the most rows per
call) and prints, in one run on the same data:

* **throughput**: the tap's records/s (the real CLI, Singer output to /dev/null) and a bare
  loop's (``requests`` + ``orjson``, the same pages, the same RECORD lines to /dev/null),
  and their ratio (target: at least 0.5);
* **calls**: the calls the tap made against the minimum its page size allows (target 1.00);
* **memory**: the tap's peak RSS at ``--rows`` and at ``--big-rows`` (target: within 15%,
  under 150 MB);
* **latency**: wall time with 150 ms added to every answer, for the tap at concurrency 1
  and at its default, and for the sequential bare loop (target: the default at least 3x
  faster than the bare loop).

It writes ``benchmarks/results/latest.json`` and ``benchmarks/results/latest.svg`` (the
chart the README shows). Ratios, not absolute times, are the targets: these machines are
shared and noisy, so throughput and latency are measured ``--repeat`` times, alternated,
and the median run is reported (each run's ratio is listed beside it). ``--quick`` uses
small sizes (a smoke run, not a measurement). ``--only`` measures some parts
(``throughput`` includes calls); the others are kept from the previous ``latest.json`` in
``--out``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import typing as t
from datetime import datetime, timezone
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Sandbox  # noqa: E402
from sandbox import nuoyun as ny  # noqa: E402

TAP = str(Path(sys.executable).with_name("tap-livestream-viewers"))
RESULTS = ROOT / "benchmarks" / "results"
STREAM = "nuoyun_user_durations"
WINDOW = {"start_date": "2026-08-01T00:00:00Z", "end_date": "2026-11-05T00:00:00Z"}
LATENCY_S = 0.150


class Provider:
    """A sandbox serving ``rows`` generated Nuoyun rows (optionally with latency)."""

    def __init__(self, rows: int, latency_s: float = 0.0) -> None:
        self.box = Sandbox(latency_s=latency_s)
        self.data = ny.register(self.box, ny.NuoyunData(rows=rows))
        self.base_url = self.box.start()
        self.rows = rows

    def settings(self) -> dict[str, t.Any]:
        return ny.tap_config(self.data, self.base_url)

    def wait_for_room(self) -> None:
        """Wait until a run's calls fit in Nuoyun's rate window (1000 calls in 10 s).

        Runs follow each other faster than the window turns over: without this, the bare loop
        (which has no rate limiter) is refused once the runs before it used the window up.
        """
        time.sleep(self.data.seconds_until_room_for(math.ceil(self.rows / ny.MAX_PAGE_SIZE) + 1))

    def calls(self) -> int:
        return len(self.box.calls_to(ny.PATH))

    def stop(self) -> None:
        self.box.stop()


def supported_settings() -> set[str]:
    """Top-level settings this version of the tap knows (``--about``)."""
    out = subprocess.run([TAP, "--about", "--format=json"], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout)["settings"]["properties"])


def provider_stream_only(config_path: Path) -> dict:
    """The catalog with ``viewer_sessions`` deselected: the tap writes the bare loop's RECORD lines."""
    out = subprocess.run([TAP, "--config", str(config_path), "--discover"], capture_output=True, check=True)
    catalog = json.loads(out.stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] == STREAM
    return catalog


def high_water_kib(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``), in KiB; 0 once it is gone.

    Read from /proc, not from ``wait4``'s ``ru_maxrss``: that one also counts the memory the
    child shared with this process between fork and exec, and this process holds the
    sandbox's generated rows (1.7 GB at a million rows), not the tap's.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def run_tap(provider: Provider, extra: dict[str, t.Any] | None = None) -> dict[str, float]:
    """One tap run to /dev/null: wall seconds, records, calls and peak RSS (MB) of the process."""
    provider.wait_for_room()
    provider.box.reset_calls()
    with tempfile.TemporaryDirectory() as tmp:
        config = {**WINDOW, "nuoyun": provider.settings(), **(extra or {})}
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))
        log_path = Path(tmp) / "tap.log"
        catalog_path = Path(tmp) / "catalog.json"
        catalog_path.write_text(json.dumps(provider_stream_only(config_path)))
        args = [TAP, "--config", str(config_path), "--catalog", str(catalog_path)]
        with open(os.devnull, "wb") as sink, log_path.open("wb") as log:
            cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            process = subprocess.Popen(args, stdout=sink, stderr=log)
            peak_kib = 0
            while process.poll() is None:
                peak_kib = max(peak_kib, high_water_kib(process.pid))
                time.sleep(0.02)
            elapsed = time.perf_counter() - began
            cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if process.returncode != 0:
            print(log_path.read_text()[-3000:], file=sys.stderr)
            raise SystemExit("the tap failed: see its log above")
    return {
        "seconds": elapsed,
        "records": provider.rows,
        "records_per_s": provider.rows / elapsed,
        "calls": provider.calls(),
        "peak_rss_mb": peak_kib / 1024,
        # The tap's own CPU time: wall time less waiting for the provider (on a shared machine).
        "cpu_seconds": cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime,
    }


def run_bare_loop(provider: Provider, page_size: int = ny.MAX_PAGE_SIZE) -> dict[str, float]:
    """What a hand-written script does: page by page, decode, write RECORD lines to /dev/null."""
    provider.wait_for_room()
    settings = provider.settings()
    session = requests.Session()
    session.headers.update(settings.get("headers") or {})
    url = provider.base_url + ny.PATH
    start = int(datetime.fromisoformat(WINDOW["start_date"].replace("Z", "+00:00")).timestamp())
    end = int(datetime.fromisoformat(WINDOW["end_date"].replace("Z", "+00:00")).timestamp())
    records = 0
    began = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        page = 1
        while True:
            body = {
                "page": page,
                "page_size": page_size,
                "sort": "asc",
                "update_time_start": start,
                "update_time_end": end,
            }
            answer = orjson.loads(session.post(url, json=body, timeout=60).content)
            rows = answer["data"]["list"]
            for row in rows:
                sink.write(orjson.dumps({"type": "RECORD", "stream": STREAM, "record": row}) + b"\n")
            records += len(rows)
            if len(rows) < page_size or page * page_size >= int(answer["data"]["total"]):
                break
            page += 1
    elapsed = time.perf_counter() - began
    return {"seconds": elapsed, "records": records, "records_per_s": records / elapsed}


Run = t.TypeVar("Run")


def median_run(runs: list[Run], figure: t.Callable[[Run], float]) -> Run:
    """The run whose ``figure`` is the median (the upper one of an even count)."""
    return sorted(runs, key=figure)[len(runs) // 2]


def measure(args: argparse.Namespace) -> dict[str, t.Any]:
    settings = supported_settings()
    concurrency_setting = "max_concurrency" if "max_concurrency" in settings else None
    result: dict[str, t.Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "rows": args.rows,
        "big_rows": args.big_rows,
    }

    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    if args.only & {"throughput", "memory"}:
        provider = Provider(args.rows)
        try:
            # Tap and bare loop alternated, ``--repeat`` times: the median pair is reported.
            for _ in range(args.repeat if "throughput" in args.only else 1):
                tap = run_tap(provider)
                pairs.append((tap, run_bare_loop(provider) if "throughput" in args.only else {}))
        finally:
            provider.stop()
        # The peak RSS moves by a few MB (how many decoded pages wait for the reader at the
        # end), so the median run's peak is the one reported.
        tap = median_run([one for one, _ in pairs], lambda run: run["peak_rss_mb"])
    if "throughput" in args.only:
        ratios = [one["records_per_s"] / bare["records_per_s"] for one, bare in pairs]
        one, bare = median_run(pairs, lambda pair: pair[0]["records_per_s"] / pair[1]["records_per_s"])
        minimum = math.ceil(args.rows / ny.MAX_PAGE_SIZE)
        result["throughput"] = {
            "tap_records_per_s": round(one["records_per_s"]),
            "bare_loop_records_per_s": round(bare["records_per_s"]),
            "ratio": round(one["records_per_s"] / bare["records_per_s"], 2),
            "ratios_of_runs": [round(ratio, 2) for ratio in ratios],
            "tap_cpu_s": round(one["cpu_seconds"], 2),
        }
        made = max(one["calls"] for one, _ in pairs)  # the most any run made
        result["calls"] = {"made": made, "minimum": minimum, "ratio": round(made / minimum, 2)}

    if "memory" in args.only:
        big = Provider(args.big_rows)
        try:
            big_tap = run_tap(big)
        finally:
            big.stop()
        result["memory"] = {
            "peak_rss_mb_small": round(tap["peak_rss_mb"], 1),
            "peak_rss_mb_small_runs": [round(one["peak_rss_mb"], 1) for one, _ in pairs],
            "peak_rss_mb_big": round(big_tap["peak_rss_mb"], 1),
            "growth": round(big_tap["peak_rss_mb"] / tap["peak_rss_mb"] - 1, 3),
            "tap_records_per_s_big": round(big_tap["records_per_s"]),
            "tap_cpu_s_big": round(big_tap["cpu_seconds"], 2),
        }

    if "latency" not in args.only:
        return result
    slow = Provider(args.latency_rows, latency_s=LATENCY_S)
    runs: list[dict[str, t.Any]] = []
    try:
        for _ in range(args.repeat):  # alternated, the median run by speed-up reported
            run: dict[str, t.Any] = {"rows": args.latency_rows, "latency_ms": int(LATENCY_S * 1000)}
            run["bare_loop_s"] = round(run_bare_loop(slow)["seconds"], 2)
            if concurrency_setting:
                run["tap_concurrency_1_s"] = round(run_tap(slow, {concurrency_setting: 1})["seconds"], 2)
            run["tap_default_s"] = round(run_tap(slow)["seconds"], 2)
            run["speedup_over_bare_loop"] = round(run["bare_loop_s"] / run["tap_default_s"], 2)
            if not concurrency_setting:
                run["note"] = "this version of the tap has no max_concurrency setting: it pages sequentially"
            runs.append(run)
    finally:
        slow.stop()
    latency = median_run(runs, lambda run: run["speedup_over_bare_loop"])
    latency["speedups_of_runs"] = [run["speedup_over_bare_loop"] for run in runs]
    result["latency"] = latency
    return result


def chart(result: dict[str, t.Any]) -> str:
    """A small SVG bar chart of the ratios against their targets."""
    bars = [
        ("throughput vs bare loop", result["throughput"]["ratio"], 0.5, "≥"),
        ("calls vs minimum", result["calls"]["ratio"], 1.0, "="),
        ("RSS growth 10x rows", 1 + result["memory"]["growth"], 1.15, "≤"),
        ("speed-up at 150 ms", result["latency"]["speedup_over_bare_loop"], 3.0, "≥"),
    ]
    width, row, left, scale = 640, 44, 200, 100
    height = row * len(bars) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="10" y="20" font-weight="bold">tap-livestream-viewers benchmark, {result["when"]}</text>',
    ]
    for index, (label, value, target, sense) in enumerate(bars):
        y = 36 + index * row
        met = {"≥": value >= target, "≤": value <= target, "=": abs(value - target) < 1e-9}[sense]
        colour = "#2e7d32" if met else "#c62828"
        parts.append(f'<text x="10" y="{y + 18}">{label}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{min(value, 4) * scale:.0f}" height="20" fill="{colour}"/>'
        )
        target_x = left + min(target, 4) * scale
        parts.append(
            f'<line x1="{target_x:.0f}" x2="{target_x:.0f}" y1="{y}" y2="{y + 28}" stroke="#000" '
            'stroke-dasharray="3,2"/>'
        )
        parts.append(
            f'<text x="{left + min(value, 4) * scale + 6:.0f}" y="{y + 18}">{value:.2f} '
            f"(target {sense} {target})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--latency-rows", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--repeat", type=int, default=5, help="alternated runs of throughput and latency (median reported)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--only", default="throughput,memory,latency", help="parts to measure, comma-separated"
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows, args.latency_rows, args.repeat = 5_000, 10_000, 2_000, 1
    # The tap as a user's install runs it: with its modules' bytecode (pip compiles a wheel's).
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "tap_livestream_viewers"), quiet=1)
    args.only = set(args.only.split(","))
    previous = args.out / "latest.json"
    result = json.loads(previous.read_text()) if previous.exists() else {}
    result.update(measure(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if all(part in result for part in ("throughput", "calls", "memory", "latency")):
        (args.out / "latest.svg").write_text(chart(result))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
