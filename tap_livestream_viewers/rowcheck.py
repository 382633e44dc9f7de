"""Checks every record passes before it leaves the tap: types, identity, key collisions.

Providers send what their documents do not promise: a number as text, ``"ten"`` where an
integer belongs, a row without its id, two different rows under one id. None of these may
stop a nightly run for good (the provider keeps the row, so the run would die at the same
page every night), and none may reach a target silently: a wrong type breaks a loader, an
empty or colliding primary key makes an upserting target keep one row of many. So:

* ``SchemaCoercer`` makes every value fit its schema type: a lossless conversion silently
  (``"42"`` into an integer column), anything else null, noted as a problem of that field.
* ``content_key`` derives a stable, distinct key from a row's own content, for rows whose
  identity is missing or taken by another row.
* ``KeyRegistry`` remembers the keys seen in a window, each with a 64-bit hash of its row,
  to tell a harmless repeat (same key, same content) from a collision (same key, other
  row); past ``MEMORY_KEYS`` keys it keeps them in a temporary file, so memory stays flat.
* ``ProblemLog`` counts problems per field and keeps the first few row keys, so a partition
  logs one warning per field, not one per row.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import typing as t
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

#: Row keys named per field in a warning; the count says how many more.
EXAMPLES = 5
_ENCODER = msgspec.json.Encoder(order="sorted")

Kind = str  # "integer", "number", "string", "date-time", "boolean", "object", "array", "any"


def raw_bytes(row: t.Any) -> bytes:
    """The row as sent, as canonical JSON (keys sorted): what content keys are derived from."""
    try:
        return _ENCODER.encode(row)
    except (TypeError, ValueError, OverflowError):
        return repr(row).encode("utf-8", "replace")


def content_digest(raw: bytes) -> str:
    """sha1 hex of the row's canonical JSON: the same row gives the same digest in every run."""
    return hashlib.sha1(raw).hexdigest()


def content_key(raw: bytes, kind: Kind) -> str | int:
    """A key derived from the row's content, in the type of the key column.

    Text columns: ``content:`` and the first 24 hex digits of the sha1. Integer columns: the
    negative of the first 15 hex digits (60 bits) plus one, which no provider id (all
    positive) can equal and every BIGINT column holds.
    """
    digest = content_digest(raw)
    if kind in ("integer", "number"):
        return -(int(digest[:15], 16) + 1)
    return f"content:{digest[:24]}"


def is_empty(value: t.Any) -> bool:
    """A key value that identifies nothing."""
    return value is None or (isinstance(value, str) and not value.strip())


def has_any(record: t.Mapping[str, t.Any], fields: tuple[str, ...]) -> bool:
    """Whether any of ``fields`` has a value in ``record`` (a loop: it runs for every record)."""
    for name in fields:
        value = record.get(name)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return True
    return False


# ---------------------------------------------------------------------- coercion


def kind_of(spec: t.Mapping[str, t.Any]) -> Kind:
    types = spec.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    types = [name for name in types if name != "null"]
    if not types:
        return "any"
    if "string" in types and spec.get("format") == "date-time":
        return "date-time"
    return types[0] if len(types) == 1 else "any"


_FAST: dict[Kind, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def coerce_value(value: t.Any, kind: Kind) -> tuple[t.Any, bool]:
    """``(value fitting kind, True)`` for a lossless conversion, ``(None, False)`` otherwise.

    ``""`` in a non-text column is "no value" (providers send it so): null, not a problem.
    """
    if kind == "any":
        return value, True
    if isinstance(value, str) and kind not in ("string", "date-time") and not value.strip():
        return None, True
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            return int(value), True
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("-").isdigit():
                return int(text), True
        return None, False
    if kind == "number":
        if isinstance(value, str):
            try:
                return float(value), True
            except ValueError:
                return None, False
        return None, False
    if kind == "string":
        if type(value) in (int, float):
            return str(value), True
        if type(value) is bool:
            return ("true" if value else "false"), True
        return None, False
    if kind == "date-time":
        if isinstance(value, str):
            try:
                if datetime.fromisoformat(value).tzinfo is not None:
                    return value, True
            except ValueError:
                pass
        return None, False
    if kind == "boolean":
        if value in (0, 1) and not isinstance(value, float):
            return bool(value), True
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "0", "1"):
            return value.strip().lower() in ("true", "1"), True
        return None, False
    if kind == "object":
        return ({}, True) if value == [] else (None, False)
    if kind == "array":
        return None, False
    return value, True


#: One property: (name, types that need no conversion, kind, nested properties); a plain
#: tuple, since the loop below runs for every value of every record.
_Prop = tuple[str, tuple[type, ...], Kind, tuple | None]


def _compile(properties: t.Mapping[str, t.Any]) -> tuple[_Prop, ...]:
    """Per property: the types taken as they are, and what else to check (see ``_coerce``)."""
    props: list[_Prop] = []
    for name, spec in properties.items():
        kind = kind_of(spec)
        if kind == "date-time":  # text, then checked for an offset: ``None`` marks it
            props.append((name, (str,), kind, None))
            continue
        children = _compile(spec.get("properties") or {}) if kind == "object" else ()
        props.append((name, _FAST.get(kind, ()), kind, children))
    return tuple(props)


def _aware(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 date-time with an offset, as the schema's date-time needs."""
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


class SchemaCoercer:
    """Make a record's values fit the stream's schema; report what had to be nulled.

    Nearly every record fits already. ``msgspec.convert`` into a struct of the schema's
    types (``strict``: no conversion, every field optional, other fields ignored; date-times
    with an offset) says so in one C-level pass. A record it refuses goes through the
    per-value loop (``_coerce``), which converts or nulls.
    """

    def __init__(self, schema: t.Mapping[str, t.Any]) -> None:
        properties = schema.get("properties") or {}
        self._props = _compile(properties)
        self._fits = struct_of(properties, "Record")
        self._fits_all = list[struct_of(properties, "Page", closed=True)]  # type: ignore[misc]

    def fits_all(self, records: list[dict]) -> bool:
        """Whether every record fits as it is and has no field beyond the schema's: one call per page.

        ``coerce`` would change nothing, and ``record_for_output`` would drop nothing (an
        unknown field is for the row path, which names it).
        """
        try:
            msgspec.convert(records, self._fits_all, strict=True)
        except msgspec.ValidationError:
            return False
        return True

    def coerce(self, record: dict, bad: t.Callable[[str, t.Any], None]) -> None:
        """Fix ``record`` in place; ``bad(field, raw)`` for every value set to null."""
        try:
            msgspec.convert(record, self._fits, strict=True)
        except msgspec.ValidationError:
            _coerce(record, self._props, bad, "")


#: Python types the struct checks, per kind. A ``date-time`` is RFC 3339 text with an offset
#: (msgspec reads it in C); text it refuses goes through ``_coerce``, which reads it as
#: ``datetime.fromisoformat`` does, so no value is nulled that the per-value loop would keep.
_STRUCT_TYPES: dict[Kind, t.Any] = {
    "integer": int,
    "number": int | float,
    "string": str,
    "date-time": t.Annotated[datetime, msgspec.Meta(tz=True)],
    "boolean": bool,
    "array": list,
}


def struct_of(properties: t.Mapping[str, t.Any], name: str, closed: bool = False) -> type[msgspec.Struct]:
    """A struct whose ``convert`` accepts exactly the records ``_coerce`` would leave alone.

    ``closed``: it also refuses a field that is not among ``properties`` (at its own level).
    """
    fields: list[tuple[str, t.Any, None]] = []
    rename: dict[str, str] = {}
    for index, (prop, spec) in enumerate(properties.items()):
        kind = kind_of(spec)
        if kind == "object":
            children = spec.get("properties")
            value_type = struct_of(children, f"{name}_{index}") if children else dict
        else:
            value_type = _STRUCT_TYPES.get(kind, t.Any)
        field_name = f"f{index}"  # property names need not be identifiers
        rename[field_name] = prop
        fields.append((field_name, value_type if value_type is t.Any else value_type | None, None))
    # gc=False: a struct here is built, checked and dropped; it holds no cycle to collect.
    return msgspec.defstruct(name, fields, rename=rename, forbid_unknown_fields=closed, gc=False)


def _coerce(record: dict, props: tuple[_Prop, ...], bad: t.Callable[[str, t.Any], None], prefix: str) -> None:
    get = record.get
    for name, fast, kind, children in props:
        value = get(name)
        if value is None:
            continue
        if type(value) in fast:  # the common case: already the right type (bool is not int)
            if children:
                _coerce(value, children, bad, f"{prefix}{name}.")
            elif children is None and not _aware(value):  # date-time text without an offset
                record[name] = None
                bad(f"{prefix}{name}", value)
            continue
        fixed, ok = coerce_value(value, kind)
        if fixed is not value:
            record[name] = fixed
        if not ok:
            bad(f"{prefix}{name}", value)


# ------------------------------------------------------------------- identities


#: Keys a window's registry holds in memory (about 13 MB) before the rest go to a temporary
#: file, each several µs slower (measured: 0.4 µs a key in memory, 8 µs a key over 1,000,000;
#: peak RSS at 1,000,000 rows in one window 12–16% over 100,000; at 50,000 keys +7%, but a
#: 100,000-row window then paid the file for half its keys, 8% of its time).
MEMORY_KEYS = 100_000
#: Page cache of the temporary file, KiB (SQLite's default is 2 MiB; the file is in the OS's
#: cache anyway, and 1 MiB measured no faster).
SPILL_CACHE_KIB = 256
#: New keys written to the file together, sorted (one insert per key would cost more; 8192
#: measured no faster, and held 1 MB more).
SPILL_BATCH = 2048
#: Bits of the filter in front of the file (1 MiB): a key it has not seen needs no lookup.
FILTER_BITS = 1 << 23
_KEY_ENCODER = msgspec.json.Encoder()


class KeyRegistry:
    """Keys seen in the current window, each with a fingerprint of the row that came under it.

    Keys are kept exactly (their canonical JSON), never as a hash of themselves: two keys
    that merely hash alike must not look like one key, or a legitimate row would get a
    content key. The row's fingerprint is a 64-bit hash of its record's JSON; a different
    row under the same key is told apart but for a 2**-64 chance (then missed, never
    invented).

    Memory stays flat however large the window (Nuoyun reads a whole account as one): the
    first ``memory_keys`` keys are held in a dict (about 130 bytes each); the keys after
    them go to a temporary file (``_Spill``). A key is looked up in both.
    """

    def __init__(self, memory_keys: int = MEMORY_KEYS) -> None:
        self._memory_keys = memory_keys
        self._seen: dict[bytes, int] = {}
        self._spill: _Spill | None = None

    def clear(self) -> None:
        """A new window: forget every key (the temporary file goes with it)."""
        self._seen.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def __len__(self) -> int:
        return len(self._seen) + (len(self._spill) if self._spill else 0)

    def add_new(self, keys: list[tuple], rows: list[int]) -> bool:
        """Hold a page's keys if each is new to the window and to the page; else hold none.

        One check for a whole page (``rows``: the fingerprints, as for ``collides``). ``False``
        leaves the registry as it was: the page's rows are then checked one by one, which
        tells a row seen again from a collision.
        """
        try:
            exact = list(map(_KEY_ENCODER.encode, keys))
        except (TypeError, ValueError, OverflowError):
            return False
        fresh = dict(zip(exact, rows, strict=True))
        seen = self._seen
        if len(fresh) != len(exact) or not seen.keys().isdisjoint(fresh):
            return False
        room = self._memory_keys - len(seen)
        if room >= len(fresh):
            seen.update(fresh)
            return True
        spill = self._spill
        if spill is not None and any(spill.recall(key) is not None for key in fresh):
            return False
        held = iter(fresh.items())
        seen.update(itertools.islice(held, max(room, 0)))
        spill = self._spill = spill or _Spill()
        for key, row in held:
            spill.add(key, row)
        return True

    def collides(self, key: tuple, row: int) -> bool:
        """Whether another row (other content) already came under ``key`` in this window.

        ``row`` is a hash of the row's content. The same row again (paging overlap, a re-read
        after rows moved) is not a collision.
        """
        exact = _key_bytes(key)
        seen = self._seen.get(exact)
        if seen is not None:
            return seen != row
        if self._spill is None:
            if len(self._seen) < self._memory_keys:
                self._seen[exact] = row
                return False
            self._spill = _Spill()
        seen = self._spill.recall_or_add(exact, row)
        return seen is not None and seen != row


class _Spill:
    """Keys past the memory tier, in a private temporary SQLite database.

    SQLite deletes the file (named by the empty string) when it is closed, at the window's
    end or the process's. New keys wait in a small batch and are inserted sorted; a fixed
    bit filter (two bits per key) says when a key cannot be in the file, so most new keys
    need no lookup. The filter only saves lookups: a key it may have seen is looked up, so
    its false positives cost time, never a wrong answer.
    """

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{SPILL_CACHE_KIB}"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY, row INTEGER NOT NULL) WITHOUT ROWID")
        self._pending: dict[bytes, int] = {}
        self._bits = bytearray(FILTER_BITS // 8)
        self._stored = 0

    def __len__(self) -> int:
        return self._stored + len(self._pending)

    def recall_or_add(self, exact: bytes, row: int) -> int | None:
        """The fingerprint stored under ``exact``, or ``None`` after storing ``row`` under it."""
        seen = self.recall(exact)
        if seen is None:
            self.add(exact, row)
        return seen

    def recall(self, exact: bytes) -> int | None:
        """The fingerprint stored under ``exact``, or ``None`` (nothing is stored)."""
        pending = self._pending.get(exact)
        if pending is not None:
            return pending
        first, second = _filter_bits(exact)
        bits = self._bits
        if bits[first >> 3] >> (first & 7) & 1 and bits[second >> 3] >> (second & 7) & 1:
            found = self._db.execute("SELECT row FROM seen WHERE key = ?", (exact,)).fetchone()
            if found is not None:
                return int(found[0])
        return None

    def add(self, exact: bytes, row: int) -> None:
        """Store ``row`` under ``exact``, a key not stored yet (``recall`` said so)."""
        first, second = _filter_bits(exact)
        self._bits[first >> 3] |= 1 << (first & 7)
        self._bits[second >> 3] |= 1 << (second & 7)
        self._pending[exact] = row
        if len(self._pending) >= SPILL_BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO seen (key, row) VALUES (?, ?)", sorted(self._pending.items()))
        self._db.execute("COMMIT")
        self._stored += len(self._pending)
        self._pending.clear()

    def close(self) -> None:
        self._db.close()


def _filter_bits(exact: bytes) -> tuple[int, int]:
    """The key's two bits in the spill's filter."""
    spread = hash(exact)
    return spread & (FILTER_BITS - 1), (spread >> 32) & (FILTER_BITS - 1)


def _key_bytes(key: tuple) -> bytes:
    """A key's values as JSON (exact for every type a record holds), else as their ``repr``."""
    try:
        return _KEY_ENCODER.encode(key)
    except (TypeError, ValueError, OverflowError):
        return repr(key).encode("utf-8", "replace")


@dataclass
class Tally:
    """Problems of one kind with one field in one partition."""

    count: int = 0
    keys: list[str] = field(default_factory=list)
    first_value: t.Any = None
    note: str = ""

    def add(self, key: str, value: t.Any, note: str) -> None:
        if self.count == 0:
            self.first_value = value
            self.note = note
        self.count += 1
        if len(self.keys) < EXAMPLES:
            self.keys.append(key)

    def examples(self) -> str:
        more = f" and {self.count - len(self.keys)} more" if self.count > len(self.keys) else ""
        return ", ".join(self.keys) + more


class ProblemLog:
    """Problems per (kind, field), collected over a partition and logged once at its end."""

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str], Tally] = {}

    def add(self, kind: str, field_name: str, key: str, value: t.Any = None, note: str = "") -> None:
        self._tallies.setdefault((kind, field_name), Tally()).add(key, value, note)

    def drain(self) -> list[tuple[str, str, Tally]]:
        """Every tally, oldest first, and forget them."""
        items = [(kind, name, tally) for (kind, name), tally in self._tallies.items()]
        self._tallies.clear()
        return items
