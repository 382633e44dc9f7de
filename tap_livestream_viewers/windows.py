"""Time windows that respect a provider's maximum query range.

Shangzhibo answers at most 7 days per query, Talk-cloud one month; Mudu and Nuoyun set no
limit. A sync walks ``[start, end)`` as consecutive half-open windows, and a window is
the unit of the bookmark: when its last page is in, the bookmark moves to its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start, end)`` queried as one unit."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window {self.start.isoformat()} .. {self.end.isoformat()}")

    @property
    def span(self) -> timedelta:
        """How long the window is."""
        return self.end - self.start


def time_windows(start: datetime, end: datetime, max_span: timedelta | None) -> Iterator[Window]:
    """Slice ``[start, end)`` into consecutive windows of at most ``max_span`` (one if ``None``).

    Yields nothing when ``start >= end``: there is nothing new to ask for, so no call is made.
    """
    if start >= end:
        return
    if max_span is None:
        yield Window(start, end)
        return
    if max_span <= timedelta(0):
        raise ValueError("max_span must be positive")
    cursor = start
    while cursor < end:
        window_end = min(cursor + max_span, end)
        yield Window(cursor, window_end)
        cursor = window_end
