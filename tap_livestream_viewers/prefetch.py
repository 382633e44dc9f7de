"""Pages fetched ahead in worker threads, handed over in the order a sequential run reads them.

Once a window's first answer gives the provider's total, its next pages are known: they are
sent, at most ``max_concurrency`` at a time, while the reading thread writes the records of
earlier pages. Only the sending happens in the workers. Records, STATE and derived rows are
still produced by the one reading thread, page after page, so the output is exactly that of
a sequential run:

* a page fetched ahead is used only when the sequential loop asks for that very token;
* when an answer's total differs from the one before it (rows moved), answers sent earlier
  may predate it: they are dropped (``forget``), and the next pages are asked one at a time,
  after what the stream has read, until the total holds still again;
* an error of a page fetched ahead (retries spent, a refused call, a spent budget) is raised
  when the loop reaches that page, after the records and STATE of every page before it.

A page fetched ahead and never used (the run stopped first, or rows moved) is a call spent
for nothing, so a provider with a daily budget (Mudu) reads one page at a time.
"""

from __future__ import annotations

import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    import requests

#: Pages read one at a time after an answer showed rows moving, before fetching ahead again.
HOLD_PAGES = 2

Send = t.Callable[["requests.PreparedRequest"], "requests.Response"]


class PagesAhead:
    """Up to ``workers`` requests in flight, keyed by paging token, taken in the loop's order."""

    def __init__(self, send: Send, workers: int) -> None:
        self._send = send
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Hashable, Future[requests.Response]] = {}
        #: Answers still to read one at a time after rows moved (``forget``).
        self._hold = 0
        #: Set when the loop is left: workers stop before their next attempt (no call is wasted).
        self.closed = threading.Event()

    @property
    def enabled(self) -> bool:
        """Whether pages are fetched ahead at all (``max_concurrency`` above 1)."""
        return self._workers > 1

    def send(self, request: requests.PreparedRequest) -> requests.Response:
        """Send one request now, in this thread (a page nobody fetched ahead)."""
        return self._send(request)

    def take(self, token: Hashable) -> requests.Response | None:
        """The answer fetched ahead for ``token`` (waiting for it), or ``None``: fetch it now.

        A worker's exception is raised here, at this page's turn.
        """
        future = self._pending.pop(token, None)
        return future.result() if future is not None else None

    def plan(
        self, upcoming: Iterable[Hashable], prepare: Callable[[Hashable], requests.PreparedRequest]
    ) -> None:
        """Send the next pages the loop will ask for (in order), keeping those already sent.

        A token no longer upcoming is forgotten; at most ``workers`` pages are in flight or
        waiting to be read, so memory stays bounded by a few pages.
        """
        if not self.enabled or self._hold:
            return
        wanted: list[Hashable] = []
        for token in upcoming:
            wanted.append(token)
            if len(wanted) == self._workers:
                break
        for token in [token for token in self._pending if token not in wanted]:
            self._pending.pop(token).cancel()
        for token in wanted:
            if token not in self._pending:
                self._pending[token] = self._executor().submit(self._send_ahead, prepare(token))

    def forget(self) -> None:
        """Drop every page fetched ahead: they may predate what the loop has just read.

        Rows are moving: the next ``HOLD_PAGES`` pages are read one at a time, so a provider
        whose rows move after every page costs the calls of a sequential run, not more.
        """
        self._drop_pending()
        self._hold = HOLD_PAGES

    def steady(self) -> None:
        """An answer agreed with the one before it (same total): one step nearer fetching ahead."""
        self._hold = max(0, self._hold - 1)

    def _drop_pending(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def close(self) -> None:
        """Leave the loop: pending pages are dropped, workers end without another attempt."""
        self.closed.set()
        self._drop_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _send_ahead(self, request: requests.PreparedRequest) -> requests.Response:
        """In a worker: send, marking the thread so a retry after ``close`` is not sent."""
        _worker.closed = self.closed
        return self._send(request)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="page-ahead")
        return self._pool


class LoopLeft(Exception):
    """A worker's next attempt after the reading loop was left: not sent."""


_worker = threading.local()


def check_still_wanted() -> None:
    """Before every attempt: a worker whose loop was left sends nothing more (retries included).

    In the reading thread (no worker mark) this never raises.
    """
    closed: threading.Event | None = getattr(_worker, "closed", None)
    if closed is not None and closed.is_set():
        raise LoopLeft("the page loop was left; this page fetched ahead is not sent")


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
    """In a worker: wait the deferred retry wait, ending early when the loop is left; its length.

    ``None`` in the reading thread (backoff sleeps there, as usual).
    """
    closed: threading.Event | None = getattr(_worker, "closed", None)
    seconds: float | None = getattr(_worker, "deferred", None)
    if closed is None or seconds is None:
        return None
    _worker.deferred = None
    closed.wait(seconds)
    return seconds
