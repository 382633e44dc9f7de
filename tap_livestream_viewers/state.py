"""A partition's saved state in one place: its shape, its reading, its writing, its checks.

A stream's state (``bookmarks.<stream>``) holds one partition state per partition (or is one
itself when the stream has no partitions) and, for a stream under a daily budget, a
``call_ledger``. A partition state is:

* ``replication_key`` / ``replication_key_value``: the bookmark, the end of the last
  finished window (RFC 3339);
* ``progress`` while a window is in flight: ``window_start``/``window_end`` (streams that
  read by time windows), ``next_page`` (>= 1), ``page_size`` (>= 1), ``served_page_size``
  (a provider that pages by fewer or more rows than asked), then the provider's extras:
  fields a stream declares as a ``ProgressExtras`` dataclass (``progress_extras``), checked
  and saved by their declaration, so nothing here names a provider.

Every reader and writer of those keys goes through ``load`` and ``SavedPartition``; no other
module touches them (``tests/test_state_record.py`` greps for it).

A run given a state it cannot read would send it to the provider as is, or fail with a raw
traceback, and re-emit the same state, so every later run fails the same way (on a budgeted
provider, spending a call each time). ``problems`` finds every such defect before any stream
is built, one line per partition naming how to reset it.
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, tzinfo

from typing_extensions import Self

from tap_livestream_viewers.timeutil import UTC, parse_datetime, to_rfc3339
from tap_livestream_viewers.windows import Window

RESET_HINT = (
    "what to do: delete {what} (with Meltano: `meltano state edit <state_id>`, ids in `meltano state list`; "
    "run directly: in the --state file), or reset the whole state with `meltano state clear <state_id>` "
    "(everything is read again from start_date)"
)

PROGRESS, BOOKMARK, REPLICATION_KEY = "progress", "replication_key_value", "replication_key"
#: A budgeted stream's calls per credential fingerprint and day, beside its partitions.
CALL_LEDGER = "call_ledger"
_SPEC = "tap_livestream_viewers.state"


class StateProblem(ValueError):
    """One defect of the saved state, as one line."""


# ------------------------------------------------------------------ field readers


def _int(value: t.Any, name: str, minimum: int, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StateProblem(f"{name} is {value!r}, not a whole number of at least {minimum}")
    return value


def _moment(value: t.Any, name: str, tz: tzinfo = UTC, *, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise StateProblem(f"{name} is {value!r}, not a date-time")
    try:
        return parse_datetime(value, tz)
    except ValueError:
        raise StateProblem(f"{name} is {value!r}, not a date-time") from None


def _hint(value: t.Any) -> int | None:
    """A positive whole number the tap can do without: anything else reads as absent."""
    try:
        number = int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


@dataclass(frozen=True)
class _Spec:
    """How one extra field is read and saved."""

    kind: t.Literal["count", "moment", "hint"]
    minimum: int = 0
    required: bool = False
    null_saved: bool = False

    def read(self, value: t.Any, name: str, tz: tzinfo) -> t.Any:
        if self.kind == "hint":
            return _hint(value)
        if self.kind == "count":
            return _int(value, name, self.minimum, optional=not self.required)
        return _moment(value, name, tz, optional=not self.required)


def count(minimum: int = 0, *, null_saved: bool = False) -> t.Any:
    """An extra field: an optional whole number of at least ``minimum``; any other value is a defect.

    ``null_saved``: saved as ``null`` when absent (else left out).
    """
    return field(default=None, metadata={_SPEC: _Spec("count", minimum, null_saved=null_saved)})


def hint() -> t.Any:
    """An extra field: an optional positive whole number; an unreadable one reads as absent."""
    return field(default=None, metadata={_SPEC: _Spec("hint")})


def moment(*, required: bool = False, null_saved: bool = False) -> t.Any:
    """An extra field: a date-time (RFC 3339 when saved); ``required``: progress without it is a defect."""
    spec = _Spec("moment", required=required, null_saved=null_saved)
    return field(metadata={_SPEC: spec}) if required else field(default=None, metadata={_SPEC: spec})


# ------------------------------------------------------------------------ records


@dataclass(frozen=True)
class ProgressExtras:
    """Base of a provider's extras in ``progress``: a frozen dataclass of ``count``/``hint``/``moment``.

    A stream names its class in ``progress_extras``; the fields are read, checked and saved
    in their declared order, after the shared ones.
    """

    @classmethod
    def parse(cls, raw: Mapping[str, t.Any], tz: tzinfo = UTC) -> Self:
        """The extras of a saved ``progress``; raise ``StateProblem`` for the first defect."""
        values = {
            f.name: f.metadata[_SPEC].read(raw.get(f.name), f"progress.{f.name}", tz) for f in fields(cls)
        }
        return cls(**values)

    def to_state(self) -> dict[str, t.Any]:
        """The extras as saved: times as RFC 3339; an absent field left out, or ``null`` if so declared."""
        saved: dict[str, t.Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and not f.metadata[_SPEC].null_saved:
                continue
            saved[f.name] = to_rfc3339(value) if isinstance(value, datetime) else value
        return saved


E = t.TypeVar("E", bound=ProgressExtras)


@dataclass(frozen=True)
class Progress:
    """An in-flight window (or newest-first read) and the page to ask for next."""

    next_page: int
    page_size: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    #: Rows per page the provider serves when it is not the size asked (``None``: as asked).
    served_page_size: int | None = None
    extras: ProgressExtras | None = None

    @property
    def window(self) -> Window:
        """The window in flight (a windowed stream's progress always has both bounds)."""
        if self.window_start is None or self.window_end is None:
            raise StateProblem("progress holds no window")
        return Window(self.window_start, self.window_end)

    def extras_as(self, kind: type[E]) -> E | None:
        """The provider's extras as its own class (``None`` when the progress has none)."""
        return self.extras if isinstance(self.extras, kind) else None

    def bounds(self) -> str:
        """``<start> .. <end>`` of the window in flight, for messages."""
        start, end = (to_rfc3339(m) if m else None for m in (self.window_start, self.window_end))
        return f"{start} .. {end}"

    def to_state(self) -> dict[str, t.Any]:
        """The ``progress`` object as saved (times as RFC 3339, absent fields left out)."""
        saved: dict[str, t.Any] = {}
        if self.window_start is not None:
            saved["window_start"] = to_rfc3339(self.window_start)
        if self.window_end is not None:
            saved["window_end"] = to_rfc3339(self.window_end)
        saved["next_page"] = self.next_page
        if self.page_size is not None:
            saved["page_size"] = self.page_size
        if self.served_page_size is not None:
            saved["served_page_size"] = self.served_page_size
        if self.extras is not None:
            saved.update(self.extras.to_state())
        return saved


@dataclass(frozen=True)
class PartitionState:
    """One partition's saved state: its bookmark and, while a window is in flight, progress."""

    context: Mapping[str, t.Any] = field(default_factory=dict)
    bookmark: datetime | None = None
    progress: Progress | None = None
    replication_key: str | None = None

    def to_state(self) -> dict[str, t.Any]:
        """The partition state as saved (``context``, the bookmark, ``progress``)."""
        saved: dict[str, t.Any] = {"context": dict(self.context)} if self.context else {}
        if self.replication_key is not None:
            saved[REPLICATION_KEY] = self.replication_key
        if self.bookmark is not None:
            saved[BOOKMARK] = to_rfc3339(self.bookmark)
        if self.progress is not None:
            saved[PROGRESS] = self.progress.to_state()
        return saved


@dataclass(frozen=True)
class StreamShape:
    """What a stream's progress must hold: window bounds (``windowed``) and its provider's extras."""

    name: str
    windowed: bool = True
    extras: type[ProgressExtras] | None = None


# ------------------------------------------------------------------------ reading


def parse_progress(raw: t.Any, shape: StreamShape, tz: tzinfo = UTC) -> Progress:
    """Check an in-flight progress record; raise ``StateProblem`` for the first defect.

    A time without an offset is in ``tz`` (the stream's ``provider_timezone``).
    """
    if not isinstance(raw, Mapping):
        raise StateProblem(f"progress is {raw!r}, not an object")
    optional = not shape.windowed
    progress = Progress(
        next_page=t.cast("int", _int(raw.get("next_page"), "progress.next_page", 1)),
        page_size=_int(raw.get("page_size"), "progress.page_size", 1, optional=True),
        window_start=_moment(raw.get("window_start"), "progress.window_start", tz, optional=optional),
        window_end=_moment(raw.get("window_end"), "progress.window_end", tz, optional=optional),
        served_page_size=_hint(raw.get("served_page_size")),
        extras=shape.extras.parse(raw, tz) if shape.extras is not None else None,
    )
    if progress.window_start and progress.window_end and progress.window_end <= progress.window_start:
        raise StateProblem(
            f"progress window ends ({raw['window_end']}) before it starts ({raw['window_start']})"
        )
    return progress


def parse_partition(raw: t.Any, shape: StreamShape, tz: tzinfo = UTC) -> PartitionState:
    """Check one partition state (bookmark and progress)."""
    if not isinstance(raw, Mapping):
        raise StateProblem(f"partition state is {raw!r}, not an object")
    context = raw.get("context") or {}
    if not isinstance(context, Mapping):
        raise StateProblem(f"context is {context!r}, not an object")
    bookmark = _moment(raw.get(BOOKMARK), BOOKMARK, tz, optional=True)
    progress = raw.get(PROGRESS)
    key = raw.get(REPLICATION_KEY)
    return PartitionState(
        context,
        bookmark,
        parse_progress(progress, shape, tz) if progress is not None else None,
        key if isinstance(key, str) else None,
    )


def load(saved: Mapping[str, t.Any], shape: StreamShape, tz: tzinfo = UTC) -> PartitionState:
    """A partition's saved state as a record; raise ``StateProblem`` if it cannot be read."""
    return parse_partition(saved, shape, tz)


def find_partition(tap_state: Mapping[str, t.Any], stream: str, context: Mapping) -> Mapping[str, t.Any]:
    """The saved state of ``stream``'s partition ``context`` (read only; ``{}`` when never read)."""
    stream_state = (tap_state.get("bookmarks") or {}).get(stream) or {}
    for partition in stream_state.get("partitions") or []:
        if isinstance(partition, dict) and partition.get("context") == dict(context):
            return partition
    return {}


def peek(
    tap_state: Mapping[str, t.Any], shape: StreamShape, context: Mapping, tz: tzinfo
) -> PartitionState | None:
    """Another stream's partition, read only: empty when never read, ``None`` when it cannot be read."""
    try:
        return load(find_partition(tap_state, shape.name, context), shape, tz)
    except StateProblem:
        return None


# ------------------------------------------------------------------------ writing


class SavedPartition:
    """One partition's state inside the tap state (the SDK's dict): the one writer of its keys.

    Each change writes only the keys it changes, so the saved JSON keeps its form and order.
    """

    def __init__(self, saved: dict[str, t.Any], shape: StreamShape, tz: tzinfo = UTC) -> None:
        self._saved = saved
        self._shape = shape
        self._tz = tz

    def load(self) -> PartitionState:
        """The state as a record (checked before the run by ``problems``)."""
        return load(self._saved, self._shape, self._tz)

    def save_progress(self, progress: Progress) -> None:
        """A window in flight: its bounds, the page to ask for next and the provider's extras."""
        self._saved[PROGRESS] = progress.to_state()

    def finish(self, replication_key: str | None, bookmark: datetime | None) -> None:
        """The window (or read) is done: no progress; the bookmark moves to ``bookmark`` if given."""
        self._saved.pop(PROGRESS, None)
        self._saved[REPLICATION_KEY] = replication_key
        if bookmark is not None:
            self._saved[BOOKMARK] = to_rfc3339(bookmark)

    def drop_progress(self) -> None:
        """Forget the window in flight: the next window is planned from the bookmark."""
        self._saved.pop(PROGRESS, None)

    def drop_unstarted_window(self) -> Progress | None:
        """Forget a window in flight none of whose pages was read; the progress left, if any."""
        progress = self.load().progress
        if progress is not None and progress.next_page == 1:
            self.drop_progress()
            return None
        return progress


def call_ledger(stream_state: dict[str, t.Any]) -> dict[str, t.Any]:
    """A budgeted stream's ``call_ledger``, writable (created empty): ``DailyCallBudget`` counts in it."""
    return t.cast("dict[str, t.Any]", stream_state.setdefault(CALL_LEDGER, {}))


def call_ledger_copy(stream_state: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """A copy of the ``call_ledger``, to read the day's count without writing to the state."""
    return dict(stream_state.get(CALL_LEDGER) or {})


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
    if CALL_LEDGER in stream_state:
        try:
            check_call_ledger(stream_state[CALL_LEDGER])
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
        if index == 0 and not ({PROGRESS, BOOKMARK} & set(stream_state)):
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
