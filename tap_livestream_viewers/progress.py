"""Counting what a run did, for the progress lines and the run summary a scheduler's log shows.

The base stream counts rows written, pages read and calls sent (retries included) in one
``Counts`` per stream; a window or a partition reports the difference between two snapshots.
The SDK's own METRIC lines say the same in JSON, one line per request and per record batch;
``metrics_log_level`` (default ``WARNING``: off) sets whether they show.
"""

from __future__ import annotations

import logging
import typing as t
from collections import Counter
from dataclasses import dataclass, field, replace

#: Outcomes of a partition: read to the end, stopped for today (a spent budget), failed.
DONE, STOPPED, FAILED = "done", "stopped", "failed"

#: The logger the SDK writes its METRIC lines to (``singer_sdk.metrics``).
METRICS_LOGGER = "singer_sdk.metrics"


@dataclass
class Counts:
    """Rows written, pages read (answers that passed validation) and calls sent."""

    rows: int = 0
    pages: int = 0
    calls: int = 0

    def snapshot(self) -> Counts:
        """A frozen copy, to subtract from later."""
        return replace(self)

    def since(self, earlier: Counts) -> Counts:
        """What was counted after ``earlier`` was taken."""
        return Counts(self.rows - earlier.rows, self.pages - earlier.pages, self.calls - earlier.calls)

    def __str__(self) -> str:
        return f"{self.rows} rows, {self.pages} pages, {self.calls} calls"


@dataclass
class StreamProgress:
    """A stream's counts for the whole run and how each of its partitions ended."""

    counts: Counts = field(default_factory=Counts)
    outcomes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """``rows, calls, partitions done/failed/stopped`` for the run's last line."""
        o = self.outcomes
        return (
            f"{self.counts.rows} rows, {self.counts.pages} pages, {self.counts.calls} calls, "
            f"partitions {o[DONE]} done / {o[FAILED]} failed / {o[STOPPED]} stopped"
        )


def run_summary(progress: t.Mapping[str, StreamProgress]) -> str:
    """One line for the end of the run: every stream that ran, with its totals."""
    if not progress:
        return "Run summary: no stream ran"
    parts = [f"{name}: {tally.summary()}" for name, tally in sorted(progress.items())]
    return "Run summary: " + "; ".join(parts)


def set_metrics_level(level: str | int | None) -> None:
    """Show the SDK's METRIC lines at ``INFO``/``DEBUG``; hide them at ``WARNING`` or above."""
    logging.getLogger(METRICS_LOGGER).setLevel(str(level or "WARNING").upper())
