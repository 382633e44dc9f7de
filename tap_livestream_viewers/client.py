"""The base stream every provider builds on: windows, paging, per-page state, retries, errors.

What lives here is what all four providers share:

* **Windows.** ``[bookmark or start_date, end)`` is cut into windows no longer than the
  provider's ``max_window``. A window's end is fixed when it starts and kept in the state,
  so paging through it is stable across runs and days.
* **Paging.** Page numbers through the SDK's ``BasePageNumberPaginator``; a page is the last
  when the provider's own total says so, or, without a total, when it is short. A provider
  that silently returns fewer rows than asked is paged by what it returns.
* **State after every page.** The partition state holds the bookmark (end of the last
  finished window) and, while a window is in flight, ``progress`` (window bounds, next
  page, page size). It is emitted after each page's records, so a stop loses at most one
  page and a re-run resumes at the next page, never at page 1.
* **Calls.** Every attempt, retries included, passes the stream's call guards (daily budget,
  rate limit). 429, 5xx, timeouts and resets are retried with exponential backoff and
  jitter, honouring ``Retry-After``; 401/403 and provider error codes fail at once.
* **Derived streams.** Streams a provider stream declares in ``derived_streams`` are written
  from its pages and records, with no call of their own (``derived.py``).
* **Errors.** One line: provider, stream, partition, status or code, the provider's message,
  and what to do. Secrets from the config are masked in every message. A success answer
  without its row list (``MalformedAnswer``) is retried, never read as an empty page.
* **Bounds.** Windows are ``[start, end)`` in whole ``time_precision`` steps; each query
  starts one step early and a row is kept only by the window its ``record_time`` falls in,
  whether the provider's bounds are inclusive or not.
* **Rows.** Every record passes the same steps (``records.py``): the provider shapes it
  (``shape_record``), values are fitted to the schema, and an empty or colliding key gets a
  content key, each with one warning per field and partition (``rowcheck``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import typing as t
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from functools import cached_property

import requests
from backoff.types import Details
from singer_sdk.exceptions import FatalAPIError, MaxRecordsLimitException, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import BaseAPIPaginator, PageNumberPaginator
from singer_sdk.streams import RESTStream
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_livestream_viewers import prefetch, redaction, tolerant_json, transport
from tap_livestream_viewers.derived import Derive, DerivedFeed
from tap_livestream_viewers.guards import CallBudgetExhausted, CallGuard
from tap_livestream_viewers.progress import DONE, FAILED, STOPPED, Counts, StreamProgress
from tap_livestream_viewers.records import RecordPath
from tap_livestream_viewers.rowcheck import KeyRegistry, ProblemLog
from tap_livestream_viewers.state import Progress, ProgressExtras, SavedPartition, StreamShape, peek
from tap_livestream_viewers.timeutil import floor_to, parse_datetime, to_rfc3339, zone
from tap_livestream_viewers.typed_rows import TypedRows
from tap_livestream_viewers.warehouse import declare_integer_sizes
from tap_livestream_viewers.windows import Window, time_windows

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

RETRYABLE_STATUSES = frozenset({408, 425, 429})
AUTH_STATUSES = frozenset({401, 403})
_MAX_MESSAGE = 300
_MISSING = object()


class ProviderAPIError(FatalAPIError):
    """A failure the user must act on; its message is one complete line."""


class PartitionFailed(ProviderAPIError):
    """Only this partition cannot be read (e.g. a room that no longer exists); others go on."""


class MalformedAnswer(RetriableAPIError):
    """A success answer without its row list (missing, null, not a list of objects).

    It is not an empty page: read as one, the bookmark would move past rows the provider
    holds. Gateways give such answers in passing, so it is retried like a 5xx; when retries
    run out the run fails with one line and the state resumes at this page.
    """


MALFORMED_ACTION = (
    "the provider answered success without its row list; nothing was skipped: run again later, "
    "the state resumes at this page; if it keeps happening, report this line to the provider"
)


class WaitTooLong(PartitionFailed):
    """The provider asks to wait longer than ``max_wait_seconds``: stop this partition for now."""


@dataclass(frozen=True)
class PageFacts:
    """What one response says about paging: rows on it, the provider's total, its page size."""

    rows: int
    total: int | None = None
    page_size: int | None = None


class ProgressPaginator(PageNumberPaginator):
    """Page numbers that stop from the provider's facts and save progress after each page."""

    def __init__(self, stream: LivestreamStream, start_page: int) -> None:
        super().__init__(start_page)
        self._stream = stream

    @override
    def has_more(self, response: requests.Response) -> bool:
        """Ask the stream: it knows the provider's total, echoed page size and quirks."""
        return self._stream.has_more_pages(response, self.current_value)

    @override
    def advance(self, response: requests.Response) -> None:
        """Move to the next page; by now the SDK has written this page's records."""
        super().advance(response)
        if not self.finished:
            self._stream.page_done(self.current_value)


class LivestreamStream(RecordPath, RESTStream[int]):
    """Base for every stream of this tap; a provider module sets the class attributes."""

    #: Key of the provider's object in the config, e.g. ``"shangzhibo"``.
    provider_key: t.ClassVar[str] = ""
    #: Name used in messages, e.g. ``"Shangzhibo"``.
    provider_name: t.ClassVar[str] = ""
    #: Longest time range the provider answers in one query (``None``: no limit).
    max_window: t.ClassVar[timedelta | None] = None
    #: How far behind "now" a default end is set, so rows still being written come next time.
    end_lag: t.ClassVar[timedelta] = timedelta(0)
    default_page_size: t.ClassVar[int] = 100
    max_page_size: t.ClassVar[int] = 100
    #: What the user should check when the provider rejects the credentials.
    credential_hint: t.ClassVar[str] = "check the provider credentials in the tap config"
    #: What the user should check when a partition's resource does not exist (HTTP 404); only
    #: that partition fails, the others are read.
    not_found_hint: t.ClassVar[str] = "check the ids configured for this partition and the base_url"
    #: Whether an in-flight ``progress`` in the state holds window bounds (see ``state.py``).
    progress_windowed: t.ClassVar[bool] = True
    #: Most pages one partition may have in flight (``None``: ``max_concurrency``). A provider
    #: with a daily call budget reads one page at a time: a page fetched ahead and lost to a
    #: stop would be a call spent for nothing (``prefetch.py``).
    max_pages_in_flight: t.ClassVar[int | None] = None
    #: Pages in flight when ``max_concurrency`` is not set: a provider without a documented rate
    #: limit gets a polite 4; one with a documented limit may set more.
    default_pages_in_flight: t.ClassVar[int] = 4
    #: The provider's own fields in an in-flight ``progress`` (see ``state.ProgressExtras``).
    progress_extras: t.ClassVar[type[ProgressExtras] | None] = None
    #: Streams fed by this stream's pages, one declaration each (see ``derived.py``).
    derived_streams: t.ClassVar[tuple[Derive, ...]] = ()
    #: The step of the provider's time filter and row times. Windows are half-open ``[start,
    #: end)`` in whole steps; each query asks one step before ``start`` (``query_range``) and
    #: rows are kept by ``record_time``, so a row belongs to one window whether the provider's
    #: bounds are inclusive or not.
    time_precision: t.ClassVar[timedelta] = timedelta(seconds=1)
    #: Groups of fields that identify a row; a group is present when any of its fields has a
    #: value. A row missing a group is kept under a content key (see ``settle_identity``).
    identity_fields: t.ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: The primary-key field that takes the content key of a row without identity, or of a
    #: row whose key another row in the same window already has.
    content_key_field: t.ClassVar[str] = ""

    # Our own per-page state replaces the SDK's "every 10,000 records" cadence.
    STATE_MSG_FREQUENCY = 10**12
    # Provider modules emit JSON-native values that already match the schema (times as RFC
    # 3339 text, numbers as numbers), so the SDK's per-value conforming, a fifth of the run
    # time in a profile, is replaced by a projection onto the schema's properties below.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init_subclass__(cls, **kwargs: t.Any) -> None:
        """Declare integer sizes in every stream's schema, so warehouses get BIGINT columns."""
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("schema"), dict):
            declare_integer_sizes(cls.__dict__["schema"])

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._context: Context | None = None
        self._window: Window | None = None
        self._first_page = 1
        self._page_size_in_use = self.page_size
        self._learned_page_size: int | None = None
        #: Rows, pages and calls of this run, and how each partition ended (progress lines).
        self.progress = StreamProgress()
        self._planned_end: datetime | None = None
        self._run_end: datetime | None = None
        self._window_started = Counts()
        self._resumed_page_size: int | None = None
        self._unknown_fields_seen: set[str] = set()
        #: Keys seen in the current window, per use (``key_registry``).
        self._keys: dict[str, KeyRegistry] = {}
        self._problems: dict[str, ProblemLog] = {}
        self._row_problems: list[tuple[str, t.Any, str]] = []
        self._left_to_neighbours = 0
        self._secret_in_records_warned = False
        self._counting = threading.Lock()
        self._ahead: prefetch.PagesAhead | None = None
        #: Whether ``_ahead`` was opened by a partition (``fetching_ahead``), not ``reading_partitions``.
        self._ahead_opened_lazily = False
        #: The paging token of the answer being read (``request_records``), in the reading thread.
        self.page_in_hand: t.Any = None
        self._secrets  # noqa: B018 - masks log lines from the start

    @property
    def request_context(self) -> Context | None:
        """The partition of the request being sent or checked, for messages: a worker's own
        (a page fetched ahead may belong to a later partition), else the one being read."""
        return prefetch.request_context(self._context)

    @property
    def calls_made(self) -> int:
        """Calls this run sent for this stream, retries included."""
        return self.progress.counts.calls

    # ----------------------------------------------------------------- configuration

    @property
    def provider_config(self) -> dict[str, t.Any]:
        """This provider's object from the config (``{}`` if absent)."""
        return dict(self.config.get(self.provider_key) or {})

    @property
    @override
    def url_base(self) -> str:
        """``<provider>.base_url``; when it is missing or empty, the settings schema's default."""
        configured = self.provider_config.get("base_url")
        if not configured:
            provider = (self._tap.config_jsonschema.get("properties") or {}).get(self.provider_key) or {}
            configured = (provider.get("properties") or {}).get("base_url", {}).get("default", "")
        return str(configured).rstrip("/")

    @cached_property
    def tz(self) -> tzinfo:
        """The zone of provider timestamps that carry no offset (``provider_timezone``)."""
        return zone(self.config.get("provider_timezone") or "Asia/Shanghai")

    @property
    def page_size(self) -> int:
        """Rows asked per page: the configured ``page_size`` capped at the documented maximum."""
        wanted = int(self.provider_config.get("page_size") or self.default_page_size)
        return max(1, min(wanted, self.max_page_size))

    @property
    @override
    def timeout(self) -> int:
        """Seconds before a request counts as timed out (and is retried)."""
        return int(self.config.get("request_timeout") or 60)

    @override
    def backoff_max_tries(self) -> int:
        """Attempts per request before giving up (``max_retries`` + 1)."""
        return int(self.config.get("max_retries", 5)) + 1

    @property
    def pages_in_flight(self) -> int:
        """Requests a stream may have in flight: ``max_concurrency``, capped by the provider.

        ``--test`` makes one call per stream, so it never fetches ahead.
        """
        if self.ABORT_AT_RECORD_COUNT is not None:
            return 1
        wanted = max(1, int(self.config.get("max_concurrency") or self.default_pages_in_flight))
        return min(wanted, self.max_pages_in_flight or wanted)

    def connection_test_skip_reason(self) -> str | None:
        """Hook: why ``--test`` should not call this stream (``None``: it is checked with one call)."""
        return None

    def now(self) -> datetime:
        """The current time; one place, so every bound of a run agrees."""
        return datetime.now(timezone.utc)

    # ------------------------------------------------------------------ time range

    def config_datetime(self, name: str) -> datetime | None:
        """A date-time setting; without an offset it means ``provider_timezone``."""
        value = self.config.get(name)
        return parse_datetime(value, self.tz) if value else None

    def sync_end(self) -> datetime:
        """``end_date`` but never later than now less the provider's lag, to whole seconds.

        A window that ended in the future would move the bookmark past rows not written yet,
        and they would never be read. Fixed the first time it is asked in the run, so every
        partition's windows end at the same second (and a next partition's first window,
        planned ahead, is the one its loop plans).
        """
        if self._run_end is None:
            latest = self.now() - self.end_lag
            end = self.config_datetime("end_date")
            self._run_end = floor_to(min(end, latest) if end is not None else latest, self.time_precision)
        return self._run_end

    def bookmark(self, context: Context | None) -> datetime:
        """Where the next window starts: the last finished window's end, else ``start_date``."""
        saved = self.saved_state(context).load().bookmark
        if saved is not None:
            return saved
        start = self.config_datetime("start_date")
        if start is None:
            raise ProviderAPIError(self.describe(context, "start_date is not set", "set start_date"))
        return start

    def planned_windows(self, context: Context | None) -> t.Iterator[tuple[Window, int]]:
        """The windows still to read with their first page: an unfinished one first."""
        progress = self.saved_state(context).load().progress
        resume_from: datetime | None = None
        self._planned_end = self.sync_end()
        if progress:
            window = progress.window
            self._page_size_in_use = progress.page_size or self.page_size
            self._resumed_page_size = progress.served_page_size
            self.logger.info(
                "Resuming %s at page %s of window %s",
                self.describe_partition(context),
                progress.next_page,
                progress.bounds(),
            )
            yield window, progress.next_page
            resume_from = window.end
        self._page_size_in_use = self.page_size
        start = floor_to(
            self.clamp_start(context, resume_from or self.bookmark(context)), self.time_precision
        )
        for window in time_windows(start, self._planned_end, self.window_span):
            yield window, 1

    @property
    def window_span(self) -> timedelta | None:
        """The longest window: each query reaches one step before it, so one step under ``max_window``."""
        return self.max_window - self.time_precision if self.max_window is not None else None

    def query_range(self) -> tuple[datetime, datetime]:
        """The range to ask for the current window: one step earlier than it, to its end.

        Providers do not say whether a range's bounds are inclusive. Under every reading
        (``[s,e)``, ``[s,e]``, ``(s,e]``, ``(s,e)``) this range holds every row with ``start <=
        t < end``; ``keep_in_window`` leaves the others to the neighbouring windows.
        """
        assert self._window is not None
        return self._window.start - self.time_precision, self._window.end

    def record_time(self, record: dict) -> datetime | None:
        """Hook: the time the provider's range filters a shaped record on (``None``: unknown)."""
        return None

    def keep_in_window(self, record: dict) -> bool:
        """Whether a record belongs to the current window (``start <= t < end``) by its time.

        A record at or after the end belongs to the next window, one before the start to the
        previous one: each of those asks for it too. A record without a time is kept.
        """
        window = self._window
        if window is None:
            return True
        moment = self.record_time(record)
        if moment is None or window.start <= moment < window.end:
            return True
        self._left_to_neighbours += 1
        return False

    def all_in_window(self, records: list[dict]) -> bool:
        """Whether ``keep_in_window`` would keep every record (none is counted as left)."""
        window = self._window
        if window is None:
            return True
        for record in records:
            moment = self.record_time(record)
            if moment is not None and not window.start <= moment < window.end:
                return False
        return True

    def clamp_start(self, context: Context | None, start: datetime) -> datetime:
        """Hook: a provider that only keeps recent data may move the start forward."""
        return start

    # ------------------------------------------------------------------------ state

    def partition_state(self, context: Context | None) -> dict:
        """The writable state of this partition (the SDK keeps it inside the tap state).

        Read and written only through ``saved_state`` (``state.SavedPartition``).
        """
        return self.get_context_state(context)

    @classmethod
    def state_shape(cls) -> StreamShape:
        """What this stream's saved progress holds: checked before the run, read by ``saved_state``."""
        # Every stream class sets ``name``; the SDK types it as an instance attribute.
        return StreamShape(cls.name, cls.progress_windowed, cls.progress_extras)  # type: ignore[misc]

    def saved_state(self, context: Context | None) -> SavedPartition:
        """This partition's saved state: its bookmark and window in flight, read and written here."""
        return SavedPartition(self.partition_state(context), self.state_shape(), self.tz)

    def finalize_partition_state(self, context: Context | None) -> None:
        """The SDK's end of a partition's sync, applied to its state (the record loop's last step)."""
        self._finalize_state(self.partition_state(context))

    def progress_extras_now(self) -> ProgressExtras | None:
        """Hook: the provider's own fields to save with the progress (``progress_extras``)."""
        return None

    def emit_state(self) -> None:
        """Write a STATE message now (the SDK would otherwise wait for 10,000 records)."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    @override
    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Bookmarks here are window ends, not record values: the SDK's per-record step is off.

        A record's own time says nothing about which windows are finished (rows arrive out of
        order, and Nuoyun rows carry no update time at all), so the bookmark moves only in
        ``complete_window``.
        """

    def save_progress(self, context: Context | None, window: Window, next_page: int) -> None:
        """Remember an in-flight window and the next page to ask for."""
        self.saved_state(context).save_progress(
            Progress(
                next_page,
                self._page_size_in_use,
                window.start,
                window.end,
                served_page_size=self._learned_page_size or None,
                extras=self.progress_extras_now(),
            )
        )

    def page_done(self, next_page: int) -> None:
        """After a page's records are written: save the next page and emit the state."""
        if self._window is None:
            return
        self.save_progress(self._context, self._window, next_page)
        self.emit_state()

    def complete_window(self, context: Context | None, window: Window) -> None:
        """The window's last page is in: move the bookmark to its end and emit the state."""
        self.saved_state(context).finish(self.replication_key, window.end)
        if self._left_to_neighbours:
            self.logger.info(
                "%s: %d row(s) served for window %s .. %s lie outside it (the query starts %s "
                "early); the neighbouring window reads them",
                self.describe_partition(context),
                self._left_to_neighbours,
                to_rfc3339(window.start),
                to_rfc3339(window.end),
                self.time_precision,
            )
            self._left_to_neighbours = 0
        self.emit_state()
        self.report_window(context, window)

    # ---------------------------------------------------------------------- records

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Read the partition; a spent budget or a failed partition ends it cleanly (see below)."""
        self._context = context
        self.derived_feed.begin()
        self._forget_keys()
        with self.fetching_ahead(context), self.partition_outcome(context):
            yield from self.read_partition(context)

    # ---------------------------------------------------------------- derived streams

    @cached_property
    def derived_feed(self) -> DerivedFeed:
        """The selected derived streams this stream feeds (built at the first read, after selection)."""
        return DerivedFeed(self, self.derived_streams)

    @override
    def generate_child_contexts(self, record: dict, context: Context | None) -> t.Iterable[Context | None]:
        """Feed the record to the derived streams; no SDK child sync per record (they make no call)."""
        self.derived_feed.record(record, context)
        return ()

    @contextmanager
    def partition_outcome(self, context: Context | None) -> t.Iterator[None]:
        """What ends a partition early, for every stream: the state is kept and emitted.

        * ``CallBudgetExhausted``: the stream stops for today with a warning; the run goes on.
        * ``PartitionFailed``: logged as one line, the other partitions are read, and the tap
          fails the run at the end naming it.

        Either way, one progress line says how the partition ended and what it read.
        """
        started = self.progress.counts.snapshot()
        outcome = FAILED
        try:
            yield
            outcome = DONE
        except CallBudgetExhausted as stop:
            outcome = STOPPED
            self.on_budget_exhausted(context, stop)
        except PartitionFailed as failure:
            self.logger.error("%s", failure)
            self.emit_state()
            failures = getattr(self._tap, "failed_partitions", None)
            if failures is None:
                raise
            failures.append(str(failure))
        finally:
            self._window = None
            self.report_partition(context, outcome, started)
            self.report_problems(context)

    def read_partition(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Read every planned window page by page, moving the bookmark window by window."""
        for window, first_page in self.planned_windows(context):
            self._window = window
            self._first_page = first_page
            self._learned_page_size, self._resumed_page_size = self._resumed_page_size, None
            self._window_started = self.progress.counts.snapshot()
            self.start_window_checks()
            self.save_progress(context, window, first_page)
            yield from self.records_in_window(context, window)
            self.complete_window(context, window)

    def start_window_checks(self) -> None:
        """A new window: forget its predecessor's keys and the rows it left to its neighbours."""
        self._forget_keys()
        self._left_to_neighbours = 0

    def key_registry(self, use: str = "") -> KeyRegistry:
        """The current window's registry of keys for ``use`` (``""``: this stream's own rows)."""
        registry = self._keys.get(use)
        if registry is None:
            registry = self._keys[use] = KeyRegistry()
        return registry

    def _forget_keys(self) -> None:
        """Drop the keys of the window before (a registry's temporary file goes with it)."""
        for registry in self._keys.values():
            registry.clear()
        self._keys.clear()

    def records_in_window(self, context: Context | None, window: Window) -> t.Iterable[dict]:
        """Page through one window with the SDK's request loop (override for special endpoints)."""
        yield from self.request_records(context)

    def on_budget_exhausted(self, context: Context | None, stop: CallBudgetExhausted) -> None:
        """One warning: calls made, what is left to fetch, when the budget resets; keep the state.

        A window none of whose pages was read is dropped from the state: the next run plans
        one window from the bookmark to its own end instead of finishing this one and then
        asking for the gap after it, which would cost a call more.
        """
        saved = self.saved_state(context)
        progress = saved.drop_unstarted_window()
        if progress:
            page = progress.next_page
            size = progress.page_size or self.page_size
            left = (
                f"window {progress.bounds()} from page {page} "
                f"(rows {(page - 1) * size + 1} on; pages 1..{page - 1} are done)"
            )
        else:
            bookmark = saved.load().bookmark
            left = f"everything from {to_rfc3339(bookmark) if bookmark else self.config.get('start_date')}"
        said = f"; {self.provider_name} answered {stop.provider_said}" if stop.provider_said else ""
        self.logger.warning(
            "%s: daily call budget spent: %s of %s calls made today with this credential "
            "(%s by this run)%s; still to fetch: %s; the budget resets at %s, run again after "
            "that to continue from there.",
            self.describe_partition(context),
            stop.calls_made,
            stop.limit,
            self.calls_made,
            said,
            left,
            stop.resets_at.isoformat(),
        )
        self.emit_state()

    @override
    def get_batch_config(self, config: t.Mapping) -> None:
        """Refuse ``batch_config`` before any call: the SDK's batches would outrun the state.

        With singer-sdk 0.54 a BATCH message is written only when a batch file is full or the
        stream ends, but this tap writes STATE after every page (and Mudu's call ledger before
        every call), so a target would read bookmarks for records it has not received yet.
        """
        if config.get("batch_config"):
            raise ProviderAPIError(
                "batch_config is not supported by tap-livestream-viewers: its state is written after "
                "every page, ahead of the BATCH message that would carry the records. What to do: "
                "remove batch_config from the tap's settings; records are streamed as RECORD messages."
            )
        return None

    # ----------------------------------------------------------------------- paging

    @override
    def get_new_paginator(self) -> BaseAPIPaginator:
        """A page-number paginator that starts where the window's progress says."""
        return ProgressPaginator(self, self._first_page)

    @contextmanager
    def reading_partitions(self, contexts: t.Sequence[Context | None]) -> t.Iterator[None]:
        """One set of pages in flight for a stream's sync over ``contexts``, read in this order.

        A window's pages, the first pages of the windows after it and of the partitions after
        it are fetched while earlier pages are written (``prefetch.py``). Closed when the sync
        ends, errors included: workers then send nothing more. Without it, the first partition
        read opens one for ``partitions_of_sync`` (``fetching_ahead``).
        """
        if self._ahead is not None:  # already open for this sync
            yield
            return
        self._ahead = self.new_pages_ahead(self.pages_in_flight, contexts)
        self._ahead_opened_lazily = False
        try:
            yield
        finally:
            self.stop_reading_ahead()

    def partitions_of_sync(self) -> list[Context | None]:
        """The partitions the SDK reads in this sync, in order: the parent's one room for a child
        stream (no list ahead: read one after the other), else ``partitions``."""
        if self.context:
            return [dict(self.context)]
        return [*self.partitions] if self.partitions else [None]

    @contextmanager
    def fetching_ahead(self, context: Context | None) -> t.Iterator[None]:
        """A partition read within the stream's pages in flight (``reading_partitions``).

        Opened here, for ``partitions_of_sync``, if nothing opened it; then closed after the
        sync's last partition, or at once when an error ends the sync. A failed or stopped
        partition (``partition_outcome``) ends only itself: its pages fetched ahead are dropped.
        """
        if self._ahead is None:
            self._ahead = self.new_pages_ahead(self.pages_in_flight, self.partitions_of_sync())
            self._ahead_opened_lazily = True
        ahead = self._ahead
        sync_over = True
        try:
            yield
            sync_over = ahead.is_last(context)
        finally:
            ahead.drop_partition(context)
            if sync_over and self._ahead_opened_lazily:
                self.stop_reading_ahead()

    def stop_reading_ahead(self) -> None:
        """The stream's sync is over: pages still in flight are dropped, workers send nothing more."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    @override
    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        """The SDK's page loop, with the pages known ahead sent concurrently (``prefetch.py``).

        Pages are read in order in this thread: records, then the paginator's STATE, page by
        page, exactly as the SDK's sequential loop does; worker threads only send requests.
        Pages are keyed by partition, window and token, so a page fetched for a later window or
        partition waits there. Nothing is fetched ahead before an answer is read: a wrong key
        costs one call, not ``max_concurrency``.
        """
        paginator = self.get_new_paginator()
        ahead = self._ahead or self.new_pages_ahead(1)
        partition, window = prefetch.partition_of(context), self._window
        last_total: int | None = None
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            while not paginator.finished:
                token = paginator.current_value
                self.page_in_hand = token
                response = ahead.take(prefetch.Page(partition, window, token))
                if response is None:
                    response = ahead.send(self.prepare_page(context, token), context)
                request_counter.increment()
                total = self.take_answer(response, context)
                if total != last_total and last_total is not None:
                    ahead.forget(context)  # rows moved: pages sent earlier may predate this answer
                else:
                    ahead.steady()
                last_total = total
                rows = list(self.parse_response(response))
                if not rows and not paginator.continue_if_empty(response):
                    break
                yield from rows
                self.write_page_rows()  # the page's records, before its STATE
                paginator.advance(response)
                self.plan_ahead(ahead, paginator, response)

    def new_pages_ahead(
        self, workers: int, partitions: t.Sequence[Context | None] = ()
    ) -> prefetch.PagesAhead:
        """Pages in flight over ``partitions``, each sent through the retrying request (one decoration)."""
        return prefetch.PagesAhead(self.request_decorator(self._request), workers, partitions)

    def plan_ahead(
        self, ahead: prefetch.PagesAhead, paginator: BaseAPIPaginator, response: requests.Response
    ) -> None:
        """After an answer: send ahead what the loop asks next, in its order.

        The window's next page (certain once the paginator goes on), the pages its total makes
        known, the first pages of the windows after it, then those of the partitions after it.
        """
        if not ahead.enabled:
            return
        partition, window = prefetch.partition_of(self._context), self._window
        pages: t.Iterable[prefetch.Page] = ()
        if not paginator.finished:
            following = paginator.current_value
            known = (token for token in self.pages_ahead(following, response) if token != following)
            pages = (prefetch.Page(partition, window, token) for token in itertools.chain([following], known))
        later = [prefetch.Page(partition, *ahead_window) for ahead_window in self.windows_ahead()]
        ahead.plan(pages, later + self.partitions_ahead(), self.prepare_ahead)

    def partitions_ahead(self) -> list[prefetch.Page]:
        """The first pages of the partitions read after this one, in order, while each is known ahead."""
        if self._ahead is None:
            return []
        pages: list[prefetch.Page] = []
        for context in self._ahead.partitions_after(self._context):
            first = self.first_pages_ahead(context)
            if first is None:
                break  # not known ahead: the loop asks it itself, and what follows it later
            pages += first
            if len(pages) >= self.pages_in_flight:
                break
        return pages

    def first_pages_ahead(self, context: Context | None) -> list[prefetch.Page] | None:
        """The first page the loop will ask for ``context`` (none: it has nothing to read), from
        its saved state, written nowhere.

        ``None`` (not known ahead) for a window in flight (its resume may drop or clamp it), an
        unreadable state, or a start the provider would move (``start_ahead``).
        """
        saved = peek(self.tap_state, self.state_shape(), context or {}, self.tz)
        if saved is None or saved.progress is not None:
            return None
        partition = prefetch.partition_of(context)
        if not self.progress_windowed:
            return [prefetch.Page(partition, None, self.first_token())]
        start = saved.bookmark or self.config_datetime("start_date")
        start = self.start_ahead(context, start) if start is not None else None
        if start is None:
            return None
        windows = time_windows(floor_to(start, self.time_precision), self.sync_end(), self.window_span)
        return [prefetch.Page(partition, first, self.first_token()) for first in itertools.islice(windows, 1)]

    def start_ahead(self, context: Context | None, start: datetime) -> datetime | None:
        """Hook: ``clamp_start`` without its side effects (warnings), or ``None`` if not known ahead.

        A provider that overrides ``clamp_start`` overrides this too.
        """
        return start

    def windows_ahead(self) -> list[tuple[Window, t.Any]]:
        """The first pages of the windows after the current one (each read from its first page)."""
        window = self._window
        if window is None or self._planned_end is None or window.end >= self._planned_end:
            return []
        start = floor_to(self.clamp_start(self._context, window.end), self.time_precision)
        following = time_windows(start, self._planned_end, self.window_span)
        return [(later, self.first_token()) for later in itertools.islice(following, self.pages_in_flight)]

    def first_token(self) -> t.Any:
        """Hook: the paging token of a window's first page."""
        return 1

    def prepare_ahead(self, page: prefetch.Page) -> requests.PreparedRequest:
        """The request for a page of any window of any partition: its partition's context, its
        window's bounds and a fresh page size while it is built (then the current ones again)."""
        if page.window == self._window and page.partition == prefetch.partition_of(self._context):
            return self.prepare_page(self._context, page.token)
        current = self._window, self._page_size_in_use
        self._window, self._page_size_in_use = t.cast("Window | None", page.window), self.page_size
        try:
            return self.prepare_page(page.context, page.token)
        finally:
            self._window, self._page_size_in_use = current

    def prepare_page(self, context: Context | None, token: t.Any) -> requests.PreparedRequest:
        """The request for one page (the SDK's ``_prepare_request``, for any token, not only the next)."""
        request = self.get_http_request(page=PageContext(stream_context=context, next_page_token=token))
        body_kind = "json" if self.payload_as_json else "data"
        return self.build_prepared_request(
            method=request.method,
            url=request.url,
            params=request.encode_params(),
            headers=request.headers,
            **{body_kind: request.data},
        )

    def take_answer(self, response: requests.Response, context: Context | None) -> int | None:
        """An answer's turn in the loop: derived streams take its page; returns the provider's total.

        Here, not in the worker that fetched it: a page's secrets flag and derived rows must
        follow the page order of a sequential run.
        """
        # On the tap, not the stream: a page's rows may be written through another stream
        # (Talk-cloud's stage users come with the login-records answer).
        self._tap._answer_holds_secret = self._holds_secret(response.content)  # type: ignore[attr-defined]
        self.derived_feed.page(self.decode(response), context)
        return self.page_facts(response).total

    def pages_ahead(self, token: t.Any, response: requests.Response) -> t.Iterable[t.Any]:
        """Hook: the tokens the loop asks for next, from ``token`` on, if no answer changes.

        Page numbers up to the provider's total; none without a total (a page fetched on a
        guess could be empty: a call for nothing).
        """
        facts = self.page_facts(response)
        if facts.total is None:
            return ()
        size = facts.page_size or self._learned_page_size or self._page_size_in_use
        return range(int(token), -(-facts.total // max(1, size)) + 1)

    def decode(self, response: requests.Response) -> t.Any:
        """The response body as JSON, decoded once per response and tolerant of known defects."""
        cached = getattr(response, "_decoded_body", _MISSING)
        if cached is not _MISSING:
            return cached
        body = self.decode_typed(response.content) if self.typed_pages else None
        if body is not None:
            response._decoded_body = body  # type: ignore[attr-defined]
            return body
        try:
            body = tolerant_json.loads(response.content)
        except ValueError as error:
            raise ProviderAPIError(
                self.describe(
                    self.request_context,
                    f"HTTP {response.status_code}: {error}",
                    "the provider answered with something that is not JSON; retry later or "
                    "report it with the run log",
                )
            ) from error
        response._decoded_body = body  # type: ignore[attr-defined]
        return body

    def decode_typed(self, content: bytes) -> t.Any | None:
        """Hook: the body with its rows as ``typed_rows.TypedRows`` if it is a usual page, else ``None``.

        Only while ``typed_pages`` is set (the tap's own record loop, writing lines directly):
        every other reader gets dicts. See ``typed_rows``.
        """
        return None

    def rows_of(self, body: t.Any) -> list[dict]:
        """The rows in a decoded body; every provider says where its list lives."""
        raise NotImplementedError

    def malformed(self, response: requests.Response, what: str) -> MalformedAnswer:
        """The retriable error for a success answer without its row list (``what`` says how)."""
        return MalformedAnswer(
            f"HTTP {response.status_code} {what}: {self.one_line(self.excerpt(response.text))}", response
        )

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        """Rows of the page, decoded once (paging facts read the same decoded body)."""
        yield from self.rows_of(self.decode(response))

    def page_facts(self, response: requests.Response) -> PageFacts:
        """Paging facts of one response; providers override to read their total/page size."""
        return PageFacts(rows=len(self.rows_of(self.decode(response))))

    def has_more_pages(self, response: requests.Response, page: int) -> bool:
        """Whether another page exists, spending no call on a page known to be empty."""
        facts = self.page_facts(response)
        if facts.rows == 0:
            return False
        asked = self._page_size_in_use
        if facts.page_size is None and facts.rows > (self._learned_page_size or asked):
            # More rows than asked: the provider pages by its own size; page numbers follow it.
            self.learn_page_size(facts.rows, asked)
        size = facts.page_size or self._learned_page_size or asked
        if facts.total is None:
            return facts.rows >= size
        if facts.page_size is None and facts.rows < size and (page - 1) * size + facts.rows < facts.total:
            # Fewer rows than asked, yet more remain: the provider caps pages silently.
            size = self.learn_page_size(facts.rows, asked)
        return page * size < facts.total

    def learn_page_size(self, served: int, asked: int) -> int:
        """The provider pages by ``served`` rows, not the ``asked``: page numbers follow it from now."""
        self._learned_page_size = served
        self.logger.info(
            "%s returns %d rows per page although %d were asked; paging by %d",
            self.provider_name,
            served,
            asked,
            served,
        )
        return served

    # ------------------------------------------------------------------------ calls

    @property
    def call_guards(self) -> list[CallGuard]:
        """Guards asked before every attempt (budgets, rate limits); none by default."""
        return []

    @override
    def _request(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        """One attempt: guards before every request sent, the transport's rules, validation.

        ``transport.send`` keeps credentials on the configured host (a redirect elsewhere is
        refused) and ends the attempt within ``request_timeout`` however slowly the answer comes.
        """
        if self.ABORT_AT_RECORD_COUNT is not None and self.calls_made >= 1:
            # ``--test`` (a dry run): one call per stream shows the connection works.
            self._abort_sync(MaxRecordsLimitException("connection test: one call made"))
        request = self.authenticator(prepared_request)
        try:
            response = transport.send(
                self.requests_session, request, timeout=self.timeout, before_hop=self._before_call
            )
        except transport.RedirectRefused as refused:
            raise ProviderAPIError(
                self.describe(
                    context,
                    str(refused),
                    f"if the provider moved, set {self.provider_key}.base_url to its new address; "
                    "run again, the state resumes at this page",
                )
            ) from None
        self._write_request_duration_log(
            endpoint=self.path, response=response, context=context, extra_tags=None
        )
        try:
            self.validate_response(response)
        except RetriableAPIError as error:
            self.refuse_long_wait(context, error)
            raise
        with self._counting:
            self.progress.counts.pages += 1
        return response

    def _before_call(self) -> None:
        """Every request sent, redirect hops and retries included, passes the guards and counts."""
        prefetch.check_still_wanted()
        for guard in self.call_guards:
            guard.before_call()
        with self._counting:
            self.progress.counts.calls += 1

    @property
    def max_wait(self) -> float:
        """``max_wait_seconds``: the longest ``Retry-After`` worth waiting for within a run."""
        return float(self.config.get("max_wait_seconds", DEFAULT_MAX_WAIT_S))

    def refuse_long_wait(self, context: Context | None, error: RetriableAPIError) -> None:
        """Stop the partition (state kept) when the provider asks to wait past ``max_wait_seconds``."""
        asked = retry_after_seconds(getattr(error, "response", None))
        if asked is None or asked <= self.max_wait:
            return
        raise WaitTooLong(
            self.describe(
                context,
                f"{transport.describe_failure(error)}: the provider asks to wait {asked:.0f}s "
                f"(Retry-After) before the next call, more than max_wait_seconds={self.max_wait:g}",
                f"run again after {_later(asked)}; the state resumes at this page "
                "(or raise max_wait_seconds to wait within the run)",
            )
        )

    @override
    def request_decorator(self, func: t.Callable) -> t.Callable:
        """The SDK's retrying decorator, plus a clear one-line error when retries run out."""
        retrying = super().request_decorator(func)

        def call(prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
            try:
                response = retrying(prepared_request, context)
            except RetriableAPIError as error:
                raise ProviderAPIError(
                    self.describe(
                        context,
                        f"{self.redact(str(error))} (gave up after {self.backoff_max_tries()} attempts)",
                        MALFORMED_ACTION
                        if isinstance(error, MalformedAnswer)
                        else "the provider is failing or limiting us; run again later, the state "
                        "resumes at this page",
                    )
                ) from None
            except (requests.exceptions.RequestException, ConnectionError) as error:
                raise ProviderAPIError(
                    self.describe(
                        context,
                        f"{transport.describe_failure(error)} (gave up after {self.backoff_max_tries()} "
                        "attempts)",
                        f"check that {self.url_base} is reachable; run again, the state resumes at this page",
                    )
                ) from None
            return response

        return call

    @override
    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """Exponential waits with jitter, capped at ``backoff_max_seconds``, never below ``Retry-After``.

        A ``Retry-After`` above ``max_wait_seconds`` never gets here: ``refuse_long_wait``
        stops the partition instead.
        """
        base = float(self.config.get("backoff_base_seconds", 1.0))
        cap = float(self.config.get("backoff_max_seconds", 60.0))
        attempt = 0
        error = yield 0.0  # backoff primes the generator with send(None) and drops this value
        while True:
            retry_after = retry_after_seconds(getattr(error, "response", None))
            wait = transport.retry_wait(attempt, base=base, cap=cap, retry_after=retry_after)
            error = yield prefetch.defer_wait(wait)
            attempt += 1

    @override
    def backoff_jitter(self, value: float) -> float:
        """None on top: ``transport.retry_wait`` adds it within ``backoff_max_seconds``."""
        return value

    @override
    def backoff_handler(self, details: Details) -> None:
        """Log a retry without the URL's query or any header; a page fetched ahead waits here.

        In a worker the wait happens after this line (``prefetch.wait_deferred``), cut short
        when the run stops, instead of in backoff's sleep.
        """
        error = t.cast("BaseException | None", details.get("exception"))
        status = getattr(getattr(error, "response", None), "status_code", None)
        deferred = prefetch.deferred_wait()
        self.logger.warning(
            "%s: attempt %s failed (%s); retrying in %.1fs",
            self.describe_partition(self.request_context),
            details.get("tries"),
            error
            if isinstance(error, MalformedAnswer)
            else f"HTTP {status}"
            if status
            else transport.describe_failure(error),
            deferred if deferred is not None else details.get("wait", 0.0),
        )
        prefetch.wait_deferred()

    # ---------------------------------------------------------------- validation

    @override
    def validate_response(self, response: requests.Response) -> None:
        """Map HTTP statuses, then the provider's own body codes, to retry or fail."""
        status = response.status_code
        if status in RETRYABLE_STATUSES or status >= 500:
            raise RetriableAPIError(f"HTTP {status} {self.provider_message(response)}".strip(), response)
        if status in AUTH_STATUSES:
            raise ProviderAPIError(
                self.describe(
                    self.request_context,
                    f"HTTP {status}: {self.provider_message(response)}",
                    self.credential_hint,
                )
            )
        if status == 404:
            raise PartitionFailed(
                self.describe(
                    self.request_context,
                    f"HTTP {status}: {self.provider_message(response)}",
                    self.not_found_hint,
                )
            )
        if status >= 400:
            raise ProviderAPIError(
                self.describe(
                    self.request_context,
                    f"HTTP {status}: {self.provider_message(response)}",
                    "the request was refused; check the partition ids and settings",
                )
            )
        self.check_provider_status(response)

    def check_provider_status(self, response: requests.Response) -> None:
        """Hook: raise for an error the provider reports inside a 200 response."""

    def provider_message(self, response: requests.Response) -> str:
        """The provider's own words about a failure, short and on one line."""
        try:
            body = tolerant_json.loads(response.content)
        except ValueError:
            body = None
        return self.provider_words(body) or self.one_line(response.text or response.reason or "")

    def provider_words(self, body: t.Any) -> str:
        """The message field of a decoded error body (``msg``, ``message``, ...), or ``""``."""
        if isinstance(body, dict):
            for key in MESSAGE_KEYS:
                if body.get(key):
                    return self.one_line(str(body[key]))
        return ""

    # -------------------------------------------------------------------- progress

    def calls_left_note(self) -> str:
        """Hook: what a call budget still allows (e.g. ``"7 of 10 calls left today"``), or ``""``."""
        return ""

    def _with_budget(self, text: str) -> str:
        note = self.calls_left_note()
        return f"{text}; {note}" if note else text

    def report_window(self, context: Context | None, window: Window) -> None:
        """One INFO line per finished window: what it took and how many windows are left."""
        started = self._window_started
        end = self._planned_end or window.end
        left = sum(1 for _ in time_windows(window.end, end, self.max_window)) if end > window.end else 0
        self.logger.info(
            "%s",
            self._with_budget(
                f"{self.describe_partition(context)}: window {to_rfc3339(window.start)} .. "
                f"{to_rfc3339(window.end)} done: {self.progress.counts.since(started)}; "
                f"{left} window(s) left in this partition"
            ),
        )

    def report_partition(self, context: Context | None, outcome: str, started: Counts) -> None:
        """One INFO line per partition: how it ended, what it read, how many partitions are left."""
        self.progress.outcomes[outcome] += 1
        total = len(self.partitions) if self.partitions else 1
        left = max(0, total - sum(self.progress.outcomes.values()))
        self.logger.info(
            "%s",
            self._with_budget(
                f"{self.describe_partition(context)}: partition {outcome}: "
                f"{self.progress.counts.since(started)}; {left} of {total} partition(s) left in this stream"
            ),
        )

    # -------------------------------------------------------------------- messages

    def describe_partition(self, context: Context | None) -> str:
        """``Provider stream key=value``: where a message comes from."""
        where = " ".join(f"{key}={value}" for key, value in (context or {}).items())
        return f"{self.provider_name} {self.name}" + (f" {where}" if where else "")

    def describe(self, context: Context | None, problem: str, action: str) -> str:
        """The one-line error: where, what the provider said, and what to do."""
        return self.one_line(f"{self.describe_partition(context)}: {problem}. What to do: {action}.")

    def one_line(self, text: str) -> str:
        """Collapse whitespace, cut to a readable length, and mask every configured secret."""
        flat = self.redact(" ".join(text.split()))  # mask first: a cut must not halve a secret
        if len(flat) > _MAX_MESSAGE * 2:
            flat = flat[: _MAX_MESSAGE * 2] + "…"
        return flat

    def excerpt(self, text: str, limit: int = 200) -> str:
        """The start of a provider's answer for a message, masked before it is cut."""
        return self.redact(text)[:limit]

    @cached_property
    def _secrets(self) -> list[str]:
        """Every secret of the config and its secret parts, longest first (see ``redaction``)."""
        schema = getattr(self._tap, "config_jsonschema", None) or {}
        secrets = redaction.ordered(secret_values(self.config, schema))
        redaction.register(secrets)  # log lines too, whoever writes them
        return secrets

    def redact(self, text: str) -> str:
        """Replace every secret value from the config, and its secret parts, with ``***``."""
        return redaction.mask(text, self._secrets)


MESSAGE_KEYS = ("msg", "message", "error", "errmsg", "error_description", "info")
MIN_SECRET_LENGTH = redaction.MIN_SECRET_LENGTH
#: ``max_wait_seconds`` default: a ``Retry-After`` longer than this stops the partition.
DEFAULT_MAX_WAIT_S = 300.0


def secret_values(config: t.Any, schema: t.Mapping[str, t.Any]) -> t.Iterator[str]:
    """Every value the settings schema marks ``secret`` (all leaves of a secret object), with its
    secret parts (``redaction.secret_forms``: the token of ``Bearer <token>``, ...)."""
    if not isinstance(config, Mapping):  # the SDK hands the config over as a read-only mapping
        return
    properties = schema.get("properties") or {}
    for name, value in config.items():
        prop = properties.get(name) or {}
        if prop.get("secret"):
            for leaf in _leaves(value):
                yield from redaction.secret_forms(leaf)
        elif isinstance(value, Mapping):
            yield from secret_values(value, prop)


def _leaves(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif value is not None and len(str(value)) >= MIN_SECRET_LENGTH:
        yield str(value)


def int_or_none(value: t.Any) -> int | None:
    """An integer from a number or numeric string (providers send both), else ``None``."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def is_list_of_objects(value: t.Any) -> bool:
    """Whether ``value`` is a list of JSON objects (a page's rows): one C-level pass, no loop per row.

    A typed page's rows are (they were decoded from objects into structs).
    """
    if type(value) is TypedRows:
        return True
    return isinstance(value, list) and all(map(isinstance, value, itertools.repeat(dict)))


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP-date), if any."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
            return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            logging.getLogger(__name__).debug("unreadable Retry-After %r", value)
            return None


def _later(seconds: float) -> str:
    """``about 1 h`` / ``about 5 min``: when to run again, readably."""
    if seconds >= 3600:
        return f"about {seconds / 3600:.0f} h"
    return f"about {max(1, round(seconds / 60))} min"
