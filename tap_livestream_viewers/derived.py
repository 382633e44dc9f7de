"""Derived streams: several streams from one provider response, with no call of their own.

A provider stream declares what it derives in ``derived_streams``: one ``Derive`` per derived
stream, naming the stream and how its rows come out of one *page* the provider stream read
(``from_page``: the decoded response body) or out of one of its *records* (``from_record``:
the record as the provider stream emits it). The base stream feeds every selected derived
stream from each page it reads, so a derived stream costs no call at all.

A new derived stream is a ``DerivedStream`` subclass (name, schema, keys) and one ``Derive``
in the ``derived_streams`` of each stream that feeds it; ``tap.py`` needs no change.

The wiring is the SDK's own parent/child mechanism (singer-sdk 0.54):

* a derived stream is a *child stream* of every stream that feeds it, so the SDK reads a
  parent whose derived stream is selected even when the parent is not selected
  (``has_selected_descendents``): the parent then writes no SCHEMA and no RECORD, but its
  state advances as usual;
* the SDK never syncs a derived stream itself: ``parent_stream_type`` is set (the SDK skips
  direct invocation), and the parent's ``generate_child_contexts`` gives no context, so no
  per-record child sync happens either;
* a derived stream keeps **no state**: it is fed by its parents' reads, so its position is
  theirs; the STATE after a page covers the derived records of that page too;
* its records go through its own ``_write_record_message``, so its field selection and its
  stream maps (``stream_maps`` in the config) apply, and its SCHEMA is written once, before
  its first record, as soon as a parent starts reading.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from typing_extensions import override

from tap_livestream_viewers import redaction
from tap_livestream_viewers.progress import StreamProgress
from tap_livestream_viewers.warehouse import declare_integer_sizes
from tap_livestream_viewers.writer import DirectRecordLines

if t.TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

#: ``(parent stream, decoded body of one page, partition context) -> derived rows``.
PageRows = Callable[[t.Any, t.Any, "Context | None"], Iterable[dict]]
#: ``(parent stream, one emitted record, partition context) -> derived rows``.
RecordRows = Callable[[t.Any, dict, "Context | None"], Iterable[dict]]


class DerivedProgress(StreamProgress):
    """A derived stream's rows for the run summary: it reads no page and makes no call."""

    def summary(self) -> str:
        return f"{self.counts.rows} rows from the pages of the streams that feed it, no call of its own"


class DerivedStream(DirectRecordLines):
    """A stream whose records come from other streams' pages; subclasses set name, schema, keys."""

    # Derived rows are built as JSON-native values that match the schema already.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init_subclass__(cls, **kwargs: t.Any) -> None:
        """Declare integer sizes in the schema, as for every stream (BIGINT in warehouses)."""
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("schema"), dict):
            declare_integer_sizes(cls.__dict__["schema"])

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap=tap)
        self._schema_written = False
        #: Rows written this run (before stream maps), for the run summary.
        self.progress = DerivedProgress()

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict]:
        """Never asked by the SDK (see the module docstring): the parents write the records."""
        return ()

    @override
    def finalize_state_progress_markers(self, state: dict | None = None) -> None:
        """No state of its own: the parents' state says where their reads, and this stream, are."""

    def connection_test_skip_reason(self) -> str | None:
        """``--test`` checks the streams that feed it (the SDK never syncs a derived stream itself)."""
        return None

    def begin(self) -> None:
        """Write the SCHEMA once, when selected, before any record (a parent starts reading)."""
        if self.selected and not self._schema_written:
            self._schema_written = True
            self._write_schema_message()

    def write(self, records: Iterable[dict]) -> None:
        """Write rows derived from a parent's page, through this stream's selection and maps."""
        if not self.selected:
            return
        self.begin()
        # The page may echo a credential (see LivestreamStream._masked_record): mask it here too.
        masking = getattr(self._tap, "_answer_holds_secret", False)
        for record in records:
            self._write_record_message(redaction.mask_values(record) if masking else record)
            self.progress.counts.rows += 1


@dataclass(frozen=True)
class Derive:
    """One derived stream of a provider stream: which stream, and how a page or a record feeds it."""

    stream: type[DerivedStream]
    from_page: PageRows | None = None
    from_record: RecordRows | None = None


class DerivedFeed:
    """What one provider stream feeds: its declarations paired with the selected derived streams."""

    def __init__(self, parent: Stream, declarations: Iterable[Derive]) -> None:
        by_type = {type(child): child for child in parent.child_streams if isinstance(child, DerivedStream)}
        self._parent = parent
        self._pairs = [
            (declaration, by_type[declaration.stream])
            for declaration in declarations
            if declaration.stream in by_type and by_type[declaration.stream].selected
        ]

    @property
    def feeds_records(self) -> bool:
        """Whether a selected derived stream takes the parent's records (``from_record``)."""
        return any(declaration.from_record is not None for declaration, _ in self._pairs)

    def begin(self) -> None:
        """Write the SCHEMA of every selected derived stream (once per run)."""
        for _, child in self._pairs:
            child.begin()

    def page(self, body: t.Any, context: Context | None) -> None:
        """Feed one page the parent read (decoded body) to the page-derived streams."""
        for declaration, child in self._pairs:
            if declaration.from_page is not None:
                child.write(declaration.from_page(self._parent, body, context))

    def record(self, record: dict, context: Context | None) -> None:
        """Feed one record the parent emits (or would emit, when not selected)."""
        for declaration, child in self._pairs:
            if declaration.from_record is not None:
                child.write(declaration.from_record(self._parent, record, context))


def attach(tap: Tap, streams: list[Stream]) -> list[Stream]:
    """``streams`` plus one instance of every derived stream they declare, attached to its parents."""
    derived: dict[type[DerivedStream], DerivedStream] = {}
    for parent in streams:
        for declaration in getattr(parent, "derived_streams", ()):
            child = derived.get(declaration.stream)
            if child is None:
                child = derived[declaration.stream] = declaration.stream(tap)
                # The SDK skips direct invocation of a stream that has a parent type.
                child.parent_stream_type = type(parent)
            parent.child_streams.append(child)
    return [*streams, *derived.values()]
