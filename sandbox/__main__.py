"""Run the provider sandbox as its own process (the demo and the benchmarks use this).

    python -m sandbox --port 8799 --config-out output/sandbox-config.json

serves all four emulated providers on loopback with their default (demo) data, writes the
tap settings that read them to ``--config-out``, prints ``ready <base_url>`` and serves
until interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from sandbox import mudu, nuoyun, shangzhibo, talkcloud
from sandbox.server import Sandbox

PROVIDERS = {"shangzhibo": shangzhibo, "mudu": mudu, "nuoyun": nuoyun, "talkcloud": talkcloud}


def build(latency_s: float = 0.0) -> tuple[Sandbox, dict[str, object]]:
    """A sandbox with every provider registered on its default data."""
    box = Sandbox(latency_s=latency_s)
    datasets = {name: module.register(box) for name, module in PROVIDERS.items()}
    return box, datasets


def tap_settings(datasets: dict[str, object], base_url: str) -> dict[str, dict]:
    """Each provider's tap settings for the sandbox data (providers without any are left out)."""
    settings = {}
    for name, module in PROVIDERS.items():
        provider = module.tap_config(datasets[name], base_url)
        if provider is not None:
            settings[name] = provider
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--config-out", type=Path, help="write the tap settings for this sandbox here")
    args = parser.parse_args()

    box, datasets = build(args.latency)
    base_url = box.start(args.host, args.port)
    if args.config_out:
        args.config_out.parent.mkdir(parents=True, exist_ok=True)
        args.config_out.write_text(json.dumps(tap_settings(datasets, base_url), ensure_ascii=False, indent=2))
    print(f"ready {base_url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    box.stop()


if __name__ == "__main__":
    main()
