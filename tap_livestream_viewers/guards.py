"""Guards that every HTTP attempt passes before it is sent: call budgets and rate limits.

The SDK retries and pages, but it has no notion of "this provider allows 10 calls a day"
(Mudu) or "1000 calls per 10 seconds" (Nuoyun). A stream lists its guards, and the base
stream asks each of them before every attempt, retries included, because a retry is a
call the provider counts too.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from datetime import datetime, tzinfo

from tap_livestream_viewers.budget_store import CallLedger
from tap_livestream_viewers.timeutil import next_local_midnight


class CallBudgetExhausted(Exception):
    """Raised before a call that the budget does not allow; the stream stops cleanly."""

    def __init__(
        self, calls_made: int, limit: int, resets_at: datetime, provider_said: str | None = None
    ) -> None:
        super().__init__(f"{calls_made} of {limit} calls used; resets at {resets_at.isoformat()}")
        self.calls_made = calls_made
        self.limit = limit
        self.resets_at = resets_at
        #: The provider's own "limit reached" answer, when it was the provider that said so.
        self.provider_said = provider_said


class CallGuard:
    """Something consulted before every HTTP attempt."""

    def before_call(self) -> None:  # pragma: no cover - interface
        """Block, raise, or return to let the call go."""
        raise NotImplementedError


def credential_fingerprint(secret: str) -> str:
    """A short, one-way name for a credential, so state can key on it without holding it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


class DailyCallBudget(CallGuard):
    """At most ``limit`` calls per credential per provider-local day, claimed from a shared store.

    ``mirror`` is the store every process sees (the machine-local file, or PostgreSQL with
    ``call_budget_store``): each call is claimed there atomically before it is sent, so two
    processes on one token never spend more than ``limit`` together. ``ledger`` is a dict
    inside the tap state, the record of the count (``{"day": "YYYY-MM-DD", "calls": n}``), so a
    state saved elsewhere still carries it; a new day starts the count at zero. The higher of
    the two counts wins.
    """

    def __init__(
        self,
        ledger: MutableMapping[str, dict],
        credential: str,
        limit: int,
        tz: tzinfo,
        clock: Callable[[], datetime],
        mirror: CallLedger | None = None,
    ) -> None:
        self._ledger = ledger
        #: A machine-local copy of the count, so a run given no state still knows it.
        self._mirror = mirror
        self._key = credential_fingerprint(credential)
        self.limit = limit
        self._tz = tz
        self._clock = clock
        #: Threads of one process claim one at a time (the store serialises processes).
        self._claiming = threading.Lock()

    def _entry(self) -> dict:
        today = self._clock().astimezone(self._tz).date().isoformat()
        entry = self._ledger.get(self._key)
        if not entry or entry.get("day") != today:
            entry = {"day": today, "calls": 0}
            self._ledger[self._key] = entry
        local = self._mirror.get(self._key) if self._mirror else None
        if local and local.get("day") == today and int(local.get("calls") or 0) > entry["calls"]:
            entry["calls"] = int(local["calls"])
        return entry

    def _mirror_entry(self, entry: dict) -> None:
        if self._mirror is not None:
            self._mirror.record(self._key, entry)

    @property
    def calls_today(self) -> int:
        """Calls already spent today with this credential (this run and earlier ones)."""
        return int(self._entry()["calls"])

    @property
    def remaining(self) -> int:
        """Calls still allowed today."""
        return max(0, self.limit - self.calls_today)

    @property
    def resets_at(self) -> datetime:
        """The next provider-local midnight, when the provider resets its counter."""
        return next_local_midnight(self._clock(), self._tz)

    def before_call(self) -> None:
        """Claim one call from the shared store, or raise ``CallBudgetExhausted`` without spending it.

        The claim (read, check, increment, write) is one atomic step of the store, so no other
        process can take the same call; the state then records the count.
        """
        with self._claiming:
            self._claim()

    def _claim(self) -> None:
        entry = self._entry()
        if entry["calls"] >= self.limit:
            raise CallBudgetExhausted(entry["calls"], self.limit, self.resets_at)
        if self._mirror is None:
            entry["calls"] += 1
            return
        claimed = self._mirror.claim(self._key, entry["day"], self.limit, at_least=entry["calls"])
        if claimed is None:
            entry["calls"] = max(entry["calls"], self.limit)
            raise CallBudgetExhausted(entry["calls"], self.limit, self.resets_at)
        entry["calls"] = max(entry["calls"] + 1, claimed)

    def mark_exhausted(self) -> None:
        """The provider itself said the limit is reached: believe it for the rest of the day."""
        entry = self._entry()
        entry["calls"] = max(entry["calls"], self.limit)
        self._mirror_entry(entry)


class SlidingWindowRateLimiter(CallGuard):
    """Never more than ``max_calls`` calls in any ``period`` seconds (blocks until allowed).

    Keeps the send times of the last ``max_calls`` calls; a new call waits until the oldest
    of them is more than ``period`` old. Thread-safe, so concurrent partitions share it.
    """

    def __init__(
        self,
        max_calls: int,
        period: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def before_call(self) -> None:
        """Wait until a call is allowed, then record it."""
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.period:
                    self._sent.popleft()
                if len(self._sent) < self.max_calls:
                    self._sent.append(now)
                    return
                self._sleep(self.period - (now - self._sent[0]) + 0.001)
