"""The machine-local daily call counts: claimed here before each call, shared by processes.

The day's count of a budgeted provider lives in the state (``call_ledger``), but a run
given no state (``meltano run --full-refresh``, ``--test``, a first run) would start at
zero and could spend calls the provider already counted. Every counted call is therefore
also written here: one JSON file, ``$XDG_STATE_HOME/tap-livestream-viewers/call-ledger.json``
(default ``~/.local/state/...``), keyed by the same credential fingerprint as the state
(never the credential). A budget uses the higher of the two counts for today.

Every process of the user on this machine (two shards of one account run in parallel, a
``--full-refresh`` next to the nightly run) claims each call here (``claim``: read, check,
increment, write, all under one file lock) before sending it, so together they never spend
more than the day's limit. It only knows the calls made from this machine (or container
volume); shards on several machines use ``call_budget_store`` (``budget_store.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import typing as t
from pathlib import Path

LOGGER = logging.getLogger(__name__)


def default_path() -> Path:
    """``$XDG_STATE_HOME/tap-livestream-viewers/call-ledger.json`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tap-livestream-viewers" / "call-ledger.json"


class LocalCallLedger:
    """Per-fingerprint ``{"day", "calls"}`` entries in a JSON file, updated under a file lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def get(self, key: str) -> dict[str, t.Any] | None:
        """The entry of a credential fingerprint, or ``None`` (also when the file is unreadable)."""
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def record(self, key: str, entry: t.Mapping[str, t.Any]) -> None:
        """Store ``entry`` for ``key`` unless the file already holds more calls for that day."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                ledger = self._read()
                known = ledger.get(key)
                same_day = isinstance(known, dict) and known.get("day") == entry["day"]
                if same_day and int(known.get("calls") or 0) >= int(entry["calls"]):  # type: ignore[union-attr]
                    return
                ledger[key] = {"day": entry["day"], "calls": int(entry["calls"])}
                self._write(ledger)
        except OSError as error:
            LOGGER.warning(
                "could not write the local call ledger %s (%s); the state still counts the call",
                self.path,
                error.strerror or error,
            )

    def claim(self, key: str, day: str, limit: int, at_least: int = 0) -> int | None:
        """Take one call of ``day`` atomically: the new count, or ``None`` when ``limit`` is reached.

        ``at_least`` is the count the caller already knows of (its state), so the file never
        holds less. When the file cannot be written the claim is granted with a warning
        (``0``): the state still counts the call, as before this file existed.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                ledger = self._read()
                known = ledger.get(key)
                calls = (
                    int(known.get("calls") or 0) if isinstance(known, dict) and known.get("day") == day else 0
                )
                calls = max(calls, at_least)
                if calls >= limit:
                    return None
                ledger[key] = {"day": day, "calls": calls + 1}
                self._write(ledger)
                return calls + 1
        except OSError as error:
            LOGGER.warning(
                "could not write the local call ledger %s (%s); only this run's state counts the call",
                self.path,
                error.strerror or error,
            )
            return 0

    def _write(self, ledger: dict[str, t.Any]) -> None:
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(ledger, sort_keys=True))
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def _locked(self) -> t.Iterator[None]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, t.Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            LOGGER.warning(
                "the local call ledger %s is unreadable; only the state's counts are used", self.path
            )
            return {}
        return data if isinstance(data, dict) else {}
