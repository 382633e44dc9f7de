"""Mudu (目睹): viewer watch records of a channel, under a budget of 10 calls a day.

Document: Mudu's public API page 获取观众观看流水 (v2, ``POST /v2/activities/{频道id}/userRecords``).

Facts of the document that shape this module:

* "本接口每日调用上限为10次，次日0点重置": 10 calls a day, reset at midnight. The tap counts
  its own calls per access token per provider-local day in the state (``call_ledger``, keyed
  by a fingerprint of the token, never the token), so runs on the same day share the budget.
  When it is spent the stream stops cleanly, keeps its page cursor and lets other streams go on.
* "perPage 每页结果数 ... 默认20，最大100" and "p 页码 默认1": page numbers, at most 100 rows a
  call. The answer is a bare JSON array with no total, so a page shorter than ``perPage`` is
  the last one and no call is spent after it.
* "start_time ... 如：2016-12-20 10:00:00": request times are ``YYYY-MM-DD HH:MM:SS`` in the
  provider's local time (``provider_timezone``, China time by default).
* "first_login_time": "2018-03-15 15:33": record times are provider-local, minute precision;
  they leave the tap as RFC 3339 with the offset.
* "online_time": "00:02:00" (typed "datetime" in the table, but it is a duration): kept
  verbatim and also given in seconds (``online_seconds``, ``watch_seconds``).
* "2018年12月1号前的数据流水接口参考 v1": records before 2018-12-01 are in the v1 API, which this
  tap does not read; an earlier ``start_date`` is kept (it costs no call) with a warning.
* The document sets no maximum time range, and every extra window costs a partly filled page,
  so there is one window from the bookmark to the end; its end is kept in the state until its
  last page is in, so paging through it is stable across days.

Where the document is silent (see the README's provider notes): how the provider says the limit is reached
(any 429 that is not a short ``Retry-After``, or any answer whose message speaks of a call limit,
is read as "limit reached"), whether ``start_time``/``end_time`` are inclusive, and which time
the range filters on (read as the login time). Request times are seconds, but record times
show only the minute: windows are whole minutes, each query starts one minute early, and a row
is kept by the window its shown minute falls in (``time_precision``), so it comes exactly once
whether the bounds are inclusive or not and whether the minute is cut or rounded.
"""

from __future__ import annotations

import re
import typing as t
from datetime import datetime, timedelta
from functools import cached_property

from singer_sdk import typing as th
from singer_sdk.authenticators import BearerTokenAuthenticator
from typing_extensions import override

from tap_livestream_viewers import state as saved_state
from tap_livestream_viewers.budget_store import BudgetStoreUnavailable, CallLedger, open_ledger
from tap_livestream_viewers.client import (
    LivestreamStream,
    PartitionFailed,
    ProviderAPIError,
    is_list_of_objects,
    retry_after_seconds,
)
from tap_livestream_viewers.derived import Derive
from tap_livestream_viewers.guards import CallBudgetExhausted, CallGuard, DailyCallBudget
from tap_livestream_viewers.providers import sessions
from tap_livestream_viewers.rooms import ROOM_PROPERTIES, RoomListStream, moment, rfc3339_or_none
from tap_livestream_viewers.timeutil import hms_to_seconds, local_to_rfc3339, parse_datetime, to_local_text

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

# "2018年12月1号前的数据流水接口参考[获取观众观看流水](.../v1/ACTIVITY_USER_RECORDS.html)"
V2_DATA_START = "2018-12-01 00:00:00"
# A 429 asking to wait at most this long is a short-term limit worth one retry, not the daily one.
SHORT_RETRY_AFTER_S = 60.0
# Words of a "daily limit reached" answer (the document does not show one).
# "本接口每日调用上限为10次": 上限 is the document's own word for it.
_LIMIT_WORDS = re.compile(
    r"上限|调用次数|请求次数|rate.?limit|quota|limit (is )?(reached|exceeded)|too many (requests|calls)",
    re.IGNORECASE,
)


def active_stream_types(config: t.Mapping[str, t.Any]) -> list[type[LivestreamStream]]:
    """User records when ``mudu.access_token`` is set: of ``channel_ids``, or, when it is empty,
    of the channels ``mudu_channels`` lists (its calls spend the same daily budget)."""
    settings = config.get("mudu") or {}
    if not settings.get("access_token"):
        return []
    if settings.get("channel_ids"):
        return [MuduUserRecordsStream]
    return [MuduChannelsStream, MuduUserRecordsOfChannelsStream]


def session_of_record(stream: LivestreamStream, record: dict, context: Context | None) -> list[dict]:
    """A watch record (观看流水) as a ``viewer_sessions`` row.

    ``device`` is "移动端"/"电脑端" in the document (mobile, pc); ``browser`` (观看方式) is the
    client; ``origin`` (访问来源) the referrer; ``watch_time`` the seconds watched and
    ``online_time`` the seconds online.
    """
    user_id = sessions.text(record.get("user_id"))
    return [
        sessions.session(
            session_key=sessions.session_key("mudu", record.get("channel_id"), record.get("record_id")),
            provider="mudu",
            source_stream=stream.name,
            grain="session",
            room_id=sessions.text(record.get("channel_id")),
            viewer_id=user_id,
            viewer_name=sessions.text(record.get("nick")),
            is_anonymous=user_id is None,
            joined_at=sessions.utc(record.get("first_login_time")),
            left_at=sessions.utc(record.get("last_online_time")),
            watch_seconds=record.get("watch_seconds"),
            online_seconds=record.get("online_seconds"),
            device_type=sessions.device_type(record.get("device")),
            client=sessions.client_name(record.get("browser")),
            region=sessions.text(record.get("addr")),
            referrer=sessions.text(record.get("origin")),
        )
    ]


class _SpendAndSave(CallGuard):
    """Claim one call of the daily budget, then write the state, before the call is sent.

    The claim is made in the shared store (every process on this token sees it); the state
    records the count, so a run that is killed while waiting for an answer still has the call
    counted. A store that cannot be reached sends no call: the partition fails with one line.
    """

    def __init__(self, stream: MuduUserRecordsStream | MuduChannelsStream) -> None:
        self._stream = stream

    def before_call(self) -> None:
        try:
            self._stream.budget.before_call()
        except BudgetStoreUnavailable as error:
            raise PartitionFailed(
                self._stream.describe(self._stream._context, error.problem, error.action)
            ) from None
        self._stream.emit_state()


def is_limit_answer(stream: LivestreamStream, response: requests.Response, is_page: bool) -> bool:
    """Whether the provider says the daily call limit is reached (the document shows no such answer).

    A 429 that asks to wait only briefly (``Retry-After`` of at most a minute, in seconds or
    as an HTTP date) is a hiccup and is retried, whatever its page says; any other 429, and
    any other answer that is not a page and whose message speaks of a call limit (上限, 调用次数,
    quota, rate limit ...), is the daily limit.
    """
    status = response.status_code
    if 200 <= status < 300 and is_page:
        return False
    if status in (401, 404) or status >= 500:
        return False
    wait = retry_after_seconds(response)
    if status == 429 and wait is not None and wait <= SHORT_RETRY_AFTER_S:
        return False  # asked to wait briefly: a hiccup (retried), whatever the page says
    if _LIMIT_WORDS.search(stream.provider_message(response)):
        return True
    return status == 429


def limit_reached(budget: DailyCallBudget, stream: LivestreamStream, response: requests.Response) -> None:
    """The provider says the day's calls are spent: believe it, and stop cleanly for today."""
    made = budget.calls_today
    budget.mark_exhausted()
    raise CallBudgetExhausted(
        made,
        budget.limit,
        budget.resets_at,
        provider_said=f"HTTP {response.status_code}: {stream.provider_message(response)}",
    )


class MuduUserRecordsStream(LivestreamStream):
    """Every viewer record of a channel, page by page within one window, 10 calls a day."""

    name = "mudu_user_records"
    provider_key = "mudu"
    provider_name = "Mudu"
    path = "/v2/activities/{channel_id}/userRecords"
    http_method = "POST"
    payload_as_json = True  # "Content-Type:application/json"
    primary_keys = ("channel_id", "record_id")
    replication_key = "first_login_time"
    # "first_login_time": "2018-03-15 15:33": rows show the minute, so windows are whole minutes.
    time_precision = timedelta(minutes=1)
    content_key_field = "record_id"
    # "perPage 每页结果数 ... 默认20，最大100"
    default_page_size = 100
    max_page_size = 100
    # No maximum range in the document: one window, since each extra one costs a short page.
    max_window = None
    # 10 calls a day: a page fetched ahead and lost to a stop would be one of them.
    max_pages_in_flight = 1
    # Without end_date the window ends an hour ago: a viewer still watching has no final record
    # yet (its "last_online_time 离线时间" is not known), and a finished window is never re-read.
    end_lag = timedelta(hours=1)
    not_found_hint = "check mudu.channel_ids: this channel does not exist or is not in this account"
    credential_hint = (
        "check mudu.access_token (the Bearer ACCESS TOKEN of the Mudu account that owns the channels)"
    )
    derived_streams = (Derive(sessions.ViewerSessionsStream, from_record=session_of_record),)

    schema = th.PropertiesList(
        th.Property("channel_id", th.StringType, required=True, description="Partition: channel (频道) id."),
        th.Property("record_id", th.IntegerType, required=True, description="观众观看流水id."),
        th.Property("assign_id", th.StringType, description="Third-party viewer id (第三方id)."),
        th.Property("user_id", th.StringType, description="观众id."),
        th.Property("nick", th.StringType, description="观众昵称."),
        th.Property("addr", th.StringType, description="观众地址."),
        th.Property("online_time", th.StringType, description="在线时长, HH:MM:SS as sent."),
        th.Property("watch_time", th.StringType, description="观看时长, HH:MM:SS as sent."),
        th.Property("phone", th.StringType, description="手机号."),
        th.Property(
            "first_login_time",
            th.DateTimeType,
            description="进入时间 (provider-local, minute precision) with its offset.",
        ),
        th.Property(
            "last_online_time",
            th.DateTimeType,
            description="离线时间 (provider-local, minute precision) with its offset.",
        ),
        th.Property("device", th.StringType, description="观看设备."),
        th.Property("browser", th.StringType, description="观看方式."),
        th.Property("origin", th.StringType, description="访问来源."),
        th.Property("online_seconds", th.IntegerType, description="online_time in seconds."),
        th.Property("watch_seconds", th.IntegerType, description="watch_time in seconds."),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)

    # ----------------------------------------------------------------- configuration

    @property
    @override
    def partitions(self) -> list[dict]:
        """One partition per configured channel."""
        return [{"channel_id": str(c)} for c in self.provider_config.get("channel_ids") or []]

    @property
    @override
    def authenticator(self) -> BearerTokenAuthenticator:
        """``Authorization:Bearer {ACCESS TOKEN}`` as the document shows."""
        return BearerTokenAuthenticator(token=self.provider_config["access_token"])

    @property
    def daily_call_limit(self) -> int:
        """``mudu.daily_call_limit`` (default 10: "本接口每日调用上限为10次")."""
        value = self.provider_config.get("daily_call_limit")
        return 10 if value is None else max(0, int(value))

    @cached_property
    def shared_ledger(self) -> CallLedger:
        """The count every process on this token sees: ``call_budget_store``, or the local file."""
        return open_ledger(self.config)

    @cached_property
    def budget(self) -> DailyCallBudget:
        """Calls per token per provider-local day: claimed in the shared store, recorded in the state."""
        ledger = saved_state.call_ledger(self.stream_state)
        return DailyCallBudget(
            ledger,
            self.provider_config["access_token"],
            self.daily_call_limit,
            self.tz,
            self.now,
            mirror=self.shared_ledger,
        )

    def connection_test_skip_reason(self) -> str | None:
        """``--test`` spends a call of the 10 only when ``mudu.check_in_test`` asks for it."""
        if self.provider_config.get("check_in_test"):
            return None
        return (
            "not checked: each call counts against Mudu's daily limit; set mudu.check_in_test to true "
            "to check it with one call (counted in the local call ledger)"
        )

    @property
    def call_guards(self) -> list[CallGuard]:
        """Every attempt, retries included, spends one call of the day's budget."""
        return [_SpendAndSave(self)]

    def calls_left_note(self) -> str:
        """Calls left today for the progress lines; reads the ledger without writing to the state."""
        budget = self.__dict__.get("budget") or DailyCallBudget(
            saved_state.call_ledger_copy(self.stream_state),
            self.provider_config["access_token"],
            self.daily_call_limit,
            self.tz,
            self.now,
            mirror=self.shared_ledger,
        )
        resets = budget.resets_at.isoformat()
        return f"{budget.remaining} of {budget.limit} Mudu calls left today (reset at {resets})"

    # ------------------------------------------------------------------ time range

    def clamp_start(self, context: Context | None, start: datetime) -> datetime:
        """Keep the start; say once that records before 2018-12-01 live in Mudu's v1 API.

        "2018年12月1号前的数据流水接口参考 v1": an earlier start costs no extra call (there is one
        window), and moving it forward could drop rows if v2 does hold some, so it is kept.
        """
        if start < parse_datetime(V2_DATA_START, self.tz):
            self.logger.warning(
                "%s: start %s is before 2018-12-01; Mudu keeps older watch records in its v1 API, "
                "which this tap does not read",
                self.describe_partition(context),
                start.isoformat(),
            )
        return start

    @override
    def start_ahead(self, context: Context | None, start: datetime) -> datetime | None:
        """Never planned ahead: every call is one of ten a day (``max_pages_in_flight`` is 1)."""
        return None

    # ---------------------------------------------------------------------- request

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Everything goes in the JSON body."""
        return {}

    @override
    def prepare_request_payload(self, context: Context | None, next_page_token: int | None) -> dict:
        """The documented body: local times, ``perPage``, ``p`` and ``filter_watch_time``."""
        start, end = self.query_range()
        filter_watch = self.provider_config.get("filter_watch_time", True)
        return {
            "start_time": to_local_text(start, self.tz),
            "end_time": to_local_text(end, self.tz),
            "perPage": self._page_size_in_use,
            "p": next_page_token or 1,
            "filter_watch_time": 1 if filter_watch else 0,
        }

    # --------------------------------------------------------------------- response

    def rows_of(self, body: t.Any) -> list[dict]:
        """The answer is a bare JSON array of records."""
        return body if isinstance(body, list) else []

    @override
    def validate_response(self, response: requests.Response) -> None:
        """A "limit reached" answer ends today's run cleanly; the rest is the base's mapping."""
        if self._is_limit_answer(response):
            limit_reached(self.budget, self, response)
        super().validate_response(response)

    def check_provider_status(self, response: requests.Response) -> None:
        """A 200 that is not an array of objects is not a page: fail rather than read it as empty."""
        body = self.decode(response)
        if is_list_of_objects(body):
            return
        raise ProviderAPIError(
            self.describe(
                self._context,
                f"HTTP {response.status_code} without a list of records: {self.provider_message(response)}",
                "check mudu.base_url points at the Mudu API; run again, the state resumes at this page",
            )
        )

    def _is_limit_answer(self, response: requests.Response) -> bool:
        return is_limit_answer(self, response, isinstance(self.decode(response), list))

    # ---------------------------------------------------------------------- records

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """Add the channel, times with offset and durations in seconds; keep every field sent."""
        row["channel_id"] = str((context or {}).get("channel_id", ""))
        for field in ("user_id", "assign_id", "phone"):
            if row.get(field) is not None and not isinstance(row[field], str | dict | list):
                row[field] = str(row[field])
        for field in ("first_login_time", "last_online_time"):
            row[field] = self._local_time(row, field)
        row["online_seconds"] = self._seconds(row, "online_time", "online_seconds")
        row["watch_seconds"] = self._seconds(row, "watch_time", "watch_seconds")
        return row

    def record_time(self, record: dict) -> datetime | None:
        """The range is read as filtering on the login time (the minute the record shows)."""
        value = record.get("first_login_time")
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    def _local_time(self, row: dict, field: str) -> str | None:
        value = row.get(field)
        if value is None or value == "":
            return None
        try:
            return local_to_rfc3339(str(value), self.tz)
        except ValueError:
            self.bad_value(field, value, f"{field} null")
            return None

    def _seconds(self, row: dict, field: str, seconds_field: str) -> int | None:
        value = row.get(field)
        try:
            return hms_to_seconds(value)
        except (TypeError, ValueError):
            self.bad_value(field, value, f"{field} as sent, {seconds_field} null")
            return None


# ------------------------------------------------------------------------ channel list

#: "GET /v1/activities": 30 channels a page (Mudu's public API page 获取频道列表).
CHANNELS_PER_PAGE = 30


class MuduChannelsStream(RoomListStream):
    """Every channel of the account (``GET /v1/activities``, page ``p``, 30 a page).

    Its calls spend the same daily budget as the user records (one ledger), so the list is read
    only when ``channel_ids`` is empty, at most once a day (the day's list is kept in this
    stream's state and reused), and, when an older list is kept, with at most half of the calls
    left today; a list not finished continues at its next page in the next run, and the older
    list is used meanwhile. The answer is ``{"activities": [...]}`` (a bare array is read too).
    The documented rows carry no end time, so every listed channel can have new data and is
    read, channels never read or read longest ago first, while the budget lasts.
    """

    name = "mudu_channels"
    provider_key = "mudu"
    provider_name = "Mudu"
    path = "/v1/activities"
    default_page_size = CHANNELS_PER_PAGE
    max_page_size = CHANNELS_PER_PAGE
    max_pages_in_flight = 1  # the same 10 calls a day as the user records
    credential_hint = MuduUserRecordsStream.credential_hint
    schema = th.PropertiesList(
        *ROOM_PROPERTIES,
        th.Property("live_status", th.StringType, description="live_status, as sent."),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._asked_page = 1
        self._allowance = 0
        self._stopped_page: int | None = None
        self._note = ""

    @property
    def budget(self) -> DailyCallBudget:
        """The user records' budget: one ledger for every Mudu call of the day."""
        for child in self.child_streams:
            if isinstance(child, MuduUserRecordsStream):
                return child.budget
        raise ProviderAPIError(self.describe(None, "no user records stream to share a budget", "report it"))

    @property
    @override
    def authenticator(self) -> BearerTokenAuthenticator:
        return BearerTokenAuthenticator(token=self.provider_config["access_token"])

    @property
    def call_guards(self) -> list[CallGuard]:
        return [_SpendAndSave(self)]

    def connection_test_skip_reason(self) -> str | None:
        """Like the user records: ``--test`` spends no Mudu call unless ``mudu.check_in_test``."""
        return None if self.provider_config.get("check_in_test") else "not checked: each call counts"

    def calls_left_note(self) -> str:
        return f"{self.budget.remaining} of {self.budget.limit} Mudu calls left today"

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        self._asked_page = int(next_page_token or 1)
        return {"p": self._asked_page}

    def rows_of(self, body: t.Any) -> list[dict]:
        rows = body.get("activities") if isinstance(body, dict) else body
        return [row for row in rows or [] if isinstance(row, dict)] if isinstance(rows, list) else []

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        yield from self.rows_of(self.decode(response))

    @override
    def validate_response(self, response: requests.Response) -> None:
        body = self.decode(response) if 200 <= response.status_code < 300 else None
        is_page = isinstance(body, list) or (
            isinstance(body, dict) and isinstance(body.get("activities"), list)
        )
        if is_limit_answer(self, response, is_page):
            limit_reached(self.budget, self, response)
        super().validate_response(response)
        if not is_page:  # not retried: a retry spends a call of the day's ten
            raise ProviderAPIError(
                self.describe(
                    self._context,
                    f"channel list without an activities list: {self.provider_message(response)}",
                    "check mudu.base_url, or set mudu.channel_ids to read channels without the list",
                )
            )

    def has_more_pages(self, response: requests.Response, page: int) -> bool:
        """A full page of 30 may have a next one; stop at this run's share of the budget."""
        more = len(self.rows_of(self.decode(response))) >= CHANNELS_PER_PAGE
        if more and self.progress.counts.calls >= self._allowance:
            self._stopped_page = page + 1
            return False
        return more

    def list_rooms(self, context: Context | None) -> list[dict]:
        """Today's kept list, or the list read (or continued) within this run's share of calls."""
        saved = self.stream_state.setdefault("channel_list", {})
        today = self.now().astimezone(self.tz).date().isoformat()
        previous = [row for row in saved.get("rows") or [] if isinstance(row, dict)]
        if saved.get("day") == today and not saved.get("next_page"):
            self._note = "today's channel list reused from the state"
            return previous
        next_page = int(saved.get("next_page") or 1)
        partial = list(saved.get("partial") or []) if next_page > 1 else []
        self._allowance = self.budget.remaining // 2 if previous else self.budget.remaining
        self._stopped_page = None
        fresh: list[dict] = []
        if self._allowance > 0:
            self._first_page = next_page
            try:
                fresh.extend(self.request_records(context))
            except CallBudgetExhausted:
                self._stopped_page = self._asked_page
        else:
            self._stopped_page = next_page
        got = partial + fresh
        if self._stopped_page is None:
            saved.update(day=today, rows=got, partial=[], next_page=None)
            self._note = "the daily budget's calls"
            rows = got
        else:
            saved.update(partial=got, next_page=self._stopped_page)
            self._note = (
                f"the daily budget's calls; list not finished, continued at page {self._stopped_page} "
                "next run, the last complete list used meanwhile"
            )
            known = {str(row.get("id")) for row in got}
            rows = got + [row for row in previous if str(row.get("id")) not in known]
        self.emit_state()
        return rows

    def list_note(self) -> str:
        return self._note

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """``id``/``name``/``create_at``/``live_status``; start and end times when a version sends them."""
        if row.get("id") in (None, ""):
            return None
        status = row.get("live_status")
        return {
            "id": str(row["id"]),
            "name": None if row.get("name") is None else str(row["name"]),
            "status": None if status is None else str(status),
            "live_status": None if status is None else str(status),
            "created_at": rfc3339_or_none(moment(row.get("create_at") or row.get("created_at"), self.tz)),
            "start_at": rfc3339_or_none(moment(row.get("start_time") or row.get("live_start_time"), self.tz)),
            "end_at": rfc3339_or_none(moment(row.get("end_time") or row.get("live_end_time"), self.tz)),
        }

    def room_context(self, record: dict) -> dict | None:
        return {"channel_id": record["id"]}


class MuduUserRecordsOfChannelsStream(MuduUserRecordsStream):
    """``mudu_user_records`` of the channels ``mudu_channels`` lists (``channel_ids`` empty)."""

    parent_stream_type = MuduChannelsStream
