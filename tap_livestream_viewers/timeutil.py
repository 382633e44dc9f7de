"""Time conversions shared by every provider.

Providers disagree on how they write time: Shangzhibo uses UTC ISO-8601 with ``Z``, Mudu
and Nuoyun write naive ``YYYY-MM-DD HH:MM[:SS]`` in their own (China) time, Talk-cloud
gives unix seconds. Every record leaves the tap as RFC 3339 with an explicit offset, so
these helpers are the only place where that translation happens.
"""

from __future__ import annotations

import re
import typing as t
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = timezone.utc

_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@lru_cache(maxsize=16)
def zone(name: str) -> tzinfo:
    """Return the time zone called ``name`` (cached: records call this per field)."""
    return ZoneInfo(name)


def parse_datetime(value: str, default_tz: tzinfo) -> datetime:
    """Parse an ISO-8601 or provider-style date-time; a value without offset is in ``default_tz``.

    Accepts ``2020-03-31T08:21:00.000Z``, ``2025-09-16 15:06:06``, ``2018-03-15 15:33`` and a
    bare date. Raises ``ValueError`` for anything else, so a bad value never passes silently.
    """
    text = value.strip()
    try:
        # Fast path (called per record): ISO-8601 in any of the providers' forms.
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = _parse_naive(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed


def _parse_naive(text: str) -> datetime:
    for fmt in _NAIVE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"not a date-time: {text!r}")


def to_rfc3339(moment: datetime) -> str:
    """Render an aware date-time as RFC 3339 with its offset (``+08:00``, or ``+00:00``)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive date-time {moment!r} has no offset")
    return moment.isoformat()


def local_to_rfc3339(value: object, default_tz: tzinfo) -> str | None:
    """Provider-local text (no offset) to RFC 3339; empty or zero-like values become ``None``.

    ``2025-09-16 15:06:06`` in China time becomes ``2025-09-16T15:06:06+08:00``. Called per
    record: the ISO fast path of ``parse_datetime`` reads the providers' forms.
    """
    if type(value) is str and len(value) == 19 and (tail := value[13:]) in _MINUTE_SECONDS:
        # The usual form ``YYYY-MM-DD HH:MM:SS``: its date and hour are read once per hour.
        hour = _local_hour(value[:13], default_tz)
        if hour is not None:
            return hour[0] + tail + hour[1]
    text = str(value) if value else ""
    if not text or text.startswith("0000-00-00"):
        return None
    if len(text) in (16, 19) and text[10] == " " and _CLOCK.fullmatch(text, 11):
        # The common case, without parsing: the date-hour's offset is looked up once per hour.
        try:
            offset = _hour_offset(text[:13], default_tz)
        except ValueError:
            offset = None  # not a real date or hour: the full parse below says so
        if offset is not None:
            seconds = ":00" if len(text) == 16 else ""
            return f"{text[:10]}T{text[11:]}{seconds}{offset}"
    return to_rfc3339(parse_datetime(text, default_tz))


def local_column(values: t.Iterable[object], default_tz: tzinfo) -> list[str | None]:
    """``local_to_rfc3339`` of every value of a page's column, value for value; raises as it does.

    The usual form's date-hours are looked up in one dict per zone (``_local_hour`` on a miss).
    """
    hours = _HOURS.setdefault(default_tz, {})
    if len(hours) > _HOURS_KEPT:
        hours.clear()
    out: list[str | None] = []
    append = out.append
    for value in values:
        if type(value) is str and len(value) == 19 and (tail := value[13:]) in _MINUTE_SECONDS:
            try:
                hour = hours[value[:13]]
            except KeyError:  # a date-hour not read yet: once per hour and zone
                hour = hours[value[:13]] = _local_hour(value[:13], default_tz)
            if hour is not None:
                append(f"{hour[0]}{tail}{hour[1]}")
                continue
        append(local_to_rfc3339(value, default_tz))
    return out


#: Date-hours read by ``local_column``, per zone (at most ``_HOURS_KEPT`` each, then cleared).
_HOURS: dict[tzinfo, dict[str, tuple[str, str] | None]] = {}
_HOURS_KEPT = 65_536


#: ``HH:MM`` or ``HH:MM:SS`` after ``YYYY-MM-DD `` (the hour itself is checked by ``_hour_offset``).
_CLOCK = re.compile(r"\d\d:[0-5]\d(:[0-5]\d)?")
#: Every ``:MM:SS`` of a real minute and second: the tail of the usual form, in one lookup.
_MINUTE_SECONDS = frozenset(f":{minute:02d}:{second:02d}" for minute in range(60) for second in range(60))
#: ``YYYY-MM-DD HH`` in digits (the date and hour themselves are checked by ``_hour_offset``).
_DATE_HOUR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}")


@lru_cache(maxsize=8192)
def _local_hour(date_hour: str, tz: tzinfo) -> tuple[str, str] | None:
    """``("2025-09-16T15", "+08:00")`` for a provider-local hour; ``None``: the general path reads it.

    ``None`` for text that is not a real date and hour (``0000-00-00 00``) and for an hour in
    which the zone's offset changes.
    """
    if not _DATE_HOUR.fullmatch(date_hour):
        return None
    try:
        offset = _hour_offset(date_hour, tz)
    except ValueError:
        return None
    return None if offset is None else (f"{date_hour[:10]}T{date_hour[11:]}", offset)


@lru_cache(maxsize=8192)
def _hour_offset(date_hour: str, tz: tzinfo) -> str | None:
    """The RFC 3339 offset of a provider-local hour (``2025-09-16 15``), or ``None`` if it changes in it.

    Same answer as parsing every value (``fold=0`` on a repeated or skipped hour); an hour in
    which the zone's offset changes is left to the full parse.
    """
    start = datetime.fromisoformat(f"{date_hour}:00:00").replace(tzinfo=tz)
    if start.utcoffset() != start.replace(minute=59, second=59).utcoffset():
        return None
    return start.isoformat()[19:]


def unix_to_rfc3339(seconds: int | str | None, tz: tzinfo) -> str | None:
    """Unix seconds to RFC 3339 in ``tz``; missing or zero values become ``None``."""
    if seconds in (None, "", 0, "0"):
        return None
    return datetime.fromtimestamp(int(seconds), tz).isoformat()


def to_utc_z(moment: datetime) -> str:
    """UTC with milliseconds and ``Z``: the form Shangzhibo documents (``2019-06-21T01:52:12.736Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_local_text(moment: datetime, tz: tzinfo) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in ``tz``: the request form of Mudu and Talk-cloud's dates."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


_HMS = re.compile(r"^\s*(\d+):([0-5]?\d):([0-5]?\d)\s*$")


def hms_to_seconds(value: str | None) -> int | None:
    """``HH:MM:SS`` (hours may exceed 24) to seconds; ``None`` when absent, ``ValueError`` if malformed."""
    if value is None or value == "":
        return None
    match = _HMS.match(value)
    if not match:
        raise ValueError(f"not an HH:MM:SS duration: {value!r}")
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def minutes_to_seconds(value: int | float | str | None) -> int | None:
    """Shangzhibo's ``duration`` is minutes; keep the raw value and add this one."""
    if value is None or value == "":
        return None
    return round(float(value) * 60)


def floor_to_second(moment: datetime) -> datetime:
    """Drop sub-second digits: windows bounded by whole seconds are stable across runs."""
    return moment.replace(microsecond=0)


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """The latest whole multiple of ``step`` (counted from the unix epoch) at or before ``moment``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return moment - ((moment - epoch) % step)


#: Plausible epoch range of a provider time sent as a number: 2000-01-01 .. 2100-01-01.
_EPOCH_LOW, _EPOCH_HIGH = 946_684_800, 4_102_444_800


def epoch_to_datetime(value: object) -> datetime | None:
    """A number (or numeric text) that is plausibly unix seconds or milliseconds, else ``None``.

    Seconds between 2000 and 2100 are read as seconds, a thousand times that as
    milliseconds; anything else is not a time the tap can vouch for.
    """
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if _EPOCH_LOW <= number < _EPOCH_HIGH:
        return datetime.fromtimestamp(number, UTC)
    if _EPOCH_LOW * 1000 <= number < _EPOCH_HIGH * 1000:
        return datetime.fromtimestamp(number / 1000, UTC)
    return None


def next_local_midnight(moment: datetime, tz: tzinfo) -> datetime:
    """The first 00:00 in ``tz`` after ``moment`` (when a daily quota resets)."""
    local = moment.astimezone(tz)
    return (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
