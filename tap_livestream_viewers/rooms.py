"""Room lists as parents: a provider's list endpoint gives its viewer stream the partitions.

When a provider's id list is empty, its list stream (``mudu_channels``, ``shangzhibo_activities``,
``talkcloud_rooms``) is the SDK parent of its viewer stream: each listed room becomes one child
context (the same context a configured id gives, so the state is the same either way).

Only rooms that can have new data are read again: a room whose viewer partition has a bookmark
later than the room's last activity (its end, or last update) plus ``ended_room_days`` is
skipped, so a nightly run over hundreds of old rooms spends no call on them. A room seen for
the first time (no bookmark) is read from ``start_date``; a room without an end time, or with
a window in flight, is always read.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta, timezone, tzinfo

from singer_sdk import typing as th
from typing_extensions import override

from tap_livestream_viewers import state as saved_state
from tap_livestream_viewers.client import LivestreamStream, int_or_none
from tap_livestream_viewers.timeutil import parse_datetime, to_rfc3339

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: ``ended_room_days`` default: late rows and replays of a room are read this long after its end.
DEFAULT_ENDED_ROOM_DAYS = 7

#: ``staleness`` of a room never read (or whose state cannot be read): it is read first.
NEVER_READ = float("-inf")

#: Fields every room list stream writes (provider streams add their own).
ROOM_PROPERTIES = (
    th.Property("id", th.StringType, required=True, description="The room's id (the viewer partition)."),
    th.Property("name", th.StringType, description="The room's name."),
    th.Property("status", th.StringType, description="The provider's status, as sent."),
    th.Property("created_at", th.DateTimeType, description="Created (UTC), when the provider says."),
    th.Property("start_at", th.DateTimeType, description="Start (UTC), when the provider says."),
    th.Property("end_at", th.DateTimeType, description="End (UTC), when the provider says."),
)


def moment(value: t.Any, tz: tzinfo) -> datetime | None:
    """A time from unix seconds or milliseconds (number or digits) or date-time text; else ``None``."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    number = int_or_none(value) if not isinstance(value, float) else int(value)
    try:
        if number is not None:
            if number <= 0:
                return None
            seconds = number / 1000 if number > 10**11 else number
            return datetime.fromtimestamp(seconds, timezone.utc)
        if isinstance(value, str) and not value.startswith("0000"):
            return parse_datetime(value, tz).astimezone(timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return None


def rfc3339_or_none(value: datetime | None) -> str | None:
    return to_rfc3339(value) if value is not None else None


def can_have_new_data(
    saved: saved_state.PartitionState | None, last_activity: datetime | None, settle: timedelta
) -> bool:
    """Whether a room is worth a call: never read, in flight, open-ended, or not long past its end.

    ``saved`` is ``None`` when the room's state cannot be read: the room is read (and its
    stream names the defect).
    """
    if saved is None or saved.bookmark is None or saved.progress is not None or last_activity is None:
        return True
    return saved.bookmark < last_activity + settle


class RoomListStream(LivestreamStream):
    """A list endpoint read whole each run (no bookmark); each row is a room for the child stream."""

    replication_key = None
    progress_windowed = False
    primary_keys = ("id",)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.rooms_listed = 0
        self.rooms_to_read = 0

    def room_context(self, record: dict) -> dict | None:
        """Hook: the child context of a room (the same as a configured id gives)."""
        raise NotImplementedError

    def last_activity(self, record: dict) -> datetime | None:
        """The room's latest known time (end or last update; ``None``: open-ended, always read)."""
        return moment(record.get("end_at"), self.tz)

    @property
    def settle(self) -> timedelta:
        """``ended_room_days``: how long after its end a room is still read."""
        return timedelta(days=float(self.config.get("ended_room_days", DEFAULT_ENDED_ROOM_DAYS)))

    def list_rooms(self, context: Context | None) -> list[dict]:
        """Hook: the list's rows, every page (a provider may reuse a saved list instead)."""
        return list(self.request_records(context))

    def list_note(self) -> str:
        """Hook: what the progress line should add about the list (e.g. calls of a budget)."""
        return ""

    def saved_room(self, child: LivestreamStream, room: t.Mapping) -> saved_state.PartitionState | None:
        """The child stream's saved state of ``room``, read only (``None``: it cannot be read)."""
        return saved_state.peek(self.tap_state, child.state_shape(), room, child.tz)

    def staleness(self, row: dict) -> float:
        """Sort key: rooms never read first, then the oldest bookmark (so none waits for ever)."""
        shaped = self.shape_record(dict(row), None)  # pure for list rows: no key registry touched
        room = self.room_context(shaped) if shaped else None
        if room is None:
            return NEVER_READ
        saved = [self.saved_room(c, room) for c in self.child_streams if isinstance(c, LivestreamStream)]
        return min(
            (s.bookmark.timestamp() if s is not None and s.bookmark else NEVER_READ for s in saved),
            default=NEVER_READ,
        )

    @override
    def read_partition(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The whole list first (children spend nothing meanwhile), then its rooms, stalest first."""
        self.rooms_listed = self.rooms_to_read = 0
        rows = self.list_rooms(context)
        yield from sorted(rows, key=self.staleness)
        skipped = self.rooms_listed - self.rooms_to_read
        note = self.list_note()
        self.logger.info(
            "%s",
            self._with_budget(
                f"{self.describe_partition(context)}: {self.rooms_listed} room(s) listed with "
                f"{self.progress.counts.calls} call(s){f' ({note})' if note else ''}; "
                f"{self.rooms_to_read} read, {skipped} without new data skipped (bookmark past "
                f"end + ended_room_days={self.config.get('ended_room_days', DEFAULT_ENDED_ROOM_DAYS)})"
            ),
        )

    @override
    def generate_child_contexts(self, record: dict, context: Context | None) -> t.Iterable[Context | None]:
        """A room's context for the viewer stream, only when the room can have new data."""
        room = self.room_context(record)
        if room is None:
            return
        self.rooms_listed += 1
        last = self.last_activity(record)
        children = [c for c in self.child_streams if isinstance(c, LivestreamStream)]
        if any(can_have_new_data(self.saved_room(c, room), last, self.settle) for c in children):
            self.rooms_to_read += 1
            yield room
