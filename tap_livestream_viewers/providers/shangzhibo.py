"""Shangzhibo (上直播): per-activity viewer visits and per-user visit history.

Documents: Shangzhibo's public API pages 获取指定活动的用户观看明细 (activity visits) and
获取指定用户的访问明细 (one user's visits).

Quirks that shape this module:

* "查询的时间采用格林尼治标准时间，格式为：2019-06-21T01:52:12.736Z" and "最多支持查询 7 天范围内的数据":
  activity visits are asked for in UTC, in windows of at most 7 days.
* ``pager.pageSize`` is echoed in every answer, and ``pager.total`` counts the rows, so paging
  follows what the provider says it did, and no call is spent past the total.
* "userId ... 匿名用户此处为空": anonymous viewers have no user id, and visits have no id at all,
  so the key ``visit_key`` is derived (see ``visit_key``).
* Whether ``startedAt``/``endedAt`` are inclusive is not said: each query starts one second
  before its window and a visit is kept by the window its ``visitAt`` falls in (see the base's
  ``query_range``), so a visit on a boundary comes once under every reading.
* ``visitAt`` sent as a number (not the documented text) is read as unix seconds or
  milliseconds when it is plausibly one (2000..2100), else the row is kept with it null.
* ``duration`` is "在线时长（单位分钟）": minutes; ``duration_seconds`` is added next to it.
* The user-visits endpoint has no time filter, only "order: visitAt asc, visitAt desc"; it is
  read newest first and stops at the first page that reaches the bookmark.
"""

from __future__ import annotations

import hashlib
import typing as t
from dataclasses import dataclass
from datetime import datetime, timedelta

from singer_sdk import typing as th
from singer_sdk.authenticators import BearerTokenAuthenticator
from typing_extensions import override

from tap_livestream_viewers import state as saved_state
from tap_livestream_viewers.client import LivestreamStream, PageFacts, int_or_none, is_list_of_objects
from tap_livestream_viewers.derived import Derive
from tap_livestream_viewers.providers import sessions
from tap_livestream_viewers.rooms import ROOM_PROPERTIES, RoomListStream, moment, rfc3339_or_none
from tap_livestream_viewers.timeutil import (
    UTC,
    epoch_to_datetime,
    minutes_to_seconds,
    parse_datetime,
    to_rfc3339,
    to_utc_z,
)

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


def active_stream_types(config: t.Mapping[str, t.Any]) -> list[type[LivestreamStream]]:
    """Activity visits of ``activity_ids`` (empty: of the activities listed); user visits need
    ``agent_id`` and ``user_ids``."""
    settings = config.get("shangzhibo") or {}
    if not settings.get("access_token"):
        return []
    streams: list[type[LivestreamStream]] = []
    if settings.get("activity_ids"):
        streams.append(ShangzhiboActivityVisitsStream)
    else:  # no activity given: the activities the list endpoint returns
        streams += [ShangzhiboActivitiesStream, ShangzhiboActivityVisitsOfRoomsStream]
    if settings.get("agent_id") is not None and settings.get("user_ids"):
        streams.append(ShangzhiboUserVisitsStream)
    return streams


def visit_key(activity_id: str, user_id: int | None, anonymous_id: str | None, visit_at: str) -> str:
    """Deterministic id of a visit: sha1 of activity, viewer and start time (the API has none).

    A viewer is the ``userId``, or for anonymous viewers the ``anonymousId`` (the first 8
    characters of their session id). ``visit_at`` is the normalised RFC 3339 UTC start.
    """
    viewer = str(user_id) if user_id is not None else f"anon:{anonymous_id or ''}"
    digest = hashlib.sha1(f"{activity_id}|{viewer}|{visit_at}".encode()).hexdigest()
    return digest[:24]


def visit_time(value: t.Any) -> datetime | None:
    """A Shangzhibo time: UTC ISO-8601 text, or a number plausibly unix seconds/milliseconds.

    ``None`` when absent; ``ValueError`` when it cannot be read.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return parse_datetime(value, UTC).astimezone(UTC)
        except ValueError:
            pass
    moment = epoch_to_datetime(value)
    if moment is None:
        raise ValueError(f"not a time: {value!r}")
    return moment


def _utc_text(value: t.Any) -> str | None:
    """Shangzhibo times are UTC ISO-8601; normalise to RFC 3339 with ``+00:00``."""
    moment = visit_time(value)
    return to_rfc3339(moment) if moment is not None else None


def _region(record: dict) -> str | None:
    """``province city``, one name when they agree (北京 北京), ``None`` when neither is given."""
    parts = [p for p in (sessions.text(record.get("province")), sessions.text(record.get("city"))) if p]
    if len(parts) == 2 and parts[0] == parts[1]:
        parts = parts[:1]
    return " ".join(parts) or None


def session_of_activity_visit(stream: LivestreamStream, record: dict, context: Context | None) -> list[dict]:
    """A visit as a ``viewer_sessions`` row; anonymous viewers are ``anon:<anonymousId>``.

    ``duration`` (minutes) is the time online: Shangzhibo measures no separate watch time.
    """
    user_id = record.get("userId")
    anonymous = user_id is None
    activity_id = record.get("activity_id")
    anonymous_id = sessions.text(record.get("anonymousId"))
    viewer = (f"anon:{anonymous_id}" if anonymous_id else None) if anonymous else str(user_id)
    agent = record.get("userAgent")
    return [
        sessions.session(
            session_key=sessions.session_key("shangzhibo", activity_id, record.get("visit_key")),
            provider="shangzhibo",
            source_stream=stream.name,
            grain="session",
            room_id=sessions.text(activity_id),
            viewer_id=viewer,
            viewer_name=sessions.text(record.get("nickname")),
            is_anonymous=anonymous,
            joined_at=sessions.utc(record.get("visitAt")),
            left_at=sessions.utc(record.get("lastOnlineAt")),
            watch_seconds=record.get("duration_seconds"),
            online_seconds=record.get("duration_seconds"),
            device_type=sessions.device_type(record.get("device") or agent),
            client=sessions.client_name(agent),
            region=_region(record),
            referrer=sessions.text(record.get("referer")),
        )
    ]


def session_of_user_visit(stream: LivestreamStream, record: dict, context: Context | None) -> list[dict]:
    """A user's visit as a session, unless its activity is configured (its activity visits carry it).

    Both give the same ``visit_key`` (sha1 of activity, user, visitAt), so even a visit read
    both ways would keep one row by key; leaving it out keeps the richer activity-visit row.
    """
    activity_id = sessions.text(record.get("activityId"))
    configured = {str(a) for a in stream.provider_config.get("activity_ids") or []}
    if activity_id in configured:
        return []
    activity = record.get("activity")
    if not isinstance(activity, dict):
        activity = {}
    return [
        sessions.session(
            session_key=sessions.session_key("shangzhibo", activity_id, record.get("visit_key")),
            provider="shangzhibo",
            source_stream=stream.name,
            grain="session",
            room_id=activity_id,
            room_name=sessions.text(activity.get("name")),
            viewer_id=sessions.text(record.get("userId")),
            is_anonymous=record.get("userId") is None,
            joined_at=sessions.utc(record.get("visitAt")),
            left_at=sessions.utc(record.get("lastOnlineAt")),
            watch_seconds=record.get("duration_seconds"),
            online_seconds=record.get("duration_seconds"),
        )
    ]


class _ShangzhiboStream(LivestreamStream):
    provider_key = "shangzhibo"
    provider_name = "Shangzhibo"
    credential_hint = "check shangzhibo.access_token (and that 用户明细 is enabled for the account)"
    not_found_hint = (
        "check shangzhibo.activity_ids / agent_id / user_ids: this id is not in the account; "
        "the other partitions were read"
    )

    @property
    @override
    def authenticator(self) -> BearerTokenAuthenticator:
        """``Authorization: Bearer <accessToken>`` as both documents show."""
        return BearerTokenAuthenticator(token=self.provider_config["access_token"])

    identity_fields: t.ClassVar[tuple[tuple[str, ...], ...]] = (("visitAt",), ("userId", "anonymousId"))
    content_key_field = "visit_key"

    def rows_of(self, body: t.Any) -> list[dict]:
        """Rows are in ``items``."""
        return list(body.get("items") or []) if isinstance(body, dict) else []

    def shape_times(self, row: dict, *fields: str) -> None:
        """Normalise the row's times; an unreadable one is null, with a warning."""
        for field in fields:
            try:
                row[field] = _utc_text(row.get(field))
            except ValueError:
                self.bad_value(field, row.get(field), f"{field} null")
                row[field] = None

    def shape_duration(self, row: dict) -> None:
        """``duration_seconds`` from the minutes; unreadable minutes leave both null, with a warning."""
        try:
            row["duration_seconds"] = minutes_to_seconds(row.get("duration"))
        except (TypeError, ValueError):
            self.bad_value("duration", row.get("duration"), "duration and duration_seconds null")
            row["duration"] = row["duration_seconds"] = None

    def page_facts(self, response: requests.Response) -> PageFacts:
        """``pager.total`` and the echoed ``pager.pageSize`` drive paging."""
        body = self.decode(response)
        pager = body.get("pager") or {} if isinstance(body, dict) else {}
        return PageFacts(
            rows=len(self.rows_of(body)),
            total=int_or_none(pager.get("total")),
            page_size=int_or_none(pager.get("pageSize")),
        )

    def check_provider_status(self, response: requests.Response) -> None:
        """A 200 without an ``items`` list of objects is not a page: retried, never read as empty."""
        body = self.decode(response)
        items = body.get("items") if isinstance(body, dict) else None
        if not is_list_of_objects(items):
            raise self.malformed(response, "without an items list of objects")


VISIT_PROPERTIES = (
    th.Property("userId", th.IntegerType, description="Viewer id; null for anonymous viewers."),
    th.Property("visitAt", th.DateTimeType, description="Visit start (UTC)."),
    th.Property("lastOnlineAt", th.DateTimeType, description="Last time seen online (UTC)."),
    th.Property("duration", th.IntegerType, description="Online time in minutes, as sent."),
    th.Property("duration_seconds", th.IntegerType, description="duration × 60."),
)


class ShangzhiboActivityVisitsStream(_ShangzhiboStream):
    """Every visit to an activity, read in windows of at most 7 days by ``visitAt``."""

    name = "shangzhibo_activity_visits"
    path = "/api/activity/{activity_id}/stats/user-visits"
    primary_keys = ("activity_id", "visit_key")
    replication_key = "visitAt"
    # "endedAt: 查询截止时间（最多支持查询 7 天范围内的数据）"
    max_window = timedelta(days=7)
    # A viewer still online has a growing lastOnlineAt/duration, and a finished window is not
    # read again: windows end an hour ago (or at end_date, never later), so most visits are over.
    end_lag = timedelta(hours=1)
    default_page_size = 100
    max_page_size = 1000  # undocumented; the echoed pager.pageSize says what was used
    derived_streams = (Derive(sessions.ViewerSessionsStream, from_record=session_of_activity_visit),)

    schema = th.PropertiesList(
        th.Property("activity_id", th.StringType, required=True, description="Partition."),
        th.Property(
            "visit_key",
            th.StringType,
            required=True,
            description="Derived key: sha1(activity_id|userId or anon:anonymousId|visitAt)[:24].",
        ),
        *VISIT_PROPERTIES,
        th.Property("province", th.StringType),
        th.Property("city", th.StringType),
        th.Property("referer", th.StringType),
        th.Property("userAgent", th.StringType),
        th.Property("device", th.StringType),
        th.Property("nickname", th.StringType),
        th.Property("avatar", th.StringType),
        th.Property("anonymousId", th.StringType),
        th.Property("partnerUID", th.StringType),
        th.Property("invitedBy", th.IntegerType),
    ).to_dict()

    @property
    @override
    def partitions(self) -> list[dict]:
        """One partition per configured activity."""
        return [{"activity_id": str(a)} for a in self.provider_config.get("activity_ids") or []]

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """The window (from one second early, see ``query_range``) in UTC ``...Z`` form, and the page."""
        start, end = self.query_range()
        return {
            "page": next_page_token or 1,
            "pageSize": self._page_size_in_use,
            "startedAt": to_utc_z(start),
            "endedAt": to_utc_z(end),
        }

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """Normalise times, add seconds and the derived key."""
        activity_id = str((context or {}).get("activity_id", ""))
        row["activity_id"] = activity_id
        self.shape_times(row, "visitAt", "lastOnlineAt")
        self.shape_duration(row)
        row["visit_key"] = visit_key(
            activity_id, row.get("userId"), row.get("anonymousId"), row["visitAt"] or ""
        )
        return row

    def record_time(self, record: dict) -> datetime | None:
        """The range is read as filtering on ``visitAt``."""
        value = record.get("visitAt")
        return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class NewestFirstProgress(saved_state.ProgressExtras):
    """A newest-first read in flight keeps where it stops (the bookmark when it began) and the
    newest visit seen (the next bookmark)."""

    # ``moment`` returns a ``dataclasses.field`` (what RUF009 asks for), with its declaration.
    stop_at: datetime = saved_state.moment(required=True)  # noqa: RUF009
    high_water: datetime | None = saved_state.moment(null_saved=True)  # noqa: RUF009


class ShangzhiboUserVisitsStream(_ShangzhiboStream):
    """One user's visits across activities, read newest first down to the bookmark.

    The endpoint has no time filter but sorts by ``visitAt``. With ``order=visitAt desc`` a
    run pages from the newest visit and stops at the first page that reaches the bookmark
    (the newest ``visitAt`` of the previous finished run), so a re-run costs one page when
    nothing is new. New visits arriving mid-run only push older ones to later pages, so a
    resumed run may see a row twice but never skips one.
    """

    name = "shangzhibo_user_visits"
    path = "/api/v3/agent/{agent_id}/user/{user_id}/stats/visits"
    primary_keys = ("user_id", "visit_key")
    replication_key = "visitAt"
    default_page_size = 1000
    max_page_size = 1000  # "每页返回个数，默认为 10，最大为 1000"
    derived_streams = (Derive(sessions.ViewerSessionsStream, from_record=session_of_user_visit),)

    schema = th.PropertiesList(
        th.Property("agent_id", th.IntegerType, required=True, description="Partition: customer id."),
        th.Property("user_id", th.IntegerType, required=True, description="Partition: user id."),
        th.Property(
            "visit_key",
            th.StringType,
            required=True,
            description="Derived key: sha1(activityId|userId|visitAt)[:24].",
        ),
        th.Property("activityId", th.StringType),
        *VISIT_PROPERTIES,
        th.Property(
            "activity",
            th.ObjectType(
                th.Property("id", th.StringType),
                th.Property("name", th.StringType),
                th.Property("categoryId", th.IntegerType),
                th.Property("status", th.StringType),
                th.Property("agentId", th.IntegerType),
                th.Property("subagentId", th.IntegerType),
                th.Property("startedAt", th.DateTimeType),
                th.Property("endedAt", th.DateTimeType),
                th.Property("pushDomain", th.StringType),
                th.Property("pullDomain", th.StringType),
                th.Property("isPushing", th.BooleanType),
                th.Property("isArchived", th.BooleanType),
                th.Property("createdAt", th.DateTimeType),
                th.Property("groupId", th.IntegerType),
                th.Property("updatedAt", th.DateTimeType),
                th.Property("updateAt", th.DateTimeType),
                additional_properties=True,
            ),
        ),
    ).to_dict()

    # Read newest first, not by windows: progress holds stop_at/high_water, not window bounds.
    progress_windowed = False
    progress_extras = NewestFirstProgress

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_at: datetime | None = None
        self._end_at: datetime | None = None
        self._page_oldest: datetime | None = None

    @property
    @override
    def partitions(self) -> list[dict]:
        """One partition per configured user of the configured agent."""
        agent = int(self.provider_config["agent_id"])
        return [{"agent_id": agent, "user_id": int(u)} for u in self.provider_config.get("user_ids") or []]

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Newest first, the largest page the endpoint allows."""
        return {"page": next_page_token or 1, "pageSize": self._page_size_in_use, "order": "visitAt desc"}

    def read_partition(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Page newest-first from page 1 (or the saved page) down to the bookmark."""
        progress = self.saved_state(context).load().progress
        saved = progress.extras_as(NewestFirstProgress) if progress else None
        if progress and saved:
            self._first_page = progress.next_page
            self._page_size_in_use = progress.page_size or self.page_size
            self._stop_at = saved.stop_at
            self._high_water = saved.high_water
        else:
            self._first_page = 1
            self._page_size_in_use = self.page_size
            self._stop_at = self.bookmark(context)
            self._high_water = None
        self._end_at = self.config_datetime("end_date")
        for row in self.request_records(context):
            if self._in_range(row):
                yield row
        self._finish(context)

    def _in_range(self, row: dict) -> bool:
        try:
            visit_at = visit_time(row.get("visitAt"))
        except ValueError:
            visit_at = None  # kept, and its shaping warns
        if visit_at is None:
            return True  # never drop a row silently; a visit without time is still a visit
        if self._high_water is None or visit_at > self._high_water:
            self._high_water = visit_at
        if self._page_oldest is None or visit_at < self._page_oldest:
            self._page_oldest = visit_at
        assert self._stop_at is not None
        return visit_at >= self._stop_at and (self._end_at is None or visit_at < self._end_at)

    @override
    def pages_ahead(self, token: t.Any, response: requests.Response) -> t.Iterable[t.Any]:
        """None: the read stops at the page that reaches the bookmark, so later pages are rarely needed."""
        return ()

    def has_more_pages(self, response: requests.Response, page: int) -> bool:
        """Stop at the page that reaches the bookmark, else when the total is read."""
        oldest, self._page_oldest = self._page_oldest, None  # seen by _in_range on this page
        assert self._stop_at is not None
        if oldest is not None and oldest < self._stop_at:
            return False
        return super().has_more_pages(response, page)

    def page_done(self, next_page: int) -> None:
        """Save the next page, the run's high-water mark and where it stops."""
        assert self._stop_at is not None  # set when the read began
        self.saved_state(self._context).save_progress(
            saved_state.Progress(
                next_page, self._page_size_in_use, extras=NewestFirstProgress(self._stop_at, self._high_water)
            )
        )
        self.emit_state()

    def _finish(self, context: Context | None) -> None:
        saved = self.saved_state(context)
        previous = saved.load().bookmark
        newest = self._high_water or self._stop_at
        if self._end_at is not None and newest is not None:
            newest = min(newest, self._end_at)
        bookmark = None  # the bookmark never moves back
        if newest is not None and (previous is None or previous < newest):
            bookmark = newest.astimezone(UTC)
        saved.finish(self.replication_key, bookmark)
        self.emit_state()

    identity_fields = (("visitAt",), ("activityId",))

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """Normalise times (the nested activity's too), add seconds and the derived key."""
        self.shape_times(row, "visitAt", "lastOnlineAt")
        activity = row.get("activity")
        if isinstance(activity, dict):
            for field in ("startedAt", "endedAt", "createdAt", "updatedAt", "updateAt"):
                if field in activity:
                    try:
                        activity[field] = _utc_text(activity.get(field))
                    except ValueError:
                        self.bad_value(f"activity.{field}", activity.get(field), f"activity.{field} null")
                        activity[field] = None
        self.shape_duration(row)
        row["agent_id"] = (context or {}).get("agent_id")
        row["user_id"] = (context or {}).get("user_id")
        row["visit_key"] = visit_key(
            str(row.get("activityId") or ""), row.get("userId"), None, row["visitAt"] or ""
        )
        return row


# ------------------------------------------------------------------------ activity list


class ShangzhiboActivitiesStream(RoomListStream, _ShangzhiboStream):
    """Every activity of the account (``GET /api/activity``, Shangzhibo's public API list).

    Bearer token, ``page``/``pageSize``, ``{pager: {page, pageSize, total}, items: [...]}``,
    paged like the visits (``pager.total`` and the echoed ``pager.pageSize``). No ``status`` or
    ``isArchived`` filter is sent: every activity is listed, and whether one is read again is
    decided by its ``endedAt``/``updatedAt`` against the visits' bookmark.
    """

    name = "shangzhibo_activities"
    path = "/api/activity"
    default_page_size = 100
    max_page_size = 100
    identity_fields = ()
    content_key_field = ""
    schema = th.PropertiesList(
        *ROOM_PROPERTIES,
        th.Property("updated_at", th.DateTimeType, description="Last update (UTC), as sent."),
        th.Property("is_archived", th.BooleanType, description="isArchived, as sent."),
    ).to_dict()

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        return {"page": next_page_token or 1, "pageSize": self._page_size_in_use}

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """The common room fields from ``id``/``name``/``status``/``createdAt``/``startedAt``/``endedAt``."""
        if row.get("id") in (None, ""):
            return None
        archived = row.get("isArchived")
        return {
            "id": str(row["id"]),
            "name": None if row.get("name") is None else str(row["name"]),
            "status": None if row.get("status") is None else str(row["status"]),
            "created_at": rfc3339_or_none(moment(row.get("createdAt"), UTC)),
            "start_at": rfc3339_or_none(moment(row.get("startedAt"), UTC)),
            "end_at": rfc3339_or_none(moment(row.get("endedAt"), UTC)),
            "updated_at": rfc3339_or_none(moment(row.get("updatedAt"), UTC)),
            "is_archived": archived if isinstance(archived, bool) else None,
        }

    def last_activity(self, record: dict) -> datetime | None:
        """The later of ``endedAt`` and ``updatedAt``; no ``endedAt``: open-ended (always read)."""
        end = moment(record.get("end_at"), UTC)
        updated = moment(record.get("updated_at"), UTC)
        return None if end is None else max(end, updated or end)

    def room_context(self, record: dict) -> dict | None:
        """A listed activity is read by its id, like a configured one."""
        return {"activity_id": record["id"]}


class ShangzhiboActivityVisitsOfRoomsStream(ShangzhiboActivityVisitsStream):
    """``shangzhibo_activity_visits`` of the activities ``shangzhibo_activities`` lists."""

    parent_stream_type = ShangzhiboActivitiesStream
