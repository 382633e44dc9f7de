"""``tap-livestream-viewers`` and ``python -m tap_livestream_viewers``: the tap's CLI.

Two process-wide settings come first, before the tap's threads exist:

* **The garbage collector.** Importing the SDK creates a few hundred thousand objects the run
  keeps for good (modules, classes, functions). The cyclic collector is paused while they are
  made and they are then frozen (``gc.freeze``), so no collection walks them again: a run of
  100,000 rows spent about 0.05-0.1 s of CPU collecting them, much of it while importing.
  Then a young-generation collection waits for 10,000 more container objects instead of 700:
  a decoded page is about 1,500 of them and several pages wait in the read-ahead, so at 700
  the collector ran about 380 times per 100,000 rows, walking (and promoting) pages about to be
  freed anyway: 0.06-0.11 s of CPU, against 0.01 s in 6 runs at 10,000. Only garbage in
  reference cycles waits longer; everything else is still freed at once.
* **glibc's allocator.** Pages are read and decoded in worker threads. By default glibc gives
  each thread its own heap ("arena") and moves its mmap threshold as big blocks are freed,
  so page bodies (about 0.3 MB each) end up in fragmented heaps that are not given back: peak
  RSS crept up with the rows read (91 MB at 400,000 rows against 82 MB at 100,000). One arena
  and a fixed 1 MiB mmap threshold keep it flat (86 MB at 400,000 rows). A lower threshold
  (128 KiB) is flatter still but maps and unmaps every page body: three times the page
  faults and about 0.15 s more CPU per 100,000 rows. A user's own ``MALLOC_ARENA_MAX`` /
  ``MALLOC_MMAP_THRESHOLD_`` win; on a C library without ``mallopt`` nothing changes.
"""

from __future__ import annotations

import ctypes
import gc
import os

#: Young-generation threshold of the cyclic collector (Python's default is 700); the older
#: generations keep their defaults.
_YOUNG_COLLECTION_THRESHOLD = 10_000
#: ``mallopt`` parameters of glibc's ``malloc.h``, with the values set here.
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
_ALLOCATOR_SETTINGS = (
    ("MALLOC_ARENA_MAX", _M_ARENA_MAX, 1),
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, 1024 * 1024),
)


def tune_allocator() -> None:
    """Set glibc's arena count and mmap threshold (see the module docstring); else do nothing."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):  # no mallopt (not glibc): nothing to tune
        return
    for variable, parameter, value in _ALLOCATOR_SETTINGS:
        if variable not in os.environ:
            mallopt(parameter, value)


def main() -> None:
    """Tune the allocator, import the tap with the collector paused, freeze what it made, run the CLI
    with a larger young generation."""
    tune_allocator()
    gc.disable()
    try:
        from tap_livestream_viewers.tap import TapLivestreamViewers
    finally:
        gc.enable()
    gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    TapLivestreamViewers.cli()


if __name__ == "__main__":
    main()
