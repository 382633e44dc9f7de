"""``viewer_sessions``: one table for every provider, fed by the provider streams' own reads.

Each provider module maps its rows onto this schema with a ``from_record`` function (its
quirks stay there) and declares ``Derive(ViewerSessionsStream, from_record=...)`` on the
streams that carry sessions. What is shared lives here: the schema, the key, UTC times and
the small vocabularies for devices and clients.

Which rows are sessions (one row each, never one viewing twice):

* Shangzhibo activity visits: one per visit. User visits: only for activities *not* in
  ``shangzhibo.activity_ids`` (a configured activity's visits come from its activity
  visits, with the same key, so a viewing never counts twice).
* Mudu user records: one per watch record (观看流水).
* Nuoyun user durations: one per viewer and room, an *aggregate* (``grain`` =
  ``viewer_room_total``): the provider has no per-visit rows; a later read of the same
  viewer and room replaces it (same key).
* Talk-cloud login records: one per entry into a room. Stage users are not sessions: each
  is also an entry of the login records.
"""

from __future__ import annotations

import re
import typing as t
from datetime import timezone
from functools import lru_cache

from singer_sdk import typing as th

from tap_livestream_viewers.derived import DerivedStream
from tap_livestream_viewers.timeutil import parse_datetime, to_rfc3339

UTC = timezone.utc
NAME = "viewer_sessions"

DEVICE_TYPES = ("pc", "mac", "ios", "android", "mobile", "other")
GRAINS = ("session", "viewer_room_total")

#: Free-text device words, checked in order (an iPhone user agent also says "Mac OS X").
_DEVICE_WORDS = (
    ("ios", re.compile(r"iphone|ipad|ipod|\bios\b|ipados", re.IGNORECASE)),
    ("android", re.compile(r"android|安卓", re.IGNORECASE)),
    ("mac", re.compile(r"mac ?os|macintosh|\bmac\b", re.IGNORECASE)),
    ("pc", re.compile(r"windows|linux|\bpc\b|电脑|桌面|desktop", re.IGNORECASE)),
    ("mobile", re.compile(r"移动|手机|mobile|phone|平板|tablet", re.IGNORECASE)),
)
_UNKNOWN = re.compile(r"^(|未知|unknown|null|none)$", re.IGNORECASE)
#: Browser or app names, checked in order (a WeChat user agent also says Safari or Chrome).
_CLIENT_WORDS = (
    ("wechat", re.compile(r"micromessenger|微信|wechat", re.IGNORECASE)),
    ("qq_browser", re.compile(r"qqbrowser|qq浏览器|\bqq/", re.IGNORECASE)),
    ("uc_browser", re.compile(r"ucbrowser|ucweb|uc浏览器", re.IGNORECASE)),
    ("edge", re.compile(r"\bedge?/|\bedge\b", re.IGNORECASE)),
    ("firefox", re.compile(r"firefox|火狐", re.IGNORECASE)),
    ("chrome", re.compile(r"chrome|crios|谷歌", re.IGNORECASE)),
    ("safari", re.compile(r"safari", re.IGNORECASE)),
    ("app", re.compile(r"客户端|\bapp\b|client", re.IGNORECASE)),
)


@lru_cache(maxsize=4096)  # per row, and providers repeat a few device words and user agents
def device_type(text: t.Any) -> str | None:
    """pc, mac, ios, android, mobile or other from a provider's device words; ``None`` if unsaid."""
    if text is None or _UNKNOWN.match(str(text).strip()):
        return None
    for label, pattern in _DEVICE_WORDS:
        if pattern.search(str(text)):
            return label
    return "other"


@lru_cache(maxsize=4096)
def client_name(text: t.Any) -> str | None:
    """wechat, qq_browser, uc_browser, edge, firefox, chrome, safari, app or other; ``None`` if unsaid."""
    if text is None or _UNKNOWN.match(str(text).strip()):
        return None
    for label, pattern in _CLIENT_WORDS:
        if pattern.search(str(text)):
            return label
    return "other"


def utc(value: t.Any) -> str | None:
    """An RFC 3339 time (any offset) as RFC 3339 in UTC, ``+00:00``; ``None`` if absent."""
    if not value:
        return None
    text = str(value)
    if text.endswith("+00:00") and "T" in text:
        return text  # already RFC 3339 UTC (the provider modules' own output)
    return to_rfc3339(parse_datetime(text, UTC).astimezone(UTC))


def session_key(provider: str, room_id: t.Any, row_key: t.Any) -> str:
    """``provider:room:row key``: the provider row's own identity, whatever stream carried it."""
    return f"{provider}:{room_id}:{row_key}"


def text(value: t.Any) -> str | None:
    """A value as text, ``None`` for missing or empty."""
    if value is None or value == "":
        return None
    return str(value)


FIELDS = (
    "session_key",
    "provider",
    "source_stream",
    "grain",
    "room_id",
    "room_name",
    "viewer_id",
    "viewer_name",
    "is_anonymous",
    "role",
    "joined_at",
    "left_at",
    "watch_seconds",
    "online_seconds",
    "live_seconds",
    "playback_seconds",
    "device_type",
    "client",
    "region",
    "ip",
    "referrer",
)


_FIELD_SET = frozenset(FIELDS)


def session(**fields: t.Any) -> dict:
    """One ``viewer_sessions`` row: every field present (``None`` where the provider says nothing)."""
    unknown = fields.keys() - _FIELD_SET
    if unknown:
        raise ValueError(f"not viewer_sessions fields: {sorted(unknown)}")
    return {name: fields.get(name) for name in FIELDS}


SCHEMA = th.PropertiesList(
    th.Property(
        "session_key",
        th.StringType,
        required=True,
        description="provider:room_id:row key; the same whichever stream carried the row, every run.",
    ),
    th.Property("provider", th.StringType, description="shangzhibo, mudu, nuoyun or talkcloud."),
    th.Property("source_stream", th.StringType, description="The provider stream the row was read with."),
    th.Property(
        "grain",
        th.StringType,
        description="session (one viewing) or viewer_room_total (Nuoyun: one viewer's total in a room).",
    ),
    th.Property("room_id", th.StringType, description="Activity, channel, room or serial id."),
    th.Property("room_name", th.StringType, description="Room name, where the provider gives it."),
    th.Property(
        "viewer_id", th.StringType, description="Provider user id, or anon:<id> for anonymous viewers."
    ),
    th.Property("viewer_name", th.StringType, description="Nickname or user name."),
    th.Property("is_anonymous", th.BooleanType, description="True when the provider gives no user id."),
    th.Property("role", th.StringType, description="Talk-cloud role: lecturer, assistant, student, ..."),
    th.Property(
        "joined_at", th.DateTimeType, description="Entry (first visit for aggregates), RFC 3339 UTC."
    ),
    th.Property("left_at", th.DateTimeType, description="Exit (aggregates: last visit), RFC 3339 UTC."),
    th.Property(
        "watch_seconds",
        th.IntegerType,
        description="Seconds watched: Mudu watch_time, Nuoyun live + playback; else the time in the room.",
    ),
    th.Property("online_seconds", th.IntegerType, description="Seconds in the room (online)."),
    th.Property("live_seconds", th.IntegerType, description="Seconds watched live (Nuoyun)."),
    th.Property("playback_seconds", th.IntegerType, description="Seconds of playback (Nuoyun)."),
    th.Property("device_type", th.StringType, description="pc, mac, ios, android, mobile or other."),
    th.Property(
        "client",
        th.StringType,
        description="wechat, qq_browser, uc_browser, edge, firefox, chrome, safari, app or other.",
    ),
    th.Property("region", th.StringType, description="Province/city or address, as the provider writes it."),
    th.Property("ip", th.StringType, description="Viewer IP (Nuoyun: the last one)."),
    th.Property("referrer", th.StringType, description="Where the viewer came from (URL or source name)."),
).to_dict()


class ViewerSessionsStream(DerivedStream):
    """One row per viewing session (per viewer and room for Nuoyun) from every provider stream."""

    name = NAME
    schema = SCHEMA
    primary_keys = ("session_key",)
    replication_key = "joined_at"
