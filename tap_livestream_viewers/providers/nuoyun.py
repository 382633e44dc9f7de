"""Nuoyun (诺云): every viewer's accumulated watch time per room, by the row's update time.

Document: Nuoyun's public API page 获取所有用户观看数据 (
``POST /Api/RoomRounds/getAccountUserDurationList/2.0.0``).

Quirks that shape this module:

* "请求方式:POST", "请求头:Content-Type:application/json": the query is a JSON body with
  ``page`` ("最小值1"), ``page_size`` ("最小值为1,最大值500"), ``sort`` ("asc(正序),desc(倒序)"),
  ``update_time_start``/``update_time_end`` ("更新时间-(开始时间戳)") and an optional
  ``wechat_user_space_id``. The document does not say how the gateway authenticates, so
  ``nuoyun.headers`` go on every request and ``nuoyun.body`` is merged into every body.
* "code: 状态码:200-成功,400-失败": ``code`` decides, whatever the HTTP status. A rate-limit
  code (429, or a message about 频繁/限流) is retried with backoff like HTTP 429.
* "频率限制:10秒1000次": a client-side sliding-window limiter holds every attempt (retries
  included) to ``nuoyun.max_requests_per_10s``, with a small margin for network skew.
* "data.total: 用户总数": paging stops from the total, never on a guess.
* The row carries no update time, so the bookmark is the end of the last finished window;
  each record carries that window's end as ``update_window_end`` (its update time was at
  most that when read). Windows end ``end_lag`` in the past, so rows still being written
  are read next time.
* Rows move while we page: a viewer who comes back gets a new update time ("now"), leaves
  the window, and every later row shifts up. Naive page numbers then skip rows. This
  stream keeps a *frontier* (how many leading rows, in the provider's current order, are
  known to be read) and lowers it by every drop of ``data.total``; the next page is chosen
  (page number and page size) to start at or before the frontier. See ``Frontier``.
* "data.total" may overstate the rows the list serves (a count query that disagrees with
  the list query). An empty page at or before the frontier with no drop of the total (or a
  short one once the gateway's page size is known) means the gateway has no further rows:
  the window is finished with one warning naming N and M. See ``absorb_page``.
* Paging ends only from the frontier: when all rows are read, when the gateway has no more
  rows, or with a clear error after ``STALL_PAGES`` pages without progress. The SDK's own
  loop check (the same token twice) is off: here the same page twice can be progress.
* A page with more rows than ``page_size`` means the gateway pages by its own size: that size
  is learned (and kept in the state) and page positions are computed with it.
* Whether ``update_time_start``/``update_time_end`` are inclusive is not said: each query
  starts one second before its window (the base's ``query_range``). Rows carry no update
  time to filter on, so a row updated exactly on a boundary second may come in two windows,
  under the same key (an upsert of the same aggregate), never in none.
* "device: 使用设备 0为pc,1为安卓,2为其他,3为ios" yet the example sends "iOS", "Android" and "":
  the raw value is kept as a string in ``device`` and ``device_label`` is derived.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

import msgspec
from singer_sdk import typing as th
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import BaseAPIPaginator
from typing_extensions import override

from tap_livestream_viewers.client import (
    LivestreamStream,
    PageFacts,
    ProviderAPIError,
    int_or_none,
    is_list_of_objects,
)
from tap_livestream_viewers.derived import Derive
from tap_livestream_viewers.guards import CallGuard, SlidingWindowRateLimiter
from tap_livestream_viewers.providers import sessions
from tap_livestream_viewers.state import ProgressExtras, count, hint
from tap_livestream_viewers.timeutil import local_column, local_to_rfc3339, to_rfc3339
from tap_livestream_viewers.typed_rows import TypedRows, row_struct

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

PATH = "/Api/RoomRounds/getAccountUserDurationList/2.0.0"
#: "page_size: 一页显示多少(最小值为1,最大值500)"
MAX_PAGE_SIZE = 500
#: "频率限制:10秒1000次"
RATE_LIMIT_CALLS = 1000
RATE_LIMIT_PERIOD_S = 10.0
#: Added to the 10 s period: the gateway counts arrivals, we count sends; latency differs per call.
RATE_LIMIT_MARGIN_S = 0.25
#: Pages in a row without progress before giving up (rows updated faster than we can page).
STALL_PAGES = 25

#: "device: 使用设备 0为pc,1为安卓,2为其他,3为ios" — and the example's own "iOS"/"Android".
DEVICE_LABELS = {
    "0": "PC",
    "1": "Android",
    "2": "other",
    "3": "iOS",
    "pc": "PC",
    "android": "Android",
    "ios": "iOS",
    "other": "other",
    "其他": "other",
    "安卓": "Android",
}
RATE_LIMIT_WORDS = ("频繁", "频率", "限流", "too many", "rate limit")
#: ``device`` as sent (a code as a number or text, or a label) -> (``device`` kept, its label).
_DEVICES: dict[int | str, tuple[str, str]] = {
    **{int(code): (code, label) for code, label in DEVICE_LABELS.items() if code.isdigit()},
    **{text: (text, label) for text, label in DEVICE_LABELS.items()},
}


def has_credentials(settings: t.Mapping[str, t.Any]) -> bool:
    """Whether ``nuoyun.headers`` or ``nuoyun.body`` carries at least one non-empty value.

    The document does not name Nuoyun's credentials, so they are free-form; but a gateway
    answers nobody without one, and Meltano always passes the ``nuoyun`` object (with the
    schema's defaults), so the object's presence says nothing about the user's intent.
    """
    for name in ("headers", "body"):
        values = settings.get(name)
        if isinstance(values, t.Mapping) and any(v not in (None, "", [], {}) for v in values.values()):
            return True
    return False


def active_stream_types(config: t.Mapping[str, t.Any]) -> list[type[LivestreamStream]]:
    """The stream is active when ``nuoyun.headers`` or ``nuoyun.body`` carries a credential."""
    settings = config.get("nuoyun")
    if isinstance(settings, t.Mapping) and has_credentials(settings):
        return [NuoyunUserDurationsStream]
    return []


def device_label(raw: str | None) -> str | None:
    """The label of a device code (0 PC, 1 Android, 2 other, 3 iOS) or of a label already sent.

    Empty or missing: ``None``. An unknown number: ``None`` (we do not guess a code). Unknown
    text (e.g. a new platform name): the text itself, since the provider sent a label.
    """
    if not raw:
        return None
    label = DEVICE_LABELS.get(raw)
    if label is not None:
        return label
    text = raw.strip()
    label = DEVICE_LABELS.get(text.lower())
    if label is not None:
        return label
    if not text or text.lstrip("-").isdigit():
        return None
    return text


def device_fields(raw: t.Any) -> tuple[t.Any, str | None]:
    """``device`` as kept (a code or label as text) and its label, from ``device`` as sent."""
    known = _DEVICES.get(raw) if type(raw) is int or type(raw) is str else None
    if known is not None:  # the documented codes and labels: one lookup
        return known
    if raw is not None and type(raw) is not str and not isinstance(raw, (dict, list)):
        raw = str(raw)
    return raw, device_label(raw) if isinstance(raw, str) else None


#: Provider-local times of a row, written as RFC 3339 with the zone's offset.
VISIT_FIELDS = ("first_visit_time", "last_visit_time")
#: ``device_label`` values in the shared vocabulary of ``viewer_sessions``.
SESSION_DEVICES = {"PC": "pc", "Android": "android", "iOS": "ios", "other": "other"}


def session_of_row(stream: LivestreamStream, record: dict, context: Context | None) -> list[dict]:
    """One viewer's total in one room as a ``viewer_sessions`` row (``grain`` viewer_room_total).

    Nuoyun has no per-visit rows: first/last visit bound the visits, ``stay_duration`` is the
    time online, ``live_duration`` + ``playback_duration`` the time watched.
    """
    live = int_or_none(record.get("live_duration"))
    playback = int_or_none(record.get("playback_duration"))
    watched = None if live is None and playback is None else (live or 0) + (playback or 0)
    label = record.get("device_label")
    return [
        sessions.session(
            session_key=sessions.session_key(
                "nuoyun", record.get("room_id"), record.get("wechat_user_space_id")
            ),
            provider="nuoyun",
            source_stream=stream.name,
            grain="viewer_room_total",
            room_id=sessions.text(record.get("room_id")),
            viewer_id=sessions.text(record.get("wechat_user_space_id")),
            viewer_name=sessions.text(record.get("wechat_user_name")),
            is_anonymous=record.get("wechat_user_space_id") is None,
            joined_at=sessions.utc(record.get("first_visit_time")),
            left_at=sessions.utc(record.get("last_visit_time")),
            watch_seconds=watched,
            online_seconds=int_or_none(record.get("stay_duration")),
            live_seconds=live,
            playback_seconds=playback,
            device_type=SESSION_DEVICES.get(label, sessions.device_type(label)) if label else None,
            region=sessions.text(record.get("area")),
            ip=sessions.text(record.get("ip")),
        )
    ]


def best_page(target: int, cap: int) -> tuple[int, int]:
    """The (page, page_size) whose page starts at or before row ``target`` and ends furthest.

    Page ``p`` of size ``q`` holds rows ``[(p-1)q, pq)``. Without moving rows ``target`` is a
    multiple of ``cap`` and the answer is the plain next page. After rows moved, a page size
    a little under ``cap`` usually reaches almost ``cap`` rows past ``target``; ties go to
    the smaller size (fewer rows read twice).
    """
    cap = max(1, cap)
    target = max(0, target)
    if target % cap == 0:
        return target // cap + 1, cap
    best_page_no, best_size, best_end = 1, cap, -1
    for size in range(cap, 0, -1):
        page = target // size + 1
        end = page * size
        if end >= best_end:
            best_page_no, best_size, best_end = page, size, end
    return best_page_no, best_size


@dataclass
class Frontier:
    """Which leading rows of the window, in the provider's current order, are known to be read.

    ``rows`` leading rows are read. When ``data.total`` falls by ``d`` between two answers,
    up to ``d`` rows before the frontier left the window and the rows after them moved up by
    as many places, so only ``rows - d`` leading rows are still known read. A page that
    starts at or before that point extends the frontier to its end; a page that starts
    after it leaves a gap, and the next page starts inside the gap.

    ``progress`` (frontier plus every row that left) never falls; while it grows, paging gets
    somewhere. It is bounded (a row leaves a window once), so paging ends.
    """

    rows: int = 0
    total: int | None = None
    last_drop: int = 0
    left: int = 0

    @property
    def progress(self) -> int:
        return self.rows + self.left

    def absorb(self, offset: int, count: int, total: int) -> int:
        """Take in one answer (its first row's offset, rows, total); returns the drop seen."""
        drop = self.total - total if self.total is not None and total < self.total else 0
        known = max(0, self.rows - drop)
        self.rows = max(known, offset + count) if offset <= known else known
        self.left += drop
        self.total = total
        self.last_drop = drop
        return drop

    def done(self) -> bool:
        return self.total is not None and self.rows >= self.total


@dataclass(frozen=True)
class FrontierProgress(ProgressExtras):
    """What an in-flight window keeps besides its page: rows known read, the last total, and the
    page size of a gateway that serves more rows than asked (it pages by its own size)."""

    frontier: int | None = count(0)
    total: int | None = count(0, null_saved=True)
    gateway_page_size: int | None = hint()


class FrontierPaginator(BaseAPIPaginator[tuple[int, int]]):
    """Tokens are ``(page, page_size)``, chosen from the frontier after every answer.

    The SDK's ``advance`` raises "Loop detected in pagination" when a token repeats. Here a
    repeat is legitimate (rows that left the window can hold the frontier in place while
    progress grows) or is a stall that ``absorb_page`` counts and reports in one line; the
    SDK's check would fire first with a raw traceback. So ``advance`` is the SDK's without
    that check: the stream's frontier alone decides when paging ends.
    """

    def __init__(self, stream: NuoyunUserDurationsStream, start: tuple[int, int]) -> None:
        super().__init__(start)
        self._stream = stream

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        """An empty page after rows left the window may still leave rows unread: ask the frontier."""
        return True

    @override
    def has_more(self, response: requests.Response) -> bool:
        return self._stream.absorb_page(response, self.current_value)

    @override
    def get_next(self, response: requests.Response) -> tuple[int, int]:
        return self._stream.next_token()

    @override
    def advance(self, response: requests.Response) -> None:
        """Move on (no identical-token check, see the class), then save the next page and the state.

        Mirrors ``BaseAPIPaginator.advance`` of singer-sdk 0.54 otherwise.
        """
        self._page_count += 1
        if not self.has_more(response):
            self._finished = True
            return
        self._value = self.get_next(response)
        page, size = self._value
        self._stream._page_size_in_use = size
        self._stream.page_done(page)


#: ``data.list`` rows as records: the document's fields, plus the device label and the window end.
SCHEMA = th.PropertiesList(
    th.Property("room_id", th.IntegerType, required=True, description="直播间ID (room id)."),
    th.Property("wechat_user_space_id", th.IntegerType, required=True, description="用户ID (viewer id)."),
    th.Property("wechat_user_name", th.StringType, description="用户昵称 (nickname)."),
    th.Property("wechat_user_photo", th.StringType, description="用户头像 (avatar URL)."),
    th.Property("stay_duration", th.IntegerType, description="在线时长 (seconds online)."),
    th.Property("ip", th.StringType, description="最近访问IP (last IP)."),
    th.Property("third_uuid", th.StringType, description="三方系统用户ID (third-party user id)."),
    th.Property(
        "third_wechat_info",
        th.ObjectType(
            th.Property("authorizer_appid", th.StringType),
            th.Property("openid", th.StringType),
            th.Property("unionid", th.StringType),
            additional_properties=True,
        ),
        description="第三方微信信息 (third-party WeChat account).",
    ),
    th.Property("live_duration", th.IntegerType, description="直播时长 (seconds watched live)."),
    th.Property("playback_duration", th.IntegerType, description="回放时长 (seconds watched as playback)."),
    th.Property(
        "channel_info",
        th.ObjectType(
            th.Property("channel_id", th.IntegerType),
            th.Property("channel_name", th.StringType),
            th.Property("store_id", th.StringType),
            additional_properties=True,
        ),
        description="门店渠道归属信息 (store/channel the viewer belongs to).",
    ),
    th.Property("invited_wechat_user_space_id", th.IntegerType, description="邀请用户ID (inviter)."),
    th.Property("invited_name", th.StringType, description="邀请用户昵称 (inviter nickname)."),
    th.Property(
        "first_visit_time", th.DateTimeType, description="初次访问时间, provider-local time with offset."
    ),
    th.Property(
        "last_visit_time", th.DateTimeType, description="Last visit, provider-local time with offset."
    ),
    th.Property("area", th.StringType, description="IP地址 (region of the IP)."),
    th.Property(
        "device",
        th.StringType,
        description="使用设备 as sent: a code (0 PC, 1 Android, 2 other, 3 iOS) or a label.",
    ),
    th.Property("device_label", th.StringType, description="Label of device: PC, Android, other, iOS."),
    th.Property(
        "update_window_end",
        th.DateTimeType,
        description=(
            "End of the update-time window the row was read in: rows carry no update time, so "
            "this bounds it (the row's update time was at most this). Replication key."
        ),
    ),
).to_dict()


#: A row of ``data.list`` as the document lists it, for typed pages (``typed_rows``): ``device``
#: is sent as a code (a number or text) or a label, the visit times as provider-local text.
NuoyunRow = row_struct(
    "NuoyunRow",
    SCHEMA,
    added=("device_label", "update_window_end"),
    raw_types={"device": int | str, "first_visit_time": str, "last_visit_time": str},
)


#: The document's answer, ``{code, msg, data: {total, list}}``, with nothing else in it.
class _NuoyunData(msgspec.Struct, forbid_unknown_fields=True):
    rows: list[NuoyunRow] = msgspec.field(name="list")  # type: ignore[valid-type]
    total: t.Any = msgspec.UNSET


class _NuoyunAnswer(msgspec.Struct, forbid_unknown_fields=True):
    code: t.Any
    data: _NuoyunData
    msg: t.Any = msgspec.UNSET


_ANSWER = msgspec.json.Decoder(_NuoyunAnswer)


class NuoyunUserDurationsStream(LivestreamStream):
    """One row per viewer per room, with stay, live and playback seconds, by update time."""

    name = "nuoyun_user_durations"
    provider_key = "nuoyun"
    provider_name = "Nuoyun"
    path = PATH
    http_method = "POST"
    payload_as_json = True
    primary_keys = ("room_id", "wechat_user_space_id")
    replication_key = "update_window_end"
    content_key_field = "wechat_user_space_id"
    # The document sets no range limit; one window keeps calls at ceil(rows / 500).
    max_window = None
    # Rows still being written (and gateway clock skew) land in the next window.
    end_lag = timedelta(minutes=5)
    default_page_size = MAX_PAGE_SIZE
    max_page_size = MAX_PAGE_SIZE
    # "频率限制:10秒1000次": 8 in flight stay far below it (and the limiter holds every call to it).
    default_pages_in_flight = 8
    credential_hint = (
        "check that nuoyun.headers and/or nuoyun.body carry the credentials your Nuoyun gateway expects"
    )
    derived_streams = (Derive(sessions.ViewerSessionsStream, from_record=session_of_row),)
    progress_extras = FrontierProgress

    schema = SCHEMA
    row_type = NuoyunRow

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._frontier = Frontier()
        self._page_cap = self.page_size
        self._page_cap_seen = False
        self._window_end_text: str | None = None
        self._stalled_pages = 0
        self._best_progress = 0
        self._total_warned = False
        #: Rows per page of a gateway that serves more than asked (it pages by its own size).
        self._gateway_size: int | None = None

    # ----------------------------------------------------------------- configuration

    @property
    @override
    def http_headers(self) -> dict:
        """``nuoyun.headers`` on every request (the document does not name the auth headers)."""
        headers = dict(super().http_headers)
        headers.update({str(k): str(v) for k, v in (self.provider_config.get("headers") or {}).items()})
        return headers

    @cached_property
    def rate_limiter(self) -> SlidingWindowRateLimiter:
        """One limiter for the stream, so every partition shares the 10-second allowance."""
        calls = int(self.provider_config.get("max_requests_per_10s") or RATE_LIMIT_CALLS)
        return SlidingWindowRateLimiter(max(1, calls), RATE_LIMIT_PERIOD_S + RATE_LIMIT_MARGIN_S)

    @property
    def call_guards(self) -> list[CallGuard]:
        return [self.rate_limiter]

    @property
    @override
    def partitions(self) -> list[dict] | None:
        """One per ``nuoyun.wechat_user_space_ids`` entry; none (the whole account) when empty."""
        ids = self.provider_config.get("wechat_user_space_ids") or []
        return [{"wechat_user_space_id": int(i)} for i in ids] or None

    # ------------------------------------------------------------------- windows

    def planned_windows(self, context: Context | None) -> t.Iterator[tuple[t.Any, int]]:
        """The base's windows; an unfinished one resumes with its frontier and last total."""
        progress = self.saved_state(context).load().progress
        for index, (window, first_page) in enumerate(super().planned_windows(context)):
            if index == 0 and progress:
                saved = progress.extras_as(FrontierProgress) or FrontierProgress()
                size = progress.page_size or self.page_size
                rows = saved.frontier if saved.frontier is not None else (first_page - 1) * size
                self._frontier = Frontier(rows=rows, total=saved.total)
                self._gateway_size = saved.gateway_page_size
            else:
                self._frontier = Frontier()
                self._gateway_size = None
            self._page_cap = self.page_size
            self._page_cap_seen = False
            self._stalled_pages = 0
            self._best_progress = self._frontier.progress
            self._window_end_text = to_rfc3339(window.end)
            yield window, first_page

    def progress_extras_now(self) -> FrontierProgress:
        """The frontier and the last total (to see rows that left meanwhile) go with the progress."""
        return FrontierProgress(self._frontier.rows, self._frontier.total, self._gateway_size or None)

    # -------------------------------------------------------------------- request

    @override
    def get_new_paginator(self) -> FrontierPaginator:
        return FrontierPaginator(self, (self._first_page, self._page_size_in_use))

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        return {}

    @override
    def prepare_request_payload(
        self, context: Context | None, next_page_token: tuple[int, int] | None
    ) -> dict[str, t.Any]:
        """``nuoyun.body`` plus the documented query, from one second before the window (``query_range``).

        The document does not say whether the bounds are inclusive; a row updated exactly on
        a boundary second may then come in two windows (same key), never in none.
        """
        start, end = self.query_range()
        page, size = next_page_token or (1, self._page_size_in_use)
        body: dict[str, t.Any] = dict(self.provider_config.get("body") or {})
        body.update(
            page=page,
            page_size=size,
            sort="asc",
            update_time_start=int(start.timestamp()),
            update_time_end=int(end.timestamp()),
        )
        if context and context.get("wechat_user_space_id") is not None:
            body["wechat_user_space_id"] = int(context["wechat_user_space_id"])
        return body

    # ---------------------------------------------------------------------- answers

    @override
    def decode_typed(self, content: bytes) -> dict | None:
        """The documented answer with its rows as ``NuoyunRow`` structs; ``None`` for any other."""
        try:
            answer = _ANSWER.decode(content)
        except msgspec.MsgspecError:
            return None
        data: dict[str, t.Any] = {"list": TypedRows(answer.data.rows)}
        if answer.data.total is not msgspec.UNSET:
            data["total"] = answer.data.total
        body = {"code": answer.code, "data": data}
        if answer.msg is not msgspec.UNSET:
            body["msg"] = answer.msg
        return body

    def rows_of(self, body: t.Any) -> list[dict]:
        """Rows are in ``data.list``."""
        data = body.get("data") if isinstance(body, dict) else None
        rows = data.get("list") if isinstance(data, dict) else None
        return rows if isinstance(rows, list) else []

    def page_facts(self, response: requests.Response) -> PageFacts:
        body = self.decode(response)
        data = body.get("data") if isinstance(body, dict) else None
        total = data.get("total") if isinstance(data, dict) else None
        return PageFacts(rows=len(self.rows_of(body)), total=int_or_none(total))

    def check_provider_status(self, response: requests.Response) -> None:
        """``code`` 200 is success; a rate-limit code is retried; anything else fails with ``msg``."""
        body = self.decode(response)
        if not isinstance(body, dict):
            raise ProviderAPIError(
                self.describe(
                    self.request_context,
                    f"HTTP {response.status_code} without a {{code, msg, data}} object",
                    f"check nuoyun.base_url points at the Nuoyun gateway (now {self.url_base})",
                )
            )
        code = body.get("code")
        message = self.one_line(str(body.get("msg") or ""))
        if int_or_none(code) == 200:
            data = body.get("data")
            rows = data.get("list") if isinstance(data, dict) else None
            if not is_list_of_objects(rows):
                raise self.malformed(response, "code 200 without a data.list of objects")
            return
        lowered = message.lower()
        if int_or_none(code) == 429 or any(word in lowered for word in RATE_LIMIT_WORDS):
            raise RetriableAPIError(f"code {code}: {message} (rate limited)", response)
        action = self.credential_hint if int_or_none(code) in (401, 403) else None
        raise ProviderAPIError(
            self.describe(
                self.request_context,
                f"code {code}: {message or 'no msg'}",
                action
                or (
                    "check the credentials in nuoyun.headers / nuoyun.body and the request settings "
                    "(page_size 1-500, wechat_user_space_ids); the state resumes at this page"
                ),
            )
        )

    # ---------------------------------------------------------------------- paging

    def absorb_page(self, response: requests.Response, token: tuple[int, int]) -> bool:
        """Move the frontier with one answer; ``True`` while rows of the window are unread.

        **A total that overstates the rows served.** When a page starting at or before the
        frontier comes back empty, with no drop of ``data.total``, the gateway has no row at
        that position or after it: every row it serves for this window is read, whatever the
        total says. The window is finished with one warning (provider, stream, partition,
        "data.total says N but rows end at M") and the bookmark moves on. We finish rather
        than fail because asking again cannot produce a row, and failing would resume into
        the same window on every run, stopping the partition for good over a count. A short
        page is read the same way once the gateway's page size is known; the first short
        page may be a silent page-size cap, so one page at the frontier at that size is
        asked first (the only extra call, and it is needed to tell the two apart). Should
        a gateway withhold rows it does count (e.g. a deep-paging limit), no answer the tap
        could ask for holds them; the warning is the trace.

        **A stall.** ``STALL_PAGES`` pages in a row without progress (rows updated faster
        than pages advance) raise the one-line ``ProviderAPIError``; the state saved after
        the last page resumes the window.
        """
        page, asked = token
        facts = self.page_facts(response)
        size = self._gateway_size or asked
        offset = (page - 1) * size
        if facts.rows > size:
            self._learn_gateway_size(facts.rows, asked)
            size = facts.rows
        total = facts.total
        if total is None:
            if not self._total_warned:
                self.logger.warning(
                    "%s: answer without data.total; paging until a short page, moved rows cannot be detected",
                    self.describe_partition(self._context),
                )
                self._total_warned = True
            total = offset + facts.rows + (1 if facts.rows >= size else 0)
        before = self._frontier.total
        known = self._frontier.rows
        drop = self._frontier.absorb(offset, facts.rows, total)
        if before is not None and total > before:
            self.logger.warning(
                "%s: data.total rose from %d to %d inside window %s .. %s, which ends in the past; "
                "rows written late may be missed, re-run with an earlier start_date to re-read them",
                self.describe_partition(self._context),
                before,
                total,
                to_rfc3339(self._window.start) if self._window else "?",
                self._window_end_text,
            )
        if drop:
            self.logger.info(
                "%s: data.total fell from %d to %d: %d row(s) were updated and left the window "
                "(they come in the next window); rows after them moved up, re-reading from row %d",
                self.describe_partition(self._context),
                before,
                total,
                drop,
                self._frontier.rows,
            )
        short = facts.rows < size and offset + facts.rows < total
        if short and not drop and offset <= known and (facts.rows == 0 or self._page_cap_seen):
            self.warn_rows_end(total, offset, facts.rows)
            return False
        if short and facts.rows > 0:
            # the gateway serves fewer rows than asked: page by what it serves (or the rows end here)
            self._page_cap = facts.rows
            self._page_cap_seen = True
        if self._frontier.done():
            return False
        if self._frontier.progress > self._best_progress:
            self._best_progress = self._frontier.progress
            self._stalled_pages = 0
        else:
            self._stalled_pages += 1
            if self._stalled_pages >= STALL_PAGES:
                raise ProviderAPIError(
                    self.describe(
                        self._context,
                        f"rows are updated faster than they can be paged: {STALL_PAGES} pages without "
                        f"progress (data.total now {total})",
                        "run again later or with an earlier end_date; the state resumes this window",
                    )
                )
        return True

    def _learn_gateway_size(self, rows: int, asked: int) -> None:
        """A page with more rows than asked: the gateway pages by its own size; follow it."""
        self._gateway_size = rows
        self.logger.info(
            "%s: the gateway served %d rows for page_size %d; paging by %d rows a page",
            self.describe_partition(self._context),
            rows,
            asked,
            rows,
        )

    def warn_rows_end(self, total: int, offset: int, rows: int) -> None:
        """One line: the total says more rows than the gateway serves; the window ends here."""
        end = offset + rows
        page_kind = "an empty page" if rows == 0 else f"a page of {rows} row(s)"
        self.logger.warning(
            "%s",
            self.describe(
                self._context,
                f"data.total says {total} but rows end at {end} in window "
                f"{to_rfc3339(self._window.start) if self._window else '?'} .. {self._window_end_text} "
                f"({page_kind} at row {offset} with no drop of data.total); the window is finished "
                f"with every row the gateway serves",
                "nothing if the total counts rows the list leaves out; if rows are missing, report "
                "this line to Nuoyun",
            ),
        )

    def first_token(self) -> tuple[int, int]:
        """A fresh window starts at page 1 at the configured size."""
        return 1, self.page_size

    @override
    def pages_ahead(self, token: t.Any, response: requests.Response) -> t.Iterable[t.Any]:
        """The pages after ``token`` at its size, up to the last total, if no row moves.

        Should one move, the total changes and the base drops the pages fetched ahead; the
        frontier then chooses the next page from what was read, as without concurrency.
        """
        total = self._frontier.total
        if total is None:
            return ()
        page, size = token
        step = self._gateway_size or size
        return ((number, size) for number in range(page, -(-total // max(1, step)) + 1))

    def next_token(self) -> tuple[int, int]:
        """Start at or before the frontier, less the last drop (rows may leave again meanwhile)."""
        target = max(0, self._frontier.rows - self._frontier.last_drop)
        if self._gateway_size:
            # Pages are the gateway's own size whatever is asked: the page holding the target.
            return target // self._gateway_size + 1, self._page_size_in_use
        return best_page(target, min(self._page_cap, self.page_size))

    # ---------------------------------------------------------------------- records

    def shape_record(self, row: dict, context: Context | None) -> dict | None:
        """Device label, RFC 3339 times, objects for empty nested values, the window end."""
        self._shape_fields(row)
        tz = self.tz
        for field in VISIT_FIELDS:
            try:
                row[field] = local_to_rfc3339(row.get(field), tz)
            except (TypeError, ValueError):
                self.bad_value(field, row.get(field), f"{field} null")
                row[field] = None
        return row

    @override
    def shape_page(self, records: list[dict], context: Context | None) -> list[dict | None]:
        """``shape_record`` over a page, its times a column at a time: the same records, faster.

        A time ``local_to_rfc3339`` refuses raises here: the record path then reads the page
        row by row (``shape_record`` nulls that value and says so).
        """
        for field in VISIT_FIELDS:
            times = local_column([record.get(field) for record in records], self.tz)
            for record, moment in zip(records, times, strict=True):
                record[field] = moment
        for record in records:
            self._shape_fields(record)
        return records  # type: ignore[return-value]

    @override
    def shape_typed_page(self, records: list[t.Any], context: Context | None) -> list[t.Any]:
        """``shape_page`` for ``NuoyunRow`` structs: the same values (their objects are never ``[]``)."""
        tz, end = self.tz, self._window_end_text
        firsts = local_column([record.first_visit_time for record in records], tz)
        lasts = local_column([record.last_visit_time for record in records], tz)
        for record, first, last in zip(records, firsts, lasts, strict=True):
            record.first_visit_time, record.last_visit_time = first, last
            raw = record.device
            known = _DEVICES.get(raw) if raw is not None else None
            record.device, record.device_label = known if known is not None else device_fields(raw)
            record.update_window_end = end
        return records

    def _shape_fields(self, row: dict) -> None:
        """Everything ``shape_record`` does but the times: device label, objects, window end."""
        raw = row.get("device")
        if raw is not None:
            row["device"], row["device_label"] = device_fields(raw)
        else:
            row["device_label"] = None
        # PHP gateways send an empty object as []: keep the documented object type.
        if row.get("channel_info") == []:
            row["channel_info"] = {}
        if row.get("third_wechat_info") == []:
            row["third_wechat_info"] = {}
        row["update_window_end"] = self._window_end_text


__all__ = ["Frontier", "NuoyunUserDurationsStream", "active_stream_types", "best_page", "device_label"]
