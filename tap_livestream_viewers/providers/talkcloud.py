"""Talk-cloud (拓课云): who entered and left a large-class room, and who went on stage.

Document: Talk-cloud's public WebAPI page 大班课房间观看用户进出记录列表 (``POST /WebAPI/getLiveLogininfo``).

Quirks that shape this module (quotes from the document):

* "此接口只支持查一年内的数据" and "时间区间最大限制1个月": one query spans at most one
  month, and only the last year can be asked for. "One month" is not defined (a calendar
  month is 28 to 31 days, a server may count 30 days), so windows are **28 days**, within
  every reading. "One year" is read as 365 days, less a safety margin of one day (clock skew
  between us and Talk-cloud, and the minutes a run takes): an older ``start_date`` or
  bookmark is moved forward with a warning that names the span that cannot be read.
* The old WebAPI takes form fields: ``key``, ``serial`` or ``thirdroomid``, ``starttime`` /
  ``endtime`` as unix seconds ("时间截示例：1597852800"), ``page``. The key travels only in
  the form body, never in a URL, a log line or the state.
* "page 页数 (默认第一页，每页200条，第二页不返回uptablelist数据)": 200 rows a page; a full
  page may have a next one, a shorter page is the last. ``count`` ("返回直播用户数据量") does
  not say whether it is the page's or the query's total, so paging does not rely on it.
* ``uptablelist`` ("上台用户列表(返回所有)") comes with page 1 only, unpaged.
  ``talkcloud_stage_users`` is a derived stream of ``talkcloud_login_records`` (see
  ``derived.py``): it is written from page 1 of each window the login records read, makes no
  call and keeps no state of its own. Selected alone, the login records are read (not
  emitted) and their state advances.
* Whether ``starttime``/``endtime`` are inclusive is not said. Each query starts one second
  before its window and ends at its end; a row is kept by the window its ``entertimestamp``
  falls in (``start <= t < end``, the base's ``query_range``), so a boundary row arrives once
  under every reading. Windows are 28 days less that second, so a query spans 28 days.
* ``result`` 0 is success, and carries ``logininfo`` (and, on page 1, ``uptablelist``) as
  lists: a ``result`` 0 without them is not an empty window but a malformed answer, retried
  and then failed with the state kept; 4105 (no data matched) is an empty window; 4007 (room missing,
  invalid, deleted or expired) fails that room only; 4001/4101/4102/4109 (company or key)
  fail at once; 4004/4005/5004 (time parameters) are a bug of ours and fail naming the times
  sent; any other code fails with the code.
* Fields: all strings in the table except the ``*timestamp`` ints. ``duration`` and
  ``paytime`` are strings of seconds (the example: entered 09:48:47, left 09:49:07,
  ``"duration": "20"``); ``*_seconds`` integers are added. The example spells
  ``startimestamp`` where the table says ``starttimestamp``, and the table says ``seria``
  where the example says ``serial``: both spellings are read, the table's/example's proper
  names are written.
* Rows have no id: ``entry_key`` is derived from the room, the user, the entry second and
  the terminal (see ``entry_key``).
"""

from __future__ import annotations

import hashlib
import typing as t
from datetime import datetime, timedelta
from urllib.parse import parse_qs

from singer_sdk import typing as th
from typing_extensions import override

from tap_livestream_viewers.client import (
    LivestreamStream,
    PageFacts,
    PartitionFailed,
    ProgressPaginator,
    ProviderAPIError,
    int_or_none,
    is_list_of_objects,
)
from tap_livestream_viewers.derived import Derive, DerivedStream
from tap_livestream_viewers.providers import sessions
from tap_livestream_viewers.rooms import ROOM_PROPERTIES, RoomListStream, moment, rfc3339_or_none
from tap_livestream_viewers.timeutil import UTC, floor_to_second, parse_datetime, to_rfc3339, unix_to_rfc3339

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

    from tap_livestream_viewers.windows import Window


#: "时间区间最大限制1个月": 28 days is no longer than any reading of "one month".
MAX_WINDOW = timedelta(days=28)
#: "只支持查询1年内的数据": 365 days back, less this margin for clock skew and run time.
YEAR = timedelta(days=365)
YEAR_MARGIN = timedelta(days=1)
#: "每页200条".
PAGE_SIZE = 200

LOGIN_STREAM = "talkcloud_login_records"
STAGE_STREAM = "talkcloud_stage_users"

#: "terminal 终端 0windows端、1MAC、2ios、3android、4.linux 5.未知"
TERMINAL_LABELS = {"0": "windows", "1": "mac", "2": "ios", "3": "android", "4": "linux", "5": "unknown"}
#: "terminal_details 观看终端:1客户端、2微信浏览器、3Safari浏览器、4Chrome浏览器、5其他"
TERMINAL_DETAILS_LABELS = {
    "1": "client",
    "2": "wechat_browser",
    "3": "safari",
    "4": "chrome",
    "5": "other",
}
#: "userroleid 课堂中的角色 0:主讲 1:助教 2: 学员 3:直播用户 4: 巡检员"
USERROLE_LABELS = {"0": "lecturer", "1": "assistant", "2": "student", "3": "live_viewer", "4": "inspector"}

#: Known ``result`` codes (Talk-cloud's public error table, as the issue lists them).
NO_DATA = 4105
ROOM_GONE = 4007
KEY_CODES = frozenset({4001, 4101, 4102, 4109})
TIME_CODES = frozenset({4004, 4005, 5004})

_STRING_FIELDS = (
    "serial",
    "userid",
    "username",
    "entertime",
    "outtime",
    "duration",
    "terminal",
    "terminal_details",
    "starttime",
    "endtime",
    "paytime",
    "videotype",
    "userroleid",
)
_TIMESTAMP_FIELDS = ("entertimestamp", "outtimestamp", "starttimestamp", "endtimestamp")


def active_stream_types(config: t.Mapping[str, t.Any]) -> list[type[LivestreamStream]]:
    """Login records (stage users derive from them) when ``talkcloud.key`` is set: of the rooms
    configured, or, with no room configured, of the rooms ``talkcloud_rooms`` lists."""
    settings = config.get("talkcloud") or {}
    if not settings.get("key"):
        return []
    if not (settings.get("serials") or settings.get("thirdroomids")):
        return [TalkcloudRoomsStream, TalkcloudLoginRecordsOfRoomsStream]
    return [TalkcloudLoginRecordsStream]


def entry_key(room: str, userid: t.Any, entered: t.Any, terminal: t.Any, terminal_details: t.Any) -> str:
    """Deterministic id of one entry into a room (rows have none).

    sha1 of ``room|userid|entertimestamp|terminal|terminal_details``, first 24 hex digits.
    ``room`` is the row's ``serial`` (so a room configured both by serial and by thirdroomid
    gives the same keys). The terminal tells apart one user entering the same second from
    two devices. ``outtimestamp`` is left out: it says when the entry ended, not which it is.
    """
    parts = [room, userid, entered, terminal, terminal_details]
    text = "|".join("" if part is None else str(part) for part in parts)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:24]


def _no_problem(field: str, value: t.Any, note: str) -> None:
    """Default for ``shape_row``'s ``bad``: ignore."""


def _integer(out: dict, field: str, bad: t.Callable[[str, t.Any, str], None], note: str) -> int | None:
    """An integer from a number or numeric string; anything else is ``None`` and noted."""
    value = out.get(field)
    number = int_or_none(value)
    if number is None and value not in (None, ""):
        bad(field, value, note)
    return number


def shape_row(
    row: dict,
    context: t.Mapping[str, t.Any] | None,
    tz: t.Any,
    bad: t.Callable[[str, t.Any, str], None] = _no_problem,
) -> dict:
    """One ``logininfo``/``uptablelist`` row as a record: typed, labelled, keyed.

    Pure (no stream state), so the document's example can be shaped in a unit test. A value
    that cannot be read is null in the record and reported to ``bad(field, value, note)``.
    """
    out = dict(row)
    # The table's "seria" and the example's "startimestamp": read both spellings.
    if "seria" in out:
        seria = out.pop("seria")
        out.setdefault("serial", seria)
    if "startimestamp" in out:
        misspelt = out.pop("startimestamp")
        if out.get("starttimestamp") in (None, ""):
            out["starttimestamp"] = misspelt
    for field in _STRING_FIELDS:
        value = out.get(field)
        if isinstance(value, int | float):  # numbers as text; other types are the schema check's
            out[field] = str(value)
    for field in _TIMESTAMP_FIELDS:
        if field in out:
            out[field] = _integer(out, field, bad, f"{field} null")
    out["duration_seconds"] = _integer(out, "duration", bad, "duration as sent, duration_seconds null")
    out["paytime_seconds"] = _integer(out, "paytime", bad, "paytime as sent, paytime_seconds null")
    out["terminal_label"] = _label(TERMINAL_LABELS, out.get("terminal"))
    out["terminal_details_label"] = _label(TERMINAL_DETAILS_LABELS, out.get("terminal_details"))
    out["userroleid_label"] = _label(USERROLE_LABELS, out.get("userroleid"))
    for stamp, text in (
        ("entertimestamp", "entertime"),
        ("outtimestamp", "outtime"),
        ("starttimestamp", "starttime"),
        ("endtimestamp", "endtime"),
    ):
        try:
            out[f"{text}_utc"] = _utc_of(out.get(stamp), out.get(text), tz)
        except (OverflowError, OSError, ValueError):
            bad(stamp, out.get(stamp), f"{stamp} and {text}_utc null")
            out[stamp] = out[f"{text}_utc"] = None
    context = context or {}
    room = out.get("serial") or (
        f"thirdroomid:{context['thirdroomid']}" if "thirdroomid" in context else context.get("serial", "")
    )
    if "thirdroomid" in context:
        out.setdefault("thirdroomid", context["thirdroomid"])
    if not out.get("serial") and "serial" in context:
        out["serial"] = context["serial"]
    entered = out.get("entertimestamp") or out.get("entertime")
    out["entry_key"] = entry_key(
        str(room), out.get("userid"), entered, out.get("terminal"), out.get("terminal_details")
    )
    return out


def _label(labels: dict[str, str], code: t.Any) -> str | None:
    """The label of a documented code; ``None`` for another code or a value that is no code."""
    return labels.get(code) if isinstance(code, str) else None


def _utc_of(stamp: int | None, text: t.Any, tz: t.Any) -> str | None:
    """RFC 3339 (UTC) from the ``*timestamp`` field; the provider-local text only if it is absent."""
    if stamp:
        return unix_to_rfc3339(stamp, UTC)
    if isinstance(text, str) and text and not text.startswith("0000"):
        try:
            return to_rfc3339(parse_datetime(text, tz).astimezone(UTC))
        except ValueError:
            return None
    return None


def entered_at(record: dict) -> datetime | None:
    """When a shaped record's entry began (``None`` if the row does not say)."""
    value = record.get("entertime_utc")
    return datetime.fromisoformat(value) if value else None


RECORD_SCHEMA = th.PropertiesList(
    th.Property(
        "entry_key",
        th.StringType,
        required=True,
        description=(
            "Derived key: sha1(serial|userid|entertimestamp|terminal|terminal_details)[:24]; rows have no id."
        ),
    ),
    th.Property("serial", th.StringType, description="Room number (房间号), as sent."),
    th.Property(
        "thirdroomid",
        th.StringType,
        description="The custom room number this row was read through (thirdroomid partitions only).",
    ),
    th.Property("userid", th.StringType, description="User id."),
    th.Property("username", th.StringType, description="User name."),
    th.Property("entertime", th.StringType, description="Entry time, provider-local text (进入时间)."),
    th.Property("outtime", th.StringType, description="Exit time, provider-local text (退出时间)."),
    th.Property("duration", th.StringType, description="Time in the room in seconds, as sent (时长)."),
    th.Property("terminal", th.StringType, description="Terminal code, as sent (终端)."),
    th.Property("terminal_details", th.StringType, description="Viewing client code, as sent (观看终端)."),
    th.Property("starttime", th.StringType, description="Start time, provider-local text (开始时间)."),
    th.Property("endtime", th.StringType, description="End time, provider-local text (结束时间)."),
    th.Property("paytime", th.StringType, description="Billed seconds, as sent (计费时长)."),
    th.Property("videotype", th.StringType, description="Resolution (分辨率), e.g. 320*240."),
    th.Property("userroleid", th.StringType, description="Role code, as sent (课堂中的角色)."),
    th.Property("entertimestamp", th.IntegerType, description="Entry, unix seconds."),
    th.Property("outtimestamp", th.IntegerType, description="Exit, unix seconds."),
    th.Property(
        "starttimestamp",
        th.IntegerType,
        description="Start, unix seconds (also read from the misspelt startimestamp).",
    ),
    th.Property("endtimestamp", th.IntegerType, description="End, unix seconds."),
    th.Property("duration_seconds", th.IntegerType, description="duration as an integer."),
    th.Property("paytime_seconds", th.IntegerType, description="paytime as an integer."),
    th.Property(
        "terminal_label",
        th.StringType,
        description="windows, mac, ios, android, linux, unknown (null for an undocumented code).",
    ),
    th.Property(
        "terminal_details_label",
        th.StringType,
        description="client, wechat_browser, safari, chrome, other (null for an undocumented code).",
    ),
    th.Property(
        "userroleid_label",
        th.StringType,
        description="lecturer, assistant, student, live_viewer, inspector (null for an undocumented code).",
    ),
    th.Property("entertime_utc", th.DateTimeType, description="Entry (from entertimestamp), RFC 3339 UTC."),
    th.Property("outtime_utc", th.DateTimeType, description="Exit (from outtimestamp), RFC 3339 UTC."),
    th.Property("starttime_utc", th.DateTimeType, description="Start (from starttimestamp), RFC 3339 UTC."),
    th.Property("endtime_utc", th.DateTimeType, description="End (from endtimestamp), RFC 3339 UTC."),
).to_dict()


class _RowsPaginator(ProgressPaginator):
    """Keeps paging past a page whose rows all belonged to the next window (none yielded)."""

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        """The SDK stops at a page that yielded nothing; go on if the provider sent rows."""
        return self._stream.page_facts(response).rows > 0


class _TalkcloudStream(LivestreamStream):
    """What both streams share: the request, the codes, the year clamp."""

    provider_key = "talkcloud"
    provider_name = "Talk-cloud"
    credential_hint = "check talkcloud.key (the enterprise key, 企业Key) and that the company is active"
    path = "/WebAPI/getLiveLogininfo"
    http_method = "POST"
    payload_as_json = False  # the old WebAPI takes form fields
    primary_keys = ("entry_key",)
    replication_key = "entertime_utc"
    identity_fields = (("userid",), ("entertimestamp", "entertime"))
    content_key_field = "entry_key"
    max_window = MAX_WINDOW
    #: Viewers still in the room may be written when they leave: stay this far behind now.
    end_lag = timedelta(hours=2)
    default_page_size = PAGE_SIZE
    max_page_size = PAGE_SIZE
    schema = RECORD_SCHEMA

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._earliest: datetime | None = None

    # ------------------------------------------------------------------ partitions

    @property
    @override
    def partitions(self) -> list[dict]:
        """One partition per ``serials`` entry and per ``thirdroomids`` entry."""
        settings = self.provider_config
        rooms = [{"serial": str(s)} for s in settings.get("serials") or []]
        rooms += [{"thirdroomid": str(r)} for r in settings.get("thirdroomids") or []]
        return rooms

    @staticmethod
    def asked_page(response: requests.Response) -> int:
        """The page an answer was asked for (``uptablelist`` comes on page 1 only), from its request.

        From the request itself: pages are asked concurrently, so the stream's last asked page
        may be another one.
        """
        form = parse_qs(str(response.request.body or ""))
        return int_or_none((form.get("page") or ["1"])[-1]) or 1

    # ------------------------------------------------------------------ time range

    def earliest_queryable(self) -> datetime:
        """The oldest second Talk-cloud answers for ("只支持查询1年内的数据"), with a margin."""
        return floor_to_second(self.now() - YEAR + YEAR_MARGIN)

    def planned_windows(self, context: Context | None) -> t.Iterator[tuple[Window, int]]:
        """As the base, but an in-flight window older than a year is dropped (and clamped)."""
        self._earliest = self.earliest_queryable()
        saved = self.saved_state(context)
        progress = saved.load().progress
        if progress and progress.window.start < self._earliest:
            self.logger.warning(
                "%s: the saved window %s now starts more than one year ago; "
                "it is asked again from the oldest day Talk-cloud still answers for.",
                self.describe_partition(context),
                progress.bounds(),
            )
            saved.drop_progress()
        yield from super().planned_windows(context)

    def clamp_start(self, context: Context | None, start: datetime) -> datetime:
        """Move a start older than one year forward, warning with the span that is lost."""
        earliest = self._earliest or self.earliest_queryable()
        if start >= earliest:
            return start
        end = self.sync_end()
        lost_until = min(earliest, end)
        self.logger.warning(
            "%s: Talk-cloud only answers for the last year (此接口只支持查一年内的数据); rows from "
            "%s to %s cannot be read and are skipped; reading from %s on.",
            self.describe_partition(context),
            to_rfc3339(start),
            to_rfc3339(lost_until),
            to_rfc3339(earliest),
        )
        return earliest

    @override
    def start_ahead(self, context: Context | None, start: datetime) -> datetime | None:
        """A start within the year, a day clear of its edge, stays; an older one is clamped (and
        warned about) by the room's own loop, so its first page is not fetched ahead."""
        return start if start >= self.earliest_queryable() + timedelta(days=1) else None

    # ---------------------------------------------------------------------- request

    @override
    def prepare_request_payload(self, context: Context | None, next_page_token: int | None) -> dict:
        """Form fields: key, the room, the window as unix seconds, the page."""
        start, end = self.query_range()
        page = int(next_page_token or 1)
        form: dict[str, t.Any] = {"key": self.provider_config["key"]}
        form.update(context or {})  # {"serial": ...} or {"thirdroomid": ...}
        form["starttime"] = int(start.timestamp())
        form["endtime"] = int(end.timestamp())
        form["page"] = page
        return form

    # ------------------------------------------------------------------------ codes

    def check_provider_status(self, response: requests.Response) -> None:
        """``result`` 0 and 4105 pass; every other code fails as the issue's table says."""
        body = self.decode(response)
        context = self.request_context  # a page fetched ahead may be another room's
        if not isinstance(body, dict) or "result" not in body:
            raise ProviderAPIError(
                self.describe(
                    context,
                    f"HTTP {response.status_code} without a result code: {self.excerpt(response.text)}",
                    "check talkcloud.base_url points at the Talk-cloud WebAPI",
                )
            )
        code = int_or_none(body.get("result"))
        if code == NO_DATA:
            return
        if code == 0:
            # "result 0:表示成功" with "logininfo Array" (and "uptablelist Array" on page 1): a
            # success without them is not an empty window; the bookmark must not pass it.
            lists = ("logininfo", "uptablelist") if self.asked_page(response) == 1 else ("logininfo",)
            for field in lists:
                rows = body.get(field)
                if not is_list_of_objects(rows):
                    raise self.malformed(response, f"result 0 without a {field} list of objects")
            return
        said = f" ({words})" if (words := self.provider_words(body)) else ""
        if code == ROOM_GONE:
            raise PartitionFailed(
                self.describe(
                    context,
                    f"result {code}{said}: room {self._room(context)} is missing, invalid, deleted or "
                    "expired",
                    "check the room in talkcloud.serials / talkcloud.thirdroomids, or remove it "
                    "from the config; the other rooms were read",
                )
            )
        if code in KEY_CODES:
            raise ProviderAPIError(
                self.describe(context, f"result {code}{said}: company or key refused", self.credential_hint)
            )
        if code in TIME_CODES:
            raise ProviderAPIError(
                self.describe(
                    context,
                    f"result {code}{said}: time parameters refused for {self._sent_times(response)}",
                    "this is a bug of the tap (windows are at most 28 days within the last year); "
                    "report it with this line",
                )
            )
        raise ProviderAPIError(
            self.describe(
                context,
                f"result {code}{said}: request for {self._sent_times(response)} failed",
                "look the code up in Talk-cloud's public error table (公共错误码); run again when "
                "it is resolved, the state resumes at this page",
            )
        )

    @staticmethod
    def _room(context: Context | None) -> str:
        context = context or {}
        if "serial" in context:
            return f"serial={context['serial']}"
        return f"thirdroomid={context.get('thirdroomid')}"

    def _sent_times(self, response: requests.Response) -> str:
        """The time fields the refused request carried (never the key)."""
        body = getattr(response.request, "body", None) or ""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        form = {name: values[-1] for name, values in parse_qs(str(body)).items()}
        parts = []
        for name in ("starttime", "endtime"):
            value = form.get(name)
            when = unix_to_rfc3339(value, UTC) if value and value.isdigit() else None
            parts.append(f"{name}={value}" + (f" ({when})" if when else ""))
        parts.append(f"page={form.get('page')}")
        return " ".join(parts)

    # ----------------------------------------------------------------------- paging

    def page_facts(self, response: requests.Response) -> PageFacts:
        """Paging follows ``logininfo`` (on every page); 200 a page, a short page is the last."""
        body = self.decode(response)
        rows = body.get("logininfo") if isinstance(body, dict) else None
        return PageFacts(rows=len(rows or []))

    @override
    def get_new_paginator(self) -> ProgressPaginator:
        """Page numbers from the window's progress; see ``_RowsPaginator``."""
        return _RowsPaginator(self, self._first_page)

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """Typed, labelled, keyed (``shape_row``); unreadable values are noted and null."""
        return shape_row(row, context, self.tz, self.bad_value)

    def record_time(self, record: dict) -> datetime | None:
        """The range is read as filtering on the entry time (``entertimestamp``)."""
        return entered_at(record)


def stage_users_of_page(stream: _TalkcloudStream, body: t.Any, context: Context | None) -> list[dict]:
    """Page 1's ``uptablelist`` ("第二页不返回uptablelist数据"), shaped and windowed like login rows."""
    if stream.page_in_hand != 1 or not isinstance(body, dict):
        return []
    records = []
    for row in body.get("uptablelist") or []:
        # checked like a login row, with keys of their own: a stage user is also a login row
        record = stream.check_row(row, context, stream.key_registry(STAGE_STREAM))
        if record is not None:
            for key, value in (context or {}).items():
                record.setdefault(key, value)
            records.append(record)
    return records


#: ``terminal`` codes in ``viewer_sessions``' vocabulary (4 linux is a computer; 5 未知 says nothing).
SESSION_DEVICES = {"0": "pc", "1": "mac", "2": "ios", "3": "android", "4": "pc"}
#: ``terminal_details`` codes as clients (1 客户端 is the app).
SESSION_CLIENTS = {"1": "app", "2": "wechat", "3": "safari", "4": "chrome", "5": "other"}


def session_of_entry(stream: LivestreamStream, record: dict, context: Context | None) -> list[dict]:
    """An entry into a room as a ``viewer_sessions`` row; ``duration`` is the time in the room."""
    return [
        sessions.session(
            session_key=sessions.session_key("talkcloud", record.get("serial"), record.get("entry_key")),
            provider="talkcloud",
            source_stream=stream.name,
            grain="session",
            room_id=sessions.text(record.get("serial")),
            viewer_id=sessions.text(record.get("userid")),
            viewer_name=sessions.text(record.get("username")),
            is_anonymous=sessions.text(record.get("userid")) is None,
            role=record.get("userroleid_label"),
            joined_at=record.get("entertime_utc"),
            left_at=record.get("outtime_utc"),
            watch_seconds=record.get("duration_seconds"),
            online_seconds=record.get("duration_seconds"),
            device_type=SESSION_DEVICES.get(record.get("terminal") or ""),
            client=SESSION_CLIENTS.get(record.get("terminal_details") or ""),
        )
    ]


class TalkcloudStageUsersStream(DerivedStream):
    """``uptablelist``: who went on stage, from page 1 of each window the login records read."""

    name = STAGE_STREAM
    schema = RECORD_SCHEMA
    primary_keys = ("entry_key",)
    replication_key = "entertime_utc"


class TalkcloudLoginRecordsStream(_TalkcloudStream):
    """``logininfo``: every entry into and exit from a room, in windows of at most 28 days."""

    name = LOGIN_STREAM
    derived_streams = (
        Derive(TalkcloudStageUsersStream, from_page=stage_users_of_page),
        Derive(sessions.ViewerSessionsStream, from_record=session_of_entry),
    )

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        """This page's ``logininfo`` (stage users are derived from the same page)."""
        body = self.decode(response)
        yield from body.get("logininfo") or []


# ------------------------------------------------------------------------ room list


class TalkcloudRoomsStream(RoomListStream):
    """Every room of the company (``POST /WebAPI/getroomlist``, Talk-cloud's public WebAPI list).

    The list answers ``{result, roomlist: [{serial, roomname, starttime, endtime, thirdroomid}]}``
    in one call (no paging is documented); ``starttime``/``endtime`` are read as unix seconds,
    milliseconds or date-time text, whichever comes. ``result`` 4105 (no data) is an empty list.
    """

    name = "talkcloud_rooms"
    provider_key = "talkcloud"
    provider_name = "Talk-cloud"
    credential_hint = _TalkcloudStream.credential_hint
    path = "/WebAPI/getroomlist"
    http_method = "POST"
    payload_as_json = False
    schema = th.PropertiesList(
        *ROOM_PROPERTIES,
        th.Property("serial", th.StringType, description="Room number (房间号)."),
        th.Property("thirdroomid", th.StringType, description="Custom room number, when set."),
    ).to_dict()

    @override
    def prepare_request_payload(self, context: Context | None, next_page_token: int | None) -> dict:
        """The key in the form body, never in the URL."""
        return {"key": self.provider_config["key"]}

    @override
    def get_new_paginator(self) -> ProgressPaginator:
        return ProgressPaginator(self, 1)

    def has_more_pages(self, response: requests.Response, page: int) -> bool:
        """One call: the list is not paged."""
        return False

    def rows_of(self, body: t.Any) -> list[dict]:
        rows = body.get("roomlist") if isinstance(body, dict) else None
        return [row for row in rows or [] if isinstance(row, dict)]

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        yield from self.rows_of(self.decode(response))

    def check_provider_status(self, response: requests.Response) -> None:
        """``result`` 0 with a ``roomlist``; 4105 is an empty list; a key code or another fails."""
        body = self.decode(response)
        code = int_or_none(body.get("result")) if isinstance(body, dict) else None
        if code == NO_DATA:
            return
        if code == 0:
            if not isinstance(body.get("roomlist"), list):
                raise self.malformed(response, "result 0 without a roomlist list")
            return
        said = f" ({words})" if (words := self.provider_words(body)) else ""
        hint = (
            self.credential_hint
            if code in KEY_CODES
            else "set talkcloud.serials or talkcloud.thirdroomids to read rooms without the list"
        )
        raise ProviderAPIError(self.describe(self._context, f"room list: result {code}{said}", hint))

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """The common room fields from ``serial``/``roomname``/``starttime``/``endtime``."""
        serial = row.get("serial") or row.get("seria")
        if serial in (None, ""):
            return None
        start = moment(row.get("starttime"), self.tz)
        end = moment(row.get("endtime"), self.tz)
        third = row.get("thirdroomid")
        return {
            "id": str(serial),
            "serial": str(serial),
            "name": _text(row.get("roomname") if "roomname" in row else row.get("name")),
            "status": _text(row.get("status") if "status" in row else row.get("roomstate")),
            "created_at": rfc3339_or_none(moment(row.get("createtime"), self.tz)),
            "start_at": rfc3339_or_none(start),
            "end_at": rfc3339_or_none(end),
            "thirdroomid": _text(third) or None,
        }

    def room_context(self, record: dict) -> dict | None:
        """A listed room is read by its ``serial``, like a configured one."""
        return {"serial": record["id"]}


def _text(value: t.Any) -> str | None:
    return None if value is None else str(value)


class TalkcloudLoginRecordsOfRoomsStream(TalkcloudLoginRecordsStream):
    """``talkcloud_login_records`` of the rooms ``talkcloud_rooms`` lists (no room configured)."""

    parent_stream_type = TalkcloudRoomsStream
