"""Pages fetched ahead in worker threads, handed over in the order a sequential run reads them.

Once a window's first answer gives the provider's total, its next pages are known: they are
sent, at most ``max_concurrency`` at a time, while the reading thread writes the records of
earlier pages. Only the sending happens in the workers. Records, STATE and derived rows are
still produced by the one reading thread, page after page, so the output is exactly that of
a sequential run:

* a page fetched ahead is used only when the sequential loop asks for that very token;
* when an answer's total differs from the one before it (rows moved), answers of that
  partition sent earlier may predate it: they are dropped (``forget``), and the next pages are
  asked one at a time, after what the stream has read, until the total holds still again;
* an error of a page fetched ahead (retries spent, a refused call, a spent budget) is raised
  when the loop reaches that page, after the records and STATE of every page before it.

Pages are keyed by partition, window and token (``Page``), and one ``PagesAhead`` serves every
partition of a stream's sync: while the last pages of a partition are read, the first pages of
the partitions after it are already on their way. Each worker knows the partition of the request
it sends (``request_context``), so its messages name that partition, not the one being read.

A page fetched ahead and never used (the run stopped first, or rows moved) is a call spent
for nothing, so a provider with a daily budget (Mudu) reads one page at a time.
"""

from __future__ import annotations

import itertools
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

    import requests

#: Pages read one at a time after an answer showed rows moving, before fetching ahead again.
HOLD_PAGES = 2

#: Sends one prepared request for a partition (its context), retries included.
Send = t.Callable[["requests.PreparedRequest", "Mapping[str, t.Any] | None"], "requests.Response"]
#: A partition as a hashable key: its context's items, sorted (``()``: a stream without partitions).
Partition = tuple[tuple[str, t.Any], ...]


def partition_of(context: Mapping[str, t.Any] | None) -> Partition:
    """The key of a partition's context (contexts are dicts of ids, which hash)."""
    return tuple(sorted((context or {}).items()))


class Page(t.NamedTuple):
    """One page a sequential run asks for: its partition, its window (``None``: unwindowed), its token."""

    partition: Partition
    window: Hashable
    token: Hashable

    @property
    def context(self) -> dict[str, t.Any] | None:
        """The partition's context as the stream reads it (``None`` for a stream without partitions)."""
        return dict(self.partition) or None


class _Sent(t.NamedTuple):
    """A page sent ahead: its answer to come, and the event that stops its worker's next attempt."""

    answer: Future[requests.Response]
    dropped: threading.Event

    def drop(self) -> None:
        """Nobody will read it: not sent if not started, else no retry (``check_still_wanted``)."""
        self.dropped.set()
        self.answer.cancel()


class PagesAhead:
    """Up to ``workers`` requests in flight, keyed by ``Page``, taken in the loop's order.

    ``partitions``: the stream's partitions in the order the loop reads them (``[None]`` without
    partitions), so the first pages of the next ones can be planned.
    """

    def __init__(
        self, send: Send, workers: int, partitions: Sequence[Mapping[str, t.Any] | None] = ()
    ) -> None:
        self._send = send
        self._workers = max(1, workers)
        self._partitions = [partition_of(context) for context in partitions]
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Page, _Sent] = {}
        #: Answers still to read one at a time after rows moved (``forget``).
        self._hold = 0

    @property
    def enabled(self) -> bool:
        """Whether pages are fetched ahead at all (``max_concurrency`` above 1)."""
        return self._workers > 1

    def send(
        self, request: requests.PreparedRequest, context: Mapping[str, t.Any] | None
    ) -> requests.Response:
        """Send one request now, in this thread (a page nobody fetched ahead)."""
        return self._send(request, context)

    def take(self, page: Page) -> requests.Response | None:
        """The answer fetched ahead for ``page`` (waiting for it), or ``None``: fetch it now.

        A worker's exception is raised here, at this page's turn.
        """
        sent = self._pending.pop(page, None)
        return sent.answer.result() if sent is not None else None

    def partitions_after(self, context: Mapping[str, t.Any] | None) -> list[dict[str, t.Any] | None]:
        """The contexts of the partitions the loop reads after ``context``, in order."""
        key = partition_of(context)
        if key not in self._partitions:
            return []
        following = self._partitions[self._partitions.index(key) + 1 :]
        return [dict(partition) or None for partition in following]

    def is_last(self, context: Mapping[str, t.Any] | None) -> bool:
        """Whether the loop reads no partition after ``context``."""
        return not self.partitions_after(context)

    def plan(
        self,
        pages: Iterable[Page],
        later: Sequence[Page],
        prepare: Callable[[Page], requests.PreparedRequest],
    ) -> None:
        """Send the next pages the loop will ask for (in order), keeping those already sent.

        ``pages``: the current window's, in order (maybe many); ``later``: the first pages of
        the windows and partitions after it (a few). The first ``workers`` of them all are sent;
        a page already sent stays while it is still upcoming (a page of a later partition
        pushed back by the current window's total is not dropped, so never asked twice); any
        other is forgotten. At most ``workers`` plus the few of ``later`` wait to be read.
        """
        if not self.enabled or self._hold:
            return
        wanted: list[Page] = []
        for page in itertools.chain(pages, later):
            wanted.append(page)
            if len(wanted) == self._workers:
                break
        keep = set(wanted) | set(later)
        self._drop([page for page in self._pending if page not in keep])
        for page in wanted:
            if page not in self._pending:
                dropped = threading.Event()
                answer = self._executor().submit(self._send_ahead, page, prepare(page), dropped)
                self._pending[page] = _Sent(answer, dropped)

    def drop_partition(self, context: Mapping[str, t.Any] | None) -> None:
        """The loop leaves a partition: its pages still waiting will never be read."""
        key = partition_of(context)
        self._drop([page for page in self._pending if page.partition == key])

    def forget(self, context: Mapping[str, t.Any] | None) -> None:
        """Drop the partition's pages fetched ahead: they may predate what the loop has just read.

        Rows are moving: the next ``HOLD_PAGES`` pages are read one at a time, so a provider
        whose rows move after every page costs the calls of a sequential run, not more. The
        first pages of later partitions stay: nothing of theirs has been read to differ from.
        """
        self.drop_partition(context)
        self._hold = HOLD_PAGES

    def steady(self) -> None:
        """An answer agreed with the one before it (same total): one step nearer fetching ahead."""
        self._hold = max(0, self._hold - 1)

    def _drop(self, pages: Iterable[Page]) -> None:
        for page in pages:
            self._pending.pop(page).drop()

    def close(self) -> None:
        """Leave the loop: pending pages are dropped, workers end without another attempt."""
        self._drop(list(self._pending))  # each page's worker stops before its next attempt
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _send_ahead(
        self, page: Page, request: requests.PreparedRequest, dropped: threading.Event
    ) -> requests.Response:
        """In a worker: send, marking the thread so a retry of a page dropped (or after ``close``)
        is not sent, and its messages name the page's partition."""
        _worker.closed = dropped
        _worker.context = page.context
        try:
            return self._send(request, page.context)
        finally:
            _worker.context = _MISSING

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="page-ahead")
        return self._pool


class LoopLeft(Exception):
    """A worker's next attempt for a page nobody will read (dropped, or the loop left): not sent."""


_worker = threading.local()
_MISSING: t.Any = object()


def request_context(reading: Mapping[str, t.Any] | None) -> Mapping[str, t.Any] | None:
    """The partition of the request this thread is sending: a worker's own, else ``reading``.

    Messages about a request (retries, refusals, provider codes) name its partition; a page
    fetched ahead may belong to a partition after the one the reading thread is on.
    """
    context = getattr(_worker, "context", _MISSING)
    return reading if context is _MISSING else t.cast("Mapping[str, t.Any] | None", context)


def check_still_wanted() -> None:
    """Before every attempt: a worker whose page was dropped (or whose loop was left) sends
    nothing more (retries included).

    In the reading thread (no worker mark) this never raises.
    """
    closed: threading.Event | None = getattr(_worker, "closed", None)
    if closed is not None and closed.is_set():
        raise LoopLeft("nobody will read this page fetched ahead any more; it is not sent")


def defer_wait(seconds: float) -> float:
    """A retry wait as backoff should sleep it: in a worker, 0 (``wait_deferred`` waits instead).

    backoff's own sleep cannot be cut short; a worker whose loop was left (the run stopped)
    must not hold the process for a long ``Retry-After``.
    """
    if getattr(_worker, "closed", None) is None:
        return seconds
    _worker.deferred = seconds
    return 0.0


def deferred_wait() -> float | None:
    """The retry wait a worker is about to wait (``None`` in the reading thread), for the log line."""
    return getattr(_worker, "deferred", None)


def wait_deferred() -> float | None:
    """In a worker: wait the deferred retry wait, ending early when its page is dropped; its length.

    ``None`` in the reading thread (backoff sleeps there, as usual).
    """
    closed: threading.Event | None = getattr(_worker, "closed", None)
    seconds: float | None = getattr(_worker, "deferred", None)
    if closed is None or seconds is None:
        return None
    _worker.deferred = None
    closed.wait(seconds)
    return seconds
