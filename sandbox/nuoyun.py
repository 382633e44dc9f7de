"""Nuoyun (诺云) emulation: ``POST /Api/RoomRounds/getAccountUserDurationList/2.0.0``.

Follows Nuoyun's API page 获取所有用户观看数据: a JSON body with ``page``, ``page_size``,
``sort``, ``update_time_start``/``update_time_end`` (unix seconds) and an optional
``wechat_user_space_id``; answers ``{code, msg, data: {total, list}}`` with code 200 on
success, 400 on failure. Where the document is silent, this emulation decides (and the tap
must cope with any reasonable choice):

* **Credentials.** The document does not say how the gateway authenticates. The sandbox
  accepts its token either as a header (``Authorization: Bearer <token>`` or
  ``access-token: <token>``) or as a body field ``access_token``; the tap passes
  ``nuoyun.headers`` and ``nuoyun.body`` through unchanged. Otherwise: code 400.
* **Update time.** Every row has a hidden update time (not in the answer; it is at or after
  its ``last_visit_time``). The filter is inclusive at both ends,
  ``update_time_start <= t <= update_time_end``; a bound of 0 or absent means unbounded (the
  document's example sends 0 and 0). ``sort`` orders by update time, then room and user,
  so paging is stable.
* **Limits.** ``page_size`` above 500 is capped silently to 500 ("最大值500"). More than
  ``rate_limit`` calls within ``rate_period`` seconds ("10秒1000次") are refused: HTTP 200 with
  code 429 (or HTTP 429 with ``rate_limit_http``). Every call, refused or not, counts, and
  ``max_calls_in_period`` records the most calls seen in any span of ``rate_period``.
* **Moving rows.** ``move_after_page=N, move_count=k``: after the N-th page is served, k rows
  the client has already been served get a new update time (now) and more stay time, as
  when viewers come back mid-sync. They leave any window that ends in the past, and every
  later row moves up. ``churn_per_page=k`` does the same after every page;
  ``churn_growth=k`` moves k rows after page ``churn_from_page``, 2k after the next, and so
  on (viewers come back faster than any client can page). ``moved`` lists the keys moved.
* **Overstated total.** ``total_extra=n`` adds n to every ``data.total`` while serving only
  the rows that exist, as a gateway whose count query disagrees with its list query would.
"""

from __future__ import annotations

import bisect
import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sandbox import bounds as ranges
from sandbox import fakedata
from sandbox.server import Request, Response, Sandbox

UTC = timezone.utc
CHINA = timezone(timedelta(hours=8))
PATH = "/Api/RoomRounds/getAccountUserDurationList/2.0.0"
MAX_PAGE_SIZE = 500
_HIGH = 1 << 62

Key = tuple[int, int]  # (room_id, wechat_user_space_id)


def china_text(moment: datetime) -> str:
    """``2025-09-16 15:06:06``: the document's form, China time."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class NuoyunData:
    """Generated viewer rows of one account; ``rows`` of them, spread over ``rooms`` rooms."""

    token: str = "nuoyun-test-token"
    seed: int = 20261122
    rows: int = 3000
    rooms: int = 12
    period_start: datetime = datetime(2026, 9, 1, tzinfo=UTC)
    period_end: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    rate_limit: int = 1000
    rate_period: float = 10.0
    rate_limit_http: bool = False
    move_after_page: int | None = None
    move_count: int = 0
    churn_per_page: int = 0
    churn_growth: int = 0
    churn_from_page: int = 1
    total_extra: int = 0
    #: Serve pages of this many rows whatever ``page_size`` asks (a gateway paging by its own size).
    serve_page_size: int | None = None
    #: How ``update_time_start``/``update_time_end`` are read: ``[]`` (default), ``[)``, ``(]``, ``()``.
    bounds: str = "[]"
    # ----------------------------------------------------------- state (not init)
    by_key: dict[Key, dict] = field(default_factory=dict, init=False)
    update_time: dict[Key, int] = field(default_factory=dict, init=False)
    moved: list[Key] = field(default_factory=list, init=False)
    pages_served: int = field(default=0, init=False)
    max_calls_in_period: int = field(default=0, init=False)
    rate_limited: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self._rng = random.Random(self.seed + 1)  # for moves, independent of the data
        self._order: list[tuple[int, int, int]] = []  # (update_time, room_id, user id), sorted
        self._encoded: dict[Key, bytes] = {}
        self._by_user: dict[int, list[Key]] = {}
        self._arrivals: deque[float] = deque()
        self.lock = threading.Lock()
        room_ids = [rng.randrange(10**8, 2 * 10**9) for _ in range(self.rooms)]
        channels = [
            {"channel_id": 3128500 + i, "channel_name": fakedata.person_name(rng) + "的门店", "store_id": ""}
            for i in range(8)
        ]
        start = int(self.period_start.timestamp())
        span = int(self.period_end.timestamp()) - start
        user_id = 20_400_000
        while len(self.by_key) < self.rows:
            user_id += rng.randint(1, 3)
            name = fakedata.nickname(rng) if rng.random() > 0.03 else ""
            photo = (
                f"https://nyfs-alpha.oss-cn-hangzhou.aliyuncs.com/Uploads/WxHeadImg2023/{rng.getrandbits(64):016X}.jpg"
                if name
                else ""
            )
            ip = fakedata.ipv4(rng)
            province, city = fakedata.place(rng)
            device = rng.choice(("0", "1", "2", "3", 3, 1, "iOS", "Android", ""))
            third = rng.random() < 0.1
            wechat = (
                {
                    "authorizer_appid": f"wx{rng.getrandbits(64):016x}",
                    "openid": f"o{rng.getrandbits(96):024x}",
                    "unionid": f"u{rng.getrandbits(96):024x}",
                }
                if third
                else {}
            )
            rooms = rng.sample(room_ids, min(len(room_ids), rng.choice((1, 1, 2, 3))))
            for room_id in rooms:
                if len(self.by_key) >= self.rows:
                    break
                first = start + rng.randrange(span)
                stay = rng.choice((0, 60, 600, 3600, 86400 * rng.randint(1, 40)))
                last = min(start + span - 1, first + stay)
                updated = min(start + span - 1, last + rng.randint(0, 900))
                live = rng.choice((0, 0, rng.randint(1, 7200)))
                playback = rng.choice((0, 0, rng.randint(1, 3600)))
                invited = rng.random() < 0.15
                row = {
                    "room_id": room_id,
                    "wechat_user_space_id": user_id,
                    "wechat_user_name": name,
                    "wechat_user_photo": photo,
                    "stay_duration": live + playback + rng.randint(0, 600),
                    "ip": ip,
                    "third_uuid": f"crm-{rng.randrange(10**6)}" if third else "",
                    "third_wechat_info": wechat,
                    "live_duration": live,
                    "playback_duration": playback,
                    "channel_info": dict(rng.choice(channels)) if rng.random() < 0.6 else {},
                    "invited_wechat_user_space_id": user_id - rng.randint(1, 5000) if invited else 0,
                    "invited_name": fakedata.nickname(rng) if invited else "",
                    "first_visit_time": china_text(datetime.fromtimestamp(first, UTC)),
                    "last_visit_time": china_text(datetime.fromtimestamp(last, UTC)),
                    "device": device,
                    "area": f"{province} {city}" if device != "" else "",
                }
                key = (room_id, user_id)
                self.by_key[key] = row
                self.update_time[key] = updated
                self._order.append((updated, room_id, user_id))
                self._by_user.setdefault(user_id, []).append(key)
        self._order.sort()

    # ------------------------------------------------------------------ queries

    @property
    def keys(self) -> set[Key]:
        """Every row's key."""
        return set(self.by_key)

    def user_ids(self) -> list[int]:
        return sorted(self._by_user)

    def query(
        self, start: int, end: int, user_id: int | None, sort: str, page: int, size: int
    ) -> tuple[int, list[tuple[int, int, int]], list[tuple[int, int, int]] | None]:
        """(total, this page's rows, rows served so far if moves are due) for one request.

        Rows with ``start <= update_time <= end`` (0 = unbounded), optionally one user's,
        ordered by update time then room and user, ascending or descending.
        """
        first, last = (page - 1) * size, page * size
        if user_id is not None:
            entries = sorted((self.update_time[k], k[0], k[1]) for k in self._by_user.get(user_id, []))
            entries = [e for e in entries if (not start or e[0] >= start) and (not end or e[0] <= end)]
            if sort == "desc":
                entries.reverse()
            return len(entries), entries[first:last], entries[:last]
        # Account-wide: index arithmetic on the sorted list, no copy of the whole range.
        order = self._order
        lo = bisect.bisect_left(order, (start, -1, -1)) if start else 0
        hi = bisect.bisect_right(order, (end, _HIGH, _HIGH)) if end else len(order)
        total = max(0, hi - lo)
        if sort == "asc":
            rows = order[min(hi, lo + first) : min(hi, lo + last)]
            served = order[lo : min(hi, lo + last)] if self._moves_due() else None
        else:
            rows = order[max(lo, hi - last) : max(lo, hi - first)][::-1]
            served = order[max(lo, hi - last) : hi] if self._moves_due() else None
        return total, rows, served

    def _moves_due(self) -> bool:
        """Whether the page being served now is followed by moves (so the served rows are needed)."""
        upcoming = self.pages_served + 1
        return bool(self.churn_per_page or self.churn_growth_due(upcoming)) or (
            self.move_after_page is not None and upcoming == self.move_after_page
        )

    def churn_growth_due(self, page: int) -> int:
        """Rows ``churn_growth`` moves after the ``page``-th page is served."""
        return self.churn_growth * max(0, page - self.churn_from_page + 1)

    def encoded(self, key: Key) -> bytes:
        data = self._encoded.get(key)
        if data is None:
            data = json.dumps(self.by_key[key], ensure_ascii=False, separators=(",", ":")).encode()
            self._encoded[key] = data
        return data

    # -------------------------------------------------------------------- moves

    def touch(self, key: Key, now: datetime) -> None:
        """A viewer comes back: new update time (now), more stay time, new last visit."""
        old = (self.update_time[key], key[0], key[1])
        index = bisect.bisect_left(self._order, old)
        assert self._order[index] == old
        del self._order[index]
        moment = int(now.timestamp())
        self.update_time[key] = moment
        bisect.insort(self._order, (moment, key[0], key[1]))
        row = self.by_key[key]
        row["stay_duration"] = int(row["stay_duration"]) + 30
        row["last_visit_time"] = china_text(now)
        self._encoded.pop(key, None)
        self.moved.append(key)

    def set_update_time(self, key: Key, stamp: int) -> None:
        """Give a row the update time ``stamp`` (unix seconds), as a test needs it."""
        old = (self.update_time[key], key[0], key[1])
        del self._order[bisect.bisect_left(self._order, old)]
        self.update_time[key] = stamp
        bisect.insort(self._order, (stamp, key[0], key[1]))

    def move_served(self, served: list[tuple[int, int, int]], count: int, now: datetime) -> None:
        """Move ``count`` rows picked among those already served in this query."""
        for entry in self._rng.sample(served, min(count, len(served))):
            self.touch((entry[1], entry[2]), now)

    # ---------------------------------------------------------------- rate limit

    def admit(self) -> bool:
        """Count one arriving call; ``False`` when it is over the limit (it still counts)."""
        now = time.monotonic()
        arrivals = self._arrivals
        arrivals.append(now)
        while arrivals and now - arrivals[0] > self.rate_period:
            arrivals.popleft()
        self.max_calls_in_period = max(self.max_calls_in_period, len(arrivals))
        return len(arrivals) <= self.rate_limit

    def seconds_until_room_for(self, calls: int) -> float:
        """How long until ``calls`` more calls fit in the rate window (``rate_limit`` per ``rate_period``)."""
        keep = max(0, self.rate_limit - calls)  # arrivals that may still be in the window then
        with self.lock:
            arrivals = list(self._arrivals)
        if len(arrivals) <= keep:
            return 0.0
        newest_to_leave = arrivals[-(keep + 1)]  # the newest arrival that must have left the window
        return max(0.0, newest_to_leave + self.rate_period - time.monotonic())


def _fail(message: str, code: int = 400) -> Response:
    return Response(200, {"code": code, "msg": message, "data": None})


def _authorised(request: Request, body: dict, token: str) -> bool:
    if request.bearer_token() == token or request.headers.get("access-token") == token:
        return True
    return body.get("access_token") == token


def _int(body: dict, name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(name)
    return int(value)


def register(sandbox: Sandbox, data: NuoyunData | None = None) -> NuoyunData:
    """Add the Nuoyun route to ``sandbox``; returns the data behind it."""
    data = data or NuoyunData()
    sandbox.providers["nuoyun"] = data

    def user_durations(request: Request) -> Response:
        with data.lock:
            if not data.admit():
                data.rate_limited += 1
                message = f"请求过于频繁，{data.rate_period:g}秒最多{data.rate_limit}次"
                if data.rate_limit_http:
                    return Response(429, {"code": 429, "msg": message, "data": None})
                return _fail(message, 429)
            try:
                body = request.json()
            except ValueError:
                return _fail("请求参数必须是JSON")
            if not isinstance(body, dict):
                return _fail("请求参数必须是JSON对象")
            if not _authorised(request, body, data.token):
                return _fail("鉴权失败：缺少或无效的 access_token")
            try:
                page = _int(body, "page", 1)
                size = _int(body, "page_size", 10)
                start = _int(body, "update_time_start", 0)
                end = _int(body, "update_time_end", 0)
                user = body.get("wechat_user_space_id")
                user_id = int(user) if user not in (None, "", 0) else None
            except (TypeError, ValueError):
                return _fail("参数错误：page、page_size、update_time_start、update_time_end 必须是整数")
            sort = body.get("sort", "desc")
            if page < 1:
                return _fail("参数错误：page 最小值1")
            if size < 1:
                return _fail("参数错误：page_size 最小值为1")
            if sort not in ("asc", "desc"):
                return _fail("参数错误：sort 只能是 asc 或 desc")
            size = data.serve_page_size or min(size, MAX_PAGE_SIZE)
            first, last = ranges.inclusive_seconds(start, end, ranges.check(data.bounds))
            start, end = (first if start else 0), (last if end else 0)
            total, page_entries, served = data.query(start, end, user_id, sort, page, size)
            rows = b",".join(data.encoded((e[1], e[2])) for e in page_entries)
            payload = (
                b'{"data":{"total":%d,"list":[' % (total + data.total_extra)
                + rows
                + b']},"msg":"Success","code":200}'
            )
            data.pages_served += 1
            if served is not None:
                now = sandbox.now()
                if data.move_after_page is not None and data.pages_served == data.move_after_page:
                    data.move_served(served, data.move_count, now)
                if data.churn_per_page:
                    data.move_served(served, data.churn_per_page, now)
                if data.churn_growth_due(data.pages_served):
                    data.move_served(served, data.churn_growth_due(data.pages_served), now)
            return Response(200, payload, rows=len(page_entries))

    sandbox.route("POST", PATH, user_durations)
    return data


def tap_config(data: NuoyunData, base_url: str) -> dict:
    """The tap's ``nuoyun`` settings that read this sandbox data (token as a header)."""
    return {
        "base_url": base_url,
        "headers": {"Authorization": f"Bearer {data.token}"},
        "page_size": 500,
    }
