"""Mudu (目睹) emulation: a channel's viewer records, 10 calls a day per access token.

Follows Mudu's API page 获取观众观看流水 (v2): ``POST /v2/activities/{频道id}/userRecords``
with ``Authorization:Bearer {ACCESS TOKEN}`` and a JSON body ``start_time``/``end_time``
(``YYYY-MM-DD HH:MM:SS``, China time), ``perPage`` (default 20, max 100), ``p`` (default 1),
``filter_watch_time`` (default 1); the answer is a bare JSON array; "本接口每日调用上限为10次，
次日0点重置".

The routes sit under ``/api`` (``/api/v2/activities/...``), as the tap's default base URL
``https://mudu.tv/api`` does. Choices where the document is silent (the tap must cope with
each of them; the README's provider notes list them too):

* **Quota**: ``daily_quota`` calls per access token per sandbox-local (China) day, reset at
  00:00 of the sandbox clock (``Sandbox.advance_clock(days=1)`` moves to the next day). Every
  answered call with a valid token counts, errors included. Once spent, the answer is HTTP 429
  ``{"code": 429, "msg": "今日接口调用次数已达上限（10次），次日0点重置"}`` with ``Retry-After``
  set to the seconds until midnight; those refused calls do not count.
* **Wrong token**: HTTP 401 ``{"code": 401, "msg": "ACCESS TOKEN 无效"}``, checked before the
  quota and counted against no token's quota (there is no account to charge).
* **Unknown channel**: HTTP 404 ``{"code": 404, "msg": "频道不存在"}`` (counts as a call).
* **perPage** above 100 is capped silently at 100 (the answer is just 100 rows); below 1, or
  a ``p`` below 1, or an unreadable time is HTTP 400.
* **Range**: ``start_time <= login <= end_time``, both bounds inclusive (like SQL BETWEEN);
  the login time is kept to the second internally, while ``first_login_time`` shows minutes.
  Without ``start_time``/``end_time`` that side is open.
* **Order**: by ``record_id`` ascending (ids are given in login order), so paging is stable.
* ``filter_watch_time=1`` leaves out viewers whose ``watch_time`` is ``00:00:00``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sandbox import bounds as ranges
from sandbox import fakedata
from sandbox.server import Request, Response, Sandbox

CHINA = ZoneInfo("Asia/Shanghai")
PATH = "/api/v2/activities/{channel_id}/userRecords"
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
DEVICES = ("移动端", "电脑端")  # the document's own values
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


#: "GET /v1/activities": 30 channels a page.
CHANNELS_PER_PAGE = 30


def hms(seconds: int) -> str:
    """``HH:MM:SS`` (hours may exceed 24)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass
class MuduData:
    """Generated viewer records per channel.

    ``channels`` maps a channel id to the number of viewers who watched; ``idle_share`` adds
    that share again as viewers who opened the page but did not watch (``watch_time``
    ``00:00:00``), which ``filter_watch_time=1`` leaves out. Logins are spread over
    ``[event_start, event_end)`` (China time).
    """

    token: str = "mudu-test-token"
    seed: int = 20180315
    event_start: datetime = datetime(2026, 9, 20, 19, 0, tzinfo=CHINA)
    event_end: datetime = datetime(2026, 9, 20, 22, 0, tzinfo=CHINA)
    channels: dict[str, int] = field(default_factory=lambda: {"263218": 230})
    idle_share: float = 0.1
    daily_quota: int = 10
    first_record_id: int = 5_200_000
    #: How ``start_time``/``end_time`` are read: ``[]`` (default, like SQL BETWEEN), ``[)``, ``(]``, ``()``.
    bounds: str = "[]"
    #: Serve pages of this many rows whatever ``perPage`` asks (a gateway paging by its own size).
    serve_page_size: int | None = None
    #: How ``first_login_time`` shows the login's minute: ``cut`` (default) or ``round``.
    minute: str = "cut"
    records: dict[str, list[dict]] = field(default_factory=dict, init=False)
    usage: dict[tuple[str, date], int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        next_id = self.first_record_id
        for channel_id, watchers in self.channels.items():
            idle = round(watchers * self.idle_share)
            rows = [self._record(rng, watched=True) for _ in range(watchers)]
            rows += [self._record(rng, watched=False) for _ in range(idle)]
            rows.sort(key=lambda row: row["_login"])
            for row in rows:
                row["record_id"] = next_id
                next_id += 1
            self.records[channel_id] = rows

    def _record(self, rng: random.Random, *, watched: bool) -> dict:
        span = int((self.event_end - self.event_start).total_seconds())
        login = self.event_start + timedelta(seconds=rng.randrange(span))
        online = rng.choice((45, 120, 300, 610, 1500, 2700, 5400, 9000)) + rng.randrange(60)
        watch = min(online, max(1, int(online * rng.uniform(0.4, 1.0)))) if watched else 0
        province, city = fakedata.place(rng)
        return {
            "_login": login,
            "record_id": 0,
            "assign_id": f"crm-{rng.randrange(10**6):06d}" if rng.random() < 0.3 else "",
            "user_id": str(rng.randint(10_000_000, 99_999_999)),
            "nick": fakedata.nickname(rng),
            "addr": province + city if province != city else city,
            "online_time": hms(online),
            "watch_time": hms(watch),
            "phone": fakedata.phone(rng) if rng.random() < 0.6 else "",
            "first_login_time": self.shown_minute(login),
            "last_online_time": (login + timedelta(seconds=online)).strftime("%Y-%m-%d %H:%M"),
            "device": rng.choice(DEVICES),
            "browser": rng.choice(fakedata.BROWSERS),
            "origin": rng.choice(fakedata.ORIGINS),
        }

    def shown_minute(self, login: datetime) -> str:
        """``2018-03-15 15:33``: the login's minute, cut (default) or rounded as ``minute`` says."""
        shown = login + timedelta(seconds=30) if self.minute == "round" else login
        return shown.strftime("%Y-%m-%d %H:%M")

    def add_login(self, channel_id: str, login: datetime, seed: int = 1) -> dict:
        """One more watcher of ``channel_id`` who logged in at ``login`` (a new, highest record_id)."""
        row = self._record(random.Random(seed), watched=True)
        row["_login"] = login
        row["first_login_time"] = self.shown_minute(login)
        row["record_id"] = max(r["record_id"] for rows in self.records.values() for r in rows) + 1
        self.records[channel_id].append(row)
        return row

    # ---------------------------------------------------------------- queries

    def matching(
        self,
        channel_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        filter_watch_time: bool = True,
    ) -> list[dict]:
        """Records of a channel as the endpoint selects them (without the internal login time)."""
        rows = []
        bounds = ranges.check(self.bounds)
        for row in self.records[channel_id]:
            login = row["_login"]
            if start is not None and (login < start if bounds[0] == "[" else login <= start):
                continue
            if end is not None and (login > end if bounds[1] == "]" else login >= end):
                continue
            if filter_watch_time and row["watch_time"] == "00:00:00":
                continue
            rows.append({key: value for key, value in row.items() if not key.startswith("_")})
        return rows

    def channel_list(self) -> list[dict]:
        """``/v1/activities`` rows, one per channel with records (created a day before its event)."""
        created = (self.event_start - timedelta(days=1)).strftime(TIME_FORMAT)
        return [
            {"id": int(c) if c.isdigit() else c, "name": f"频道 {c}", "create_at": created, "live_status": 0}
            for c in self.records
        ]

    def calls_counted(self, token: str, day: date) -> int:
        """Calls charged to ``token`` on the China-time ``day``."""
        return self.usage.get((token, day), 0)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"code": status, "msg": message}, headers or {})


def _local_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(value)
    return datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=CHINA)


def register(sandbox: Sandbox, data: MuduData | None = None) -> MuduData:
    """Add the Mudu route to ``sandbox``; returns the data behind it."""
    data = data or MuduData()
    sandbox.providers["mudu"] = data

    def charge(request: Request) -> Response | None:
        """Check the token, then spend one call of the day's quota (or answer the limit)."""
        if request.bearer_token() != data.token:
            return _error(401, "ACCESS TOKEN 无效")
        now = sandbox.now().astimezone(CHINA)
        key = (data.token, now.date())
        if data.usage.get(key, 0) >= data.daily_quota:
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            wait = int((midnight - now).total_seconds()) + 1
            return _error(
                429,
                f"今日接口调用次数已达上限（{data.daily_quota}次），次日0点重置",
                {"Retry-After": str(wait)},
            )
        data.usage[key] = data.usage.get(key, 0) + 1
        return None

    def channel_list(request: Request) -> Response:
        """``GET /v1/activities``: the channels behind the records, 30 a page, ``{"activities": [...]}``."""
        refused = charge(request)
        if refused is not None:
            return refused
        try:
            page = int(request.query.get("p", 1))
        except ValueError:
            return _error(400, "p 应为整数")
        rows = data.channel_list()
        items = rows[(page - 1) * CHANNELS_PER_PAGE : page * CHANNELS_PER_PAGE]
        return Response(200, {"activities": items}, rows=len(items))

    def user_records(request: Request) -> Response:
        refused = charge(request)
        if refused is not None:
            return refused

        channel_id = request.params["channel_id"]
        if channel_id not in data.records:
            return _error(404, "频道不存在")
        try:
            body = request.json()
        except ValueError:
            return _error(400, "请求体不是合法的JSON")
        if not isinstance(body, dict):
            return _error(400, "请求体必须是JSON对象")
        try:
            start = _local_time(body["start_time"]) if body.get("start_time") else None
            end = _local_time(body["end_time"]) if body.get("end_time") else None
        except ValueError:
            return _error(400, "start_time/end_time 格式应为 YYYY-MM-DD HH:MM:SS")
        try:
            per_page = int(body.get("perPage", DEFAULT_PER_PAGE))
            page = int(body.get("p", 1))
            filter_watch = int(body.get("filter_watch_time", 1))
        except (TypeError, ValueError):
            return _error(400, "perPage、p、filter_watch_time 应为整数")
        if per_page < 1 or page < 1 or filter_watch not in (0, 1):
            return _error(400, "perPage、p 应大于0，filter_watch_time 应为1或0")
        per_page = data.serve_page_size or min(per_page, MAX_PER_PAGE)
        rows = data.matching(channel_id, start, end, filter_watch_time=bool(filter_watch))
        return Response(200, rows[(page - 1) * per_page : page * per_page])

    sandbox.route("POST", PATH, user_records)
    sandbox.route("GET", "/api/v1/activities", channel_list)
    return data


def tap_config(data: MuduData, base_url: str) -> dict:
    """The tap's ``mudu`` settings that read this sandbox data."""
    return {
        "access_token": data.token,
        "base_url": f"{base_url}/api",
        "channel_ids": list(data.channels),
        "page_size": MAX_PER_PAGE,
        "daily_call_limit": data.daily_quota,
    }
