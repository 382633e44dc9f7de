"""``tap-livestream-viewers`` and ``python -m tap_livestream_viewers``: the tap's CLI.

Importing the SDK creates a few hundred thousand objects the run keeps for good (modules,
classes, functions). The cyclic garbage collector is paused while they are made and they
are then frozen (``gc.freeze``), so no collection walks them again: a run of 100,000 rows
spent about 0.05-0.1 s of CPU collecting them, much of it while importing.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Import the tap with the collector paused, freeze what the import made, run the CLI."""
    gc.disable()
    try:
        from tap_livestream_viewers.tap import TapLivestreamViewers
    finally:
        gc.enable()
    gc.freeze()
    TapLivestreamViewers.cli()


if __name__ == "__main__":
    main()
