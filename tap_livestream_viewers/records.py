"""Records: each row's one pass through the tap, and the record loop that drives it.

Every provider stream's rows pass the same steps, in this order, once per row:

1. ``shape_record`` (the provider's hook): times, labels, keys of the provider's row;
2. the schema fit (``rowcheck.SchemaCoercer``): a lossless conversion silently, a value that
   cannot fit nulled and counted per field;
3. the window check (``keep_in_window``): a row at another window's time is left to it;
4. identity (``fill_identity``, ``settle_collision``): a row without its key, or under the key
   of another row of the window, is kept under a content key, counted per field;
5. output (``record_for_output``): the schema's properties only, configured secrets masked.

``read_records`` runs these steps a page at a time, outside the SDK's own loop (which passes
each record through six layers: limit check, post-processing, partition context, child
contexts, message, state). A page whose rows are all plainly fine goes through each step as
one batch (``write_page``: one schema check, one key check, one write for the page); a page
with any row that needs its own handling goes row by row (``write_row``), with the same
result for every other row. Either way a record's line is encoded once, written, and hashed
as its fingerprint for the key check, and a page's records are written before its STATE.

A provider with a documented, stable row (``row_type``, see ``typed_rows``) has its usual
pages decoded into structs, values checked in the same pass; such a page takes the same
steps on copies of its structs (``shape_typed_page``), and goes row by row as the dicts a
JSON decode gives when any row needs it. Its records are written in the struct's field
order on every path (``record_json``), so a row's line and fingerprint never depend on how
its page was decoded.
"""

from __future__ import annotations

import itertools
import json
import operator
import typing as t
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cached_property

import msgspec
from singer_sdk.contrib.msgspec import encoder as record_encoder
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from tap_livestream_viewers import redaction
from tap_livestream_viewers.derived import DerivedStream
from tap_livestream_viewers.rowcheck import (
    KeyRegistry,
    ProblemLog,
    SchemaCoercer,
    content_key,
    has_any,
    is_empty,
    kind_of,
    raw_bytes,
)
from tap_livestream_viewers.typed_rows import as_record, field_order, has_any_field, nested_checks, nested_fit
from tap_livestream_viewers.writer import DirectRecordLines

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_livestream_viewers.derived import DerivedFeed
    from tap_livestream_viewers.progress import StreamProgress

#: A record as JSON: its RECORD line's body, and the fingerprint the key registry compares.
_FINGERPRINT = record_encoder


class PageRows:
    """A partition's rows waiting to be written (the current page's), and what is written of them."""

    def __init__(self, context: Context | None, state_context: Context | None, stream: RecordPath) -> None:
        self.context = context
        #: The state partition's keys, added to a record without them.
        self.added = list((state_context or {}).items())
        self.rows: list[dict] = []
        self.written = 0
        #: Where records go: straight into the output, or ``None`` (the SDK's path, or unselected).
        self.lines = stream._record_lines if stream.selected else None
        self.feeds_records = stream.derived_feed.feeds_records


class RecordPath(DirectRecordLines):
    """The row steps and the record loop of every provider stream (``client.LivestreamStream``)."""

    #: The provider's row struct (``typed_rows.row_struct``) if its usual pages are decoded typed.
    row_type: t.ClassVar[type[msgspec.Struct] | None] = None
    #: Whether answers are decoded typed now: only in the record loop below, writing lines directly.
    typed_pages = False

    if t.TYPE_CHECKING:  # provided by client.LivestreamStream
        identity_fields: t.ClassVar[tuple[tuple[str, ...], ...]]
        content_key_field: t.ClassVar[str]
        progress: StreamProgress
        _context: Context | None
        _problems: dict[str, ProblemLog]
        _row_problems: list[tuple[str, t.Any, str]]
        _unknown_fields_seen: set[str]
        _secret_in_records_warned: bool

        @property
        def derived_feed(self) -> DerivedFeed: ...
        @property
        def _secrets(self) -> list[str]: ...
        def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]: ...
        def key_registry(self, use: str = "") -> KeyRegistry: ...
        def keep_in_window(self, record: dict) -> bool: ...
        def all_in_window(self, records: list[dict]) -> bool: ...
        def describe_partition(self, context: Context | None) -> str: ...
        def finalize_partition_state(self, context: Context | None) -> None: ...
        def reading_partitions(self, contexts: t.Sequence[Context | None]) -> t.ContextManager[None]: ...
        def one_line(self, text: str) -> str: ...

    #: The partition's rows waiting to be written, while ``read_records`` reads it.
    _page_rows: PageRows | None = None

    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict, t.Any, t.Any]:
        """The SDK's record loop with each row's steps in one place (``read_records``).

        Per partition and per stream it does what the SDK's loop does (starting value,
        counters, final state), with one set of pages in flight over all the partitions
        (``reading_partitions``); per row it skips the SDK's six layers, a third of a large
        sync's time. The SDK's own loop stays for what only it does: a dry-run record limit,
        a sync that writes nothing, and child streams synced per record (room lists).
        """
        if not self._reads_own_records(write_messages):
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        partitions = [context] if context is not None else self.partitions or [{}]
        reading = self.reading_partitions([each or None for each in partitions])
        with record_counter, timer, reading, self.decoding_typed():
            for partition in partitions:
                record_counter.with_context(partition)
                timer.with_context(partition)
                current = partition or None
                state_context = self._get_state_partition_context(current)
                self._write_starting_replication_value(current)
                taken = self._page_rows = PageRows(current, state_context, self)
                try:
                    self.read_records(taken)
                finally:
                    self._page_rows = None
                    record_counter.increment(taken.written)
                    if taken.written:  # as the SDK's loop marks it per record: the final STATE follows them
                        self.state_manager.is_flushed = False
                if current == state_context:
                    self.finalize_partition_state(current)
        if not context:
            self._finalize_state(self.stream_state)
        self._write_state_message()

    @contextmanager
    def decoding_typed(self) -> t.Iterator[None]:
        """Answers are decoded typed (``typed_rows``) while this loop writes a typed stream's lines."""
        self.typed_pages = self.row_type is not None and self.selected and self._record_lines is not None
        try:
            yield
        finally:
            self.typed_pages = False

    def _reads_own_records(self, write_messages: bool) -> bool:
        return (
            write_messages
            and self.ABORT_AT_RECORD_COUNT is None
            and all(isinstance(child, DerivedStream) for child in self.child_streams)
        )

    def read_records(self, taken: PageRows) -> None:
        """Every row of the partition, checked, fed to derived streams and written, in order.

        Rows are collected as they come and written a page at a time (``write_page_rows``):
        the page loop calls it once a page's rows are all out, and every STATE is preceded
        by it, so no STATE comes before its records.
        """
        rows = taken.rows
        for row in self.get_records(taken.context):
            rows.append(row)
        self.write_page_rows()

    def write_page_rows(self) -> None:
        """Check and write the rows collected since the last call (the page loop's hook).

        The page's rows go through ``write_page`` together, or one by one (``write_row``)
        when any of them needs a row's own handling.
        """
        taken = self._page_rows
        if taken is None or not taken.rows:
            return
        rows = taken.rows[:]
        taken.rows.clear()
        written = self.write_page(rows, taken)
        if written is None:
            if type(rows[0]) is self.row_type:  # a typed page: its rows as a JSON decode gives them
                rows = list(map(as_record, t.cast("list[msgspec.Struct]", rows)))
            written = 0
            for row in rows:
                written += self.write_row(row, taken)
        taken.written += written

    def write_page(self, rows: list[dict], taken: PageRows) -> int | None:
        """The page's rows checked and written as one batch: how many; ``None``: row by row.

        ``write_row``'s steps, each over the whole page. It applies when nothing is unusual
        in any row: every value fits the schema, every key is present and new to the window,
        no field is unknown, no secret is in the answer. Nothing is written or held before
        that is known, so ``write_row`` then starts from the rows as sent.
        """
        lines = taken.lines
        if lines is None or getattr(self._tap, "_answer_holds_secret", False):
            return None
        typed = type(rows[0]) is self.row_type
        records = self.fit_page(rows, taken.context)
        keys = self._page_keys(records, typed) if records is not None else None
        if records is None or keys is None or not fill_added(records, taken.added, typed):
            return None
        if typed or self.row_type is None:
            encoded = list(map(_FINGERPRINT.encode, records))
        else:
            encoded = list(map(self.record_json, records))
        if self._key_fields and not self.key_registry().add_new(keys, list(map(hash, encoded))):
            return None
        if taken.feeds_records:
            for record in map(as_record, records) if typed else records:
                self.derived_feed.record(record, taken.context)
        lines.write_all(encoded)
        self.progress.counts.rows += len(records)
        return len(records)

    def fit_page(self, rows: list[t.Any], context: Context | None) -> list[t.Any] | None:
        """``fit_row`` for a page: its records, or ``None`` if any row is not plainly fine.

        Not plainly fine: the provider's shaping failed or noted a value, a value does not
        fit the schema, or a row belongs to another window. A typed page's values were
        checked as it was decoded, but for its nested objects and what the shaping set.
        """
        if self._row_problems:
            self._row_problems = []
        typed = type(rows[0]) is self.row_type
        try:
            if typed:
                shaped = self.shape_typed_page([row.__copy__() for row in rows], context)
            else:
                shaped = self.shape_page(list(map(dict, rows)), context)
        except (AttributeError, KeyError, OverflowError, TypeError, ValueError):
            return None
        if self._row_problems:
            self._row_problems = []
            return None
        records = [record for record in shaped if record is not None]
        fits = nested_fit(records, self._nested_checks) if typed else self._coercer.fits_all(records)
        if not fits or not self.all_in_window(records):
            return None
        return records

    def shape_typed_page(self, records: list[t.Any], context: Context | None) -> list[t.Any]:
        """Hook: ``shape_page`` for a typed page (copies of its structs: shape them in place).

        A value the provider cannot read raises, or is noted with ``bad_value``: the page then
        goes row by row as dicts. What it sets must fit the schema (only nested objects are
        checked again).
        """
        return records

    @cached_property
    def _nested_checks(self) -> tuple[tuple[str, t.Any], ...]:
        return nested_checks(self.schema)

    def record_json(self, record: dict) -> bytes:
        """A record's JSON: its line and what its fingerprint hashes.

        A stream with typed pages writes every record in its row struct's field order, so a
        row reads the same (and hashes the same) whichever way its page was decoded.
        """
        if self.row_type is not None:
            record = {name: record[name] for name in field_order(self.row_type) if name in record}
        return _FINGERPRINT.encode(record)

    def _page_keys(self, records: list[t.Any], typed: bool = False) -> list[tuple] | None:
        """Each record's key, or ``None`` if ``fill_identity`` would fill one (a key field or an
        identity group empty)."""
        keys: list[tuple] = []
        if self._key_fields:
            try:
                found = list(map(self._key_attrs if typed else self._key_of, records))
            except (KeyError, AttributeError):
                return None
            if len(self._key_fields) == 1:
                values, keys = found, list(zip(found))
            else:
                values, keys = list(itertools.chain.from_iterable(found)), found
            if None in values or not all(value.strip() for value in values if type(value) is str):
                return None
        present = has_any_field if typed else has_any
        if not all(present(record, group) for group in self.identity_fields for record in records):
            return None
        return keys

    def write_row(self, row: dict, taken: PageRows) -> bool:
        """One row's steps (see the module's docstring): whether it was written (kept)."""
        context = taken.context
        record = self.fit_row(row, context)
        if record is None:
            return False
        lines = taken.lines
        self.fill_identity(record, row, context)
        for key, value in taken.added:
            if key not in record:
                record[key] = value
        line = self.record_json(self.record_for_output(record) if lines else record)
        if self.settle_collision(record, row, context, self.key_registry(), hash(line)) and lines:
            line = self.record_json(self.record_for_output(record))
        if self._row_problems:
            self.note_row_problems(record, context)
        if taken.feeds_records:
            self.derived_feed.record(record, context)
        if lines is not None:
            lines.write_encoded(line)
            self.progress.counts.rows += 1
        elif self.selected:
            self._write_record_message(record)
        return True

    def shape_page(self, records: list[dict], context: Context | None) -> list[dict | None]:
        """Hook: ``shape_record`` over a page's rows (copies: shape them in place)."""
        return [self.shape_record(record, context) for record in records]

    @override
    def _write_state_message(self) -> None:
        """Rows collected are written before any STATE: a target commits what precedes it."""
        self.write_page_rows()
        super()._write_state_message()

    @override
    def _write_record_message(self, record: dict) -> None:
        """Count the row for the run summary, then write it (directly or the SDK's way)."""
        self.progress.counts.rows += 1
        super()._write_record_message(record)

    @cached_property
    def _schema_properties(self) -> tuple[str, ...]:
        return tuple(self.schema.get("properties", {}))

    @override
    def record_for_output(self, record: dict) -> dict:
        """The record as it leaves the tap: the schema's properties only, secrets masked.

        An undocumented new field never reaches a target; each is named once in a warning,
        so a provider's API change is seen.
        """
        if record.keys() <= self._schema_property_set:
            projected = record
        else:
            projected = {name: record[name] for name in self._schema_properties if name in record}
            self._warn_unknown_fields(record)
        if getattr(self._tap, "_answer_holds_secret", False):
            projected = self._masked_record(projected)
        return projected

    @cached_property
    def _schema_property_set(self) -> frozenset[str]:
        return frozenset(self._schema_properties)

    @override
    def _generate_record_messages(self, record: dict) -> t.Generator:
        """The SDK's messages of the record as it leaves the tap (``_emitted``)."""
        projected = self.record_for_output(record)
        if not self._every_field_selected:
            yield from super()._generate_record_messages(projected)
            return
        # The SDK's path less its walk over every value for deselected fields (there are none)
        # and its type conforming (off: TYPE_CONFORMANCE_LEVEL); stream maps apply as there.
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(projected)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(timezone.utc),
                )

    @cached_property
    def _every_field_selected(self) -> bool:
        """Whether the catalog deselects nothing of this stream (known once the sync starts)."""
        return all(self.mask.values())

    def _holds_secret(self, content: bytes) -> bool:
        """Whether an answer's bytes contain a configured secret (one scan per page, not per value)."""
        return any(form in content for form in self._secret_bytes)

    @cached_property
    def _secret_bytes(self) -> tuple[bytes, ...]:
        """Each secret as UTF-8 and as JSON escapes it (``\\u`` for non-ASCII, ``\\/``).

        A form that contains another (``Bearer abc`` holds ``abc``) is left out: the shorter
        one is found wherever it is, so each page is scanned once per secret, not per form.
        """
        forms: set[bytes] = set()
        for secret in self._secrets:
            forms.add(secret.encode("utf-8"))
            forms.add(json.dumps(secret)[1:-1].encode("ascii"))
            forms.add(json.dumps(secret)[1:-1].replace("/", "\\/").encode("ascii"))
        shortest: list[bytes] = []
        for form in sorted(forms, key=len):
            if not any(kept in form for kept in shortest):
                shortest.append(form)
        return tuple(shortest)

    def _masked_record(self, record: dict) -> dict:
        """The record with every configured secret in its text masked; said once per stream.

        A gateway that echoes a credential inside a row must not put it in a warehouse.
        """
        masked = redaction.mask_values(record, self._secrets)
        if masked != record and not self._secret_in_records_warned:
            self._secret_in_records_warned = True
            self.logger.warning(
                "%s: the provider's rows contain a configured credential; it is masked as *** in the "
                "records. What to do: tell the provider its API echoes credentials in the data.",
                self.describe_partition(self._context),
            )
        return masked

    def _warn_unknown_fields(self, record: dict) -> None:
        known = set(self._schema_properties)
        for name in record:
            if name not in known and name not in self._unknown_fields_seen:
                self._unknown_fields_seen.add(name)
                self.logger.warning(
                    "%s: field %r is not in the provider document; it is left out of the records",
                    self.describe_partition(self._context),
                    name,
                )

    # ------------------------------------------------------------------ row checks

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """Hook: the provider's row as a record (times, labels, derived fields); ``None`` drops it."""
        return row

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Shape the row, fit it to the schema, keep it in its window, settle its key.

        Every stream passes here (or through ``read_records``, the same steps), so one
        malformed value, a row without identity, or two rows under one key are handled the
        same way for every provider (see ``rowcheck``).
        """
        return self.check_row(row, context, self.key_registry())

    def check_row(self, row: dict, context: Context | None, keys: KeyRegistry) -> dict | None:
        """``post_process`` with the window's key registry to settle keys in.

        A derived stream fed with other rows of the same answer (Talk-cloud's stage users)
        checks them with a registry of its own, so its keys never collide with this stream's.
        """
        record = self.fit_row(row, context)
        if record is None:
            return None
        self.fill_identity(record, row, context)
        self.settle_collision(record, row, context, keys, hash(self.record_json(record)))
        if self._row_problems:
            self.note_row_problems(record, context)
        return record

    def fit_row(self, row: dict, context: Context | None) -> dict | None:
        """The row shaped (``shape_record``) and fitted to the schema; ``None`` if not this window's.

        ``row`` itself is left as sent: content keys are derived from it.
        """
        if self._row_problems:
            self._row_problems = []
        try:
            record = self.shape_record(dict(row), context)
        except (AttributeError, KeyError, OverflowError, TypeError, ValueError) as error:
            # A shape no provider note foresaw: keep the row as sent rather than die on it nightly.
            self.bad_value("row", type(error).__name__, "as sent, without the fields the tap adds")
            record = {**(context or {}), **row}
        if record is None:
            return None
        self._coercer.coerce(record, self._wrong_type)
        return record if self.keep_in_window(record) else None

    def note_row_problems(self, record: dict, context: Context | None) -> None:
        """The current row's unreadable values, counted per field for the partition's warning."""
        log = self._problem_log(context)
        key = self.key_text(record)
        for name, value, note in self._row_problems:
            log.add("value", name, key, value, note)
        self._row_problems = []

    def bad_value(self, field: str, value: t.Any, note: str) -> None:
        """Note a value of the current row the tap could not read; ``note`` says what was kept."""
        self._row_problems.append((field, value, note))

    def _wrong_type(self, field: str, value: t.Any) -> None:
        self.bad_value(field, value, f"{field} is null (its type is not what the schema says)")

    @cached_property
    def _coercer(self) -> SchemaCoercer:
        return SchemaCoercer(self.schema)

    def _key_kind(self, field: str) -> str:
        return kind_of((self.schema.get("properties") or {}).get(field) or {})

    def key_text(self, record: dict) -> str:
        """The record's primary key as ``name=value`` pairs, for messages."""
        return " ".join(f"{name}={record.get(name)}" for name in self.primary_keys or ())

    def fill_identity(self, record: dict, row: dict, context: Context | None) -> bool:
        """Never an empty primary key (see README, "When a provider misbehaves"); whether one was filled.

        A row missing an identity field, or with an empty key field, is kept with a key
        derived from its own content as sent (``rowcheck.content_key``) in that field, or in
        ``content_key_field``. Each case is counted per field.
        """
        fields = self._key_fields
        groups = self.identity_fields
        if _all_present(tuple(map(record.get, fields))) and (
            not groups or all(has_any(record, group) for group in groups)
        ):
            return False
        missing = [group for group in groups if not has_any(record, group)]
        empty = [name for name in fields if is_empty(record.get(name))]
        if not (missing or empty):
            return False
        raw = raw_bytes(row)
        log = self._problem_log(context)
        for name in empty:
            record[name] = content_key(raw, self._key_kind(name))
        target = self.content_key_field
        if missing and target and target not in empty:
            record[target] = content_key(raw, self._key_kind(target))
        key = self.key_text(record)
        for group in missing:
            log.add("missing", " and ".join(group), key, note=target)
        for name in empty:
            if not any(name in group for group in missing):
                log.add("missing", name, key, note=name)
        return True

    def settle_collision(
        self, record: dict, row: dict, context: Context | None, keys: KeyRegistry, fingerprint: int
    ) -> bool:
        """Never a silently colliding primary key; whether the record's key was changed.

        ``fingerprint`` is a hash of the record's content (the same row gives the same one).
        A row whose key another row (other content) already had in this window gets its
        content key in ``content_key_field`` (or the last key field); counted per field.
        """
        fields = self._key_fields
        if not fields or not keys.collides(tuple(map(record.get, fields)), fingerprint):
            return False
        target = self.content_key_field or fields[-1]
        before = self.key_text(record)
        record[target] = content_key(raw_bytes(row), self._key_kind(target))
        keys.collides(tuple(map(record.get, fields)), fingerprint)
        self._problem_log(context).add("collision", target, f"{before} -> {record[target]}", note=target)
        return True

    @cached_property
    def _key_fields(self) -> tuple[str, ...]:
        return tuple(self.primary_keys or ())

    @cached_property
    def _key_of(self) -> t.Callable[[dict], t.Any]:
        """A record's key values: a tuple, or the value itself for a one-field key."""
        return operator.itemgetter(*self._key_fields)

    @cached_property
    def _key_attrs(self) -> t.Callable[[t.Any], t.Any]:
        """``_key_of`` for a typed record."""
        return operator.attrgetter(*self._key_fields)

    def _problem_log(self, context: Context | None) -> ProblemLog:
        return self._problems.setdefault(self.describe_partition(context), ProblemLog())

    def report_problems(self, context: Context | None) -> None:
        """One warning per kind and field for the partition: how many rows, the first keys."""
        where = self.describe_partition(context)
        log = self._problems.pop(where, None)
        for kind, name, tally in log.drain() if log else ():
            if kind == "missing":
                text = (
                    f"{tally.count} row(s) without {name}; kept, keyed by a content key in "
                    f"{tally.note} (README: When a provider misbehaves); rows: {tally.examples()}"
                )
            elif kind == "collision":
                text = (
                    f"{tally.count} row(s) had the key of a different row of the same window; kept, "
                    f"the later ones keyed by a content key in {name}; rows: {tally.examples()}"
                )
            else:
                text = (
                    f"{tally.count} row(s) with an unreadable {name} (first: {tally.first_value!r}); "
                    f"kept, {tally.note}; rows: {tally.examples()}"
                )
            self.logger.warning("%s: %s", where, self.one_line(text))


def fill_added(records: list[t.Any], added: list[tuple[str, t.Any]], typed: bool) -> bool:
    """Give each record the state partition's keys it lacks; ``False``: a typed record has no such field."""
    for key, value in added:
        for record in records:
            if not typed:
                record.setdefault(key, value)
            elif not hasattr(record, key):
                return False
            elif getattr(record, key) is msgspec.UNSET:
                setattr(record, key, value)
    return True


def _all_present(values: tuple) -> bool:
    """Whether no value is empty (``rowcheck.is_empty``): the common case, checked per record."""
    if None in values:
        return False
    return str not in map(type, values) or all(value.strip() for value in values if type(value) is str)
