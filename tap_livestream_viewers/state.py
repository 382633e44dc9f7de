"""The shape of this tap's saved state, and its validation before any call.

A stream's state (``bookmarks.<stream>``) holds one partition state per partition (or is one
itself when the stream has no partitions) and, for a stream under a daily budget, a
``call_ledger``. A partition state is:

* ``replication_key_value``: the bookmark, the end of the last finished window (RFC 3339);
* ``progress`` while a window is in flight: ``window_start``/``window_end`` (streams that
  read by time windows), ``next_page`` (>= 1), ``page_size`` (>= 1), and a provider's
  extras: ``frontier``/``total`` (rows known read, the last total), ``stop_at``/``high_water``
  (a stream read newest first: where it stops, the newest time seen).

A run given a state it cannot read would send it to the provider as is, or fail with a raw
traceback, and re-emit the same state, so every later run fails the same way (on a budgeted
provider, spending a call each time). ``problems`` finds every such defect before any stream
is built, one line per partition naming how to reset it.
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from tap_livestream_viewers.timeutil import UTC, parse_datetime

RESET_HINT = (
    "what to do: delete {what} (with Meltano: `meltano state edit <state_id>`, ids in `meltano state list`; "
    "run directly: in the --state file), or reset the whole state with `meltano state clear <state_id>` "
    "(everything is read again from start_date)"
)


class StateProblem(ValueError):
    """One defect of the saved state, as one line."""


@dataclass(frozen=True)
class Progress:
    """An in-flight window (or newest-first read) and the page to ask for next."""

    next_page: int
    page_size: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    frontier: int | None = None
    total: int | None = None
    stop_at: datetime | None = None
    high_water: datetime | None = None

    def to_state(self) -> dict[str, t.Any]:
        """The ``progress`` object as saved (times as RFC 3339, absent fields left out)."""
        saved: dict[str, t.Any] = {}
        for name, value in vars(self).items():
            if value is not None:
                saved[name] = value.isoformat() if isinstance(value, datetime) else value
        return saved


@dataclass(frozen=True)
class PartitionState:
    """One partition's saved state: its bookmark and, while a window is in flight, progress."""

    context: Mapping[str, t.Any]
    bookmark: datetime | None = None
    progress: Progress | None = None

    def to_state(self) -> dict[str, t.Any]:
        """The partition state as saved (``context``, ``replication_key_value``, ``progress``)."""
        saved: dict[str, t.Any] = {"context": dict(self.context)} if self.context else {}
        if self.bookmark is not None:
            saved["replication_key_value"] = self.bookmark.isoformat()
        if self.progress is not None:
            saved["progress"] = self.progress.to_state()
        return saved


@dataclass(frozen=True)
class StreamShape:
    """What a stream's progress must hold (``windowed``: bounds; else ``stop_at``)."""

    name: str
    windowed: bool = True


def _int(value: t.Any, name: str, minimum: int, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StateProblem(f"{name} is {value!r}, not a whole number of at least {minimum}")
    return value


def _moment(value: t.Any, name: str, *, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise StateProblem(f"{name} is {value!r}, not a date-time")
    try:
        return parse_datetime(value, UTC)
    except ValueError:
        raise StateProblem(f"{name} is {value!r}, not a date-time") from None


def parse_progress(raw: t.Any, shape: StreamShape) -> Progress:
    """Check an in-flight progress record; raise ``StateProblem`` for the first defect."""
    if not isinstance(raw, Mapping):
        raise StateProblem(f"progress is {raw!r}, not an object")
    progress = Progress(
        next_page=t.cast("int", _int(raw.get("next_page"), "progress.next_page", 1)),
        page_size=_int(raw.get("page_size"), "progress.page_size", 1, optional=True),
        frontier=_int(raw.get("frontier"), "progress.frontier", 0, optional=True),
        total=_int(raw.get("total"), "progress.total", 0, optional=True),
        window_start=_moment(raw.get("window_start"), "progress.window_start", optional=not shape.windowed),
        window_end=_moment(raw.get("window_end"), "progress.window_end", optional=not shape.windowed),
        stop_at=_moment(raw.get("stop_at"), "progress.stop_at", optional=shape.windowed),
        high_water=_moment(raw.get("high_water"), "progress.high_water", optional=True),
    )
    if progress.window_start and progress.window_end and progress.window_end <= progress.window_start:
        raise StateProblem(
            f"progress window ends ({raw['window_end']}) before it starts ({raw['window_start']})"
        )
    return progress


def parse_partition(raw: t.Any, shape: StreamShape) -> PartitionState:
    """Check one partition state (bookmark and progress)."""
    if not isinstance(raw, Mapping):
        raise StateProblem(f"partition state is {raw!r}, not an object")
    context = raw.get("context") or {}
    if not isinstance(context, Mapping):
        raise StateProblem(f"context is {context!r}, not an object")
    bookmark = _moment(raw.get("replication_key_value"), "replication_key_value", optional=True)
    progress = raw.get("progress")
    return PartitionState(
        context, bookmark, parse_progress(progress, shape) if progress is not None else None
    )


def check_call_ledger(raw: t.Any) -> None:
    """A ledger maps credential fingerprints to ``{"day": "YYYY-MM-DD", "calls": n}``."""
    if not isinstance(raw, Mapping):
        raise StateProblem(f"call_ledger is {raw!r}, not an object")
    for key, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise StateProblem(f"call_ledger[{key!r}] is {entry!r}, not an object")
        try:
            date.fromisoformat(str(entry.get("day")))
        except ValueError:
            raise StateProblem(
                f"call_ledger[{key!r}].day is {entry.get('day')!r}, not a YYYY-MM-DD date"
            ) from None
        _int(entry.get("calls"), f"call_ledger[{key!r}].calls", 0)


def _where(stream: str, context: t.Any) -> str:
    pairs = " ".join(f"{k}={v}" for k, v in context.items()) if isinstance(context, Mapping) else ""
    return f"{stream} {pairs}".strip()


def problems(state: t.Any, shapes: t.Iterable[StreamShape]) -> list[str]:
    """Every defect of ``state`` for the given streams, one line each, with how to reset it.

    Streams the tap does not run now are not checked: their state is passed through untouched.
    """
    if not isinstance(state, Mapping):
        return [f"state: {state!r} is not a JSON object; " + RESET_HINT.format(what="the whole state")]
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, Mapping):
        return [f"state: bookmarks is {bookmarks!r}, not an object; " + RESET_HINT.format(what='"bookmarks"')]
    found: list[str] = []
    for shape in shapes:
        stream_state = bookmarks.get(shape.name)
        if stream_state is None:
            continue
        if not isinstance(stream_state, Mapping):
            found.append(
                f"state of {shape.name}: {stream_state!r} is not an object; "
                + RESET_HINT.format(what=f"bookmarks.{shape.name}")
            )
            continue
        found += _stream_problems(shape, stream_state)
    return found


def _stream_problems(shape: StreamShape, stream_state: Mapping[str, t.Any]) -> list[str]:
    found: list[str] = []
    if "call_ledger" in stream_state:
        try:
            check_call_ledger(stream_state["call_ledger"])
        except StateProblem as problem:
            found.append(
                f"state of {shape.name}: {problem}; "
                + RESET_HINT.format(
                    what=f"bookmarks.{shape.name}.call_ledger (today's count is then "
                    "taken from the local call ledger, if this machine made the calls)"
                )
            )
    partitions = stream_state.get("partitions")
    if partitions is not None and not isinstance(partitions, list):
        found.append(
            f"state of {shape.name}: partitions is {partitions!r}, not a list; "
            + RESET_HINT.format(what=f"bookmarks.{shape.name}")
        )
        partitions = []
    for index, raw in enumerate([stream_state, *(partitions or [])]):
        if index == 0 and not ({"progress", "replication_key_value"} & set(stream_state)):
            continue
        context = raw.get("context") if isinstance(raw, Mapping) else None
        path = f"bookmarks.{shape.name}" + (f".partitions[{index - 1}]" if index else "")
        try:
            parse_partition(raw, shape)
        except StateProblem as problem:
            what = f"{path}.progress (the window is read again from its start)"
            if "replication_key_value" in str(problem):
                what = f"{path}.replication_key_value (the partition is read again from start_date)"
            elif "progress" not in str(problem):
                what = path
            found.append(
                f"state of {_where(shape.name, context)}: {problem}; " + RESET_HINT.format(what=what)
            )
    return found
