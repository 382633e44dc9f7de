"""Talk-cloud (拓课云) emulation: ``POST /WebAPI/getLiveLogininfo``.

Follows Talk-cloud's WebAPI page 大班课房间观看用户进出记录列表 and the issue's code table:

* form fields ``key``, ``serial`` or ``thirdroomid``, ``starttime``/``endtime`` (unix seconds),
  ``page``; the documented defaults when times are left out (24 hours; one month after a
  start or before an end);
* ``result`` codes: missing key 4001, wrong key 4109, no or unknown room 4007, malformed or
  reversed times 4004, a range longer than one calendar month (Asia/Shanghai) 4005, a start
  older than 365 days 5004, nothing matched 4105;
* rows match when ``starttime <= entertimestamp <= endtime`` (both ends inclusive, as a SQL
  ``BETWEEN`` would be: the document does not say, and this is the reading that tests a
  client's boundary handling);
* 200 rows a page; ``uptablelist`` (all on-stage users of the range, unpaged) on page 1 only;
* untidy JSON like the document's example, when ``untidy``: a trailing comma in every row,
  a missing comma between ``uptablelist`` and ``logininfo``, and ``startimestamp`` where the
  table says ``starttimestamp`` (in ``uptablelist`` and in every 7th ``logininfo`` row).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sandbox import bounds as ranges
from sandbox import fakedata
from sandbox.server import Request, Response, Sandbox

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
PATH = "/WebAPI/getLiveLogininfo"
PAGE_SIZE = 200
YEAR = timedelta(days=365)
#: The shared demo and test data (``register`` without data: ``python -m sandbox``, the demo, the
#: SDK suite, the Meltano tests): September 2026, the month the other providers' demo data and the
#: tests' fixed windows cover. Generated "the last 60 days" instead, it left those windows on
#: 2026-11-30. Talk-cloud answers only for the last 365 days, so this month stays in reach until
#: late August 2027; ``test_talkcloud``'s ``test_demo_month_is_within_talkcloud_reach`` says when not.
DEMO_PERIOD = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 30, 12, tzinfo=UTC))


def add_month(moment: datetime, months: int = 1) -> datetime:
    """The same wall time ``months`` calendar months later in China time (clamped to the month's end)."""
    local = moment.astimezone(SHANGHAI)
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    day = local.day
    while True:
        try:
            return local.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def _order(row: dict) -> tuple:
    """Rows by entry second, then user (rows a test made odd come first)."""
    stamp = row.get("entertimestamp")
    return (stamp if isinstance(stamp, int) else -1, str(row.get("userid")))


def local_text(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class TalkcloudData:
    """Generated room entries; ``rooms`` maps serial to entry count over the period."""

    key: str = "tk-enterprise-key-5b2e91"
    seed: int = 20200617
    period_start: datetime | None = None  # default: 60 days before now
    period_end: datetime | None = None  # default: 3 hours before now
    rooms: dict[str, int] = field(default_factory=lambda: {"864152130": 420, "731906254": 150})
    #: thirdroomid -> serial (custom room numbers set when the room was created)
    thirdroomids: dict[str, str] = field(default_factory=lambda: {"autumn-course-07": "731906254"})
    untidy: bool = True
    #: How ``starttime``/``endtime`` are read: ``[]`` (default, like SQL BETWEEN), ``[)``, ``(]``, ``()``.
    bounds: str = "[]"
    #: serial -> (starttime, endtime) unix seconds the room list says; default: the span of its entries.
    room_times: dict[str, tuple[int, int]] = field(default_factory=dict)
    entries: dict[str, list[dict]] = field(default_factory=dict, init=False)
    stage: dict[str, list[dict]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.period_start = self.period_start or now - timedelta(days=60)
        self.period_end = self.period_end or now - timedelta(hours=3)
        rng = random.Random(self.seed)
        for serial, count in self.rooms.items():
            self.entries[serial] = []
            self.stage[serial] = []
            self._generate(rng, serial, count, self.period_start, self.period_end)

    # ---------------------------------------------------------------- generation

    def _generate(self, rng: random.Random, serial: str, count: int, start: datetime, end: datetime) -> None:
        users = [str(rng.randint(10**11, 10**12 - 1)) for _ in range(max(1, count // 3))]
        span = int((end - start).total_seconds())
        for _ in range(count):
            entered = int(start.timestamp()) + rng.randrange(span)
            self.add_entry(serial, entered, rng=rng, userid=rng.choice(users))

    def add_entry(
        self,
        serial: str,
        entered: int | datetime,
        *,
        rng: random.Random | None = None,
        userid: str | None = None,
        on_stage: bool | None = None,
    ) -> dict:
        """One entry into ``serial`` at ``entered`` (unix seconds or a datetime)."""
        rng = rng or random.Random(f"{serial}-{entered}-{len(self.entries.get(serial, []))}")
        stamp = int(entered.timestamp()) if isinstance(entered, datetime) else int(entered)
        stay = rng.choice((14, 20, 65, 300, 1200, 2700, 5400))
        out = stamp + stay
        watch_from = stamp + rng.randint(0, min(30, stay))
        role = rng.choices(("0", "1", "2", "3", "4"), weights=(2, 3, 50, 40, 1))[0]
        row = {
            "serial": serial,
            "userid": userid or str(rng.randint(10**11, 10**12 - 1)),
            "username": fakedata.person_name(rng) if role != "3" else fakedata.nickname(rng),
            "entertime": local_text(stamp),
            "outtime": local_text(out),
            "duration": str(stay),
            "terminal": rng.choice("012345"),
            "terminal_details": rng.choice("12345"),
            "starttime": local_text(watch_from),
            "endtime": local_text(out),
            "paytime": str(out - watch_from),
            "videotype": rng.choice(("320*240", "640*480", "1280*720")),
            "userroleid": role,
            "entertimestamp": stamp,
            "outtimestamp": out,
            "starttimestamp": watch_from,
            "endtimestamp": out,
        }
        self.entries.setdefault(serial, []).append(row)
        self.entries[serial].sort(key=_order)
        if on_stage is None:
            on_stage = role in ("0", "1") or (role == "2" and rng.random() < 0.1)
        if on_stage:
            up = rng.randint(stamp, out)
            down = rng.randint(up, out)
            self.stage.setdefault(serial, []).append(
                dict(
                    row,
                    starttime=local_text(up),
                    endtime=local_text(down),
                    paytime=str(down - up),
                    starttimestamp=up,
                    endtimestamp=down,
                )
            )
            self.stage[serial].sort(key=_order)
        return row

    def add_room(self, serial: str, count: int, start: datetime, end: datetime, seed: int = 7) -> None:
        """A room with ``count`` entries spread over ``[start, end)``."""
        self.entries.setdefault(serial, [])
        self.stage.setdefault(serial, [])
        self._generate(random.Random(seed), serial, count, start, end)

    def matching(self, serial: str, start: int, end: int) -> list[dict]:
        """Entries the endpoint returns for the range, read as ``bounds`` says (default ``[start, end]``).

        A row whose ``entertimestamp`` a test made unreadable is returned with every range.
        """
        first, last = ranges.inclusive_seconds(start, end, ranges.check(self.bounds))
        return [r for r in self.entries.get(serial, []) if _selected(r, first, last)]

    def matching_stage(self, serial: str, start: int, end: int) -> list[dict]:
        first, last = ranges.inclusive_seconds(start, end, ranges.check(self.bounds))
        return [r for r in self.stage.get(serial, []) if _selected(r, first, last)]

    def room_list(self) -> list[dict]:
        """``getroomlist`` rows, consistent with the entries: a room spans its entries by default."""
        third_of = {serial: third for third, serial in self.thirdroomids.items()}
        rooms = []
        for serial, rows in self.entries.items():
            stamps = [r["entertimestamp"] for r in rows if isinstance(r.get("entertimestamp"), int)]
            outs = [r["outtimestamp"] for r in rows if isinstance(r.get("outtimestamp"), int)]
            default = (min(stamps), max(outs)) if stamps and outs else (0, 0)
            start, end = self.room_times.get(serial, default)
            rooms.append(
                {
                    "serial": serial,
                    "roomname": f"课堂 {serial}",
                    "starttime": start,
                    "endtime": end,
                    "thirdroomid": third_of.get(serial, ""),
                }
            )
        return rooms


def _selected(row: dict, first: int, last: int) -> bool:
    stamp = row.get("entertimestamp")
    if not isinstance(stamp, int):
        return True
    return first <= stamp <= last


# ------------------------------------------------------------------------ encoding


def _encode_untidy(body: dict) -> bytes:
    """Like the document's example: trailing commas in rows, a missing comma, startimestamp."""
    parts = []
    for name, value in body.items():
        if isinstance(value, list):
            rows = []
            for index, row in enumerate(value):
                row = dict(row)
                if name == "uptablelist" or index % 7 == 3:
                    row = {("startimestamp" if k == "starttimestamp" else k): v for k, v in row.items()}
                rows.append(json.dumps(row, ensure_ascii=False)[:-1] + ",}")
            parts.append(f'"{name}":[' + ",".join(rows) + "]")
        else:
            parts.append(f'"{name}":' + json.dumps(value, ensure_ascii=False))
    text = ""
    for index, part in enumerate(parts):
        if index:
            # the document's example omits the comma after the uptablelist array
            text += "\n" if parts[index - 1].startswith('"uptablelist"') else ",\n"
        text += part
    return ("{\n" + text + "\n}").encode("utf-8")


def _result(code: int, message: str) -> Response:
    return Response(200, {"result": code, "msg": message}, rows=0)


def register(sandbox: Sandbox, data: TalkcloudData | None = None) -> TalkcloudData:
    """Add the Talk-cloud route to ``sandbox``; returns the data behind it."""
    data = data or TalkcloudData(period_start=DEMO_PERIOD[0], period_end=DEMO_PERIOD[1])
    sandbox.providers["talkcloud"] = data

    def login_info(request: Request) -> Response:
        form = request.form()
        key = form.get("key", "")
        if not key:
            return _result(4001, "企业key不能为空")
        if key != data.key:
            return _result(4109, "企业key错误")
        serial = form.get("serial") or data.thirdroomids.get(form.get("thirdroomid", ""), "")
        if not serial or serial not in data.entries:
            return _result(4007, "房间不存在、已删除或已过期")
        now = int(sandbox.now().timestamp())
        try:
            start = int(form["starttime"]) if form.get("starttime") else None
            end = int(form["endtime"]) if form.get("endtime") else None
            page = int(form.get("page") or 1)
        except ValueError:
            return _result(4004, "时间参数格式错误")
        # "开始时间和结束时间均不传则默认查询24小时内的数据" and the one-sided defaults
        if start is None and end is None:
            start, end = now - 86400, now
        elif end is None:
            end = int(add_month(datetime.fromtimestamp(start, UTC)).timestamp())
        elif start is None:
            start = int(add_month(datetime.fromtimestamp(end, UTC), -1).timestamp())
        if end < start or page < 1:
            return _result(4004, "开始时间不能大于结束时间")
        if end > add_month(datetime.fromtimestamp(start, UTC)).timestamp():
            return _result(4005, "时间区间最大限制1个月")
        if start < now - YEAR.total_seconds():
            return _result(5004, "只支持查询1年内的数据")
        rows = data.matching(serial, start, end)
        page_rows = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        if not page_rows:
            return _result(4105, "暂无数据")
        body: dict = {"result": 0, "count": len(page_rows)}
        if page == 1:
            body["uptablelist"] = data.matching_stage(serial, start, end)
        body["logininfo"] = page_rows
        if data.untidy:
            return Response(200, _encode_untidy(body), rows=len(page_rows))
        return Response(200, body, rows=len(page_rows))

    def room_list(request: Request) -> Response:
        """``getroomlist`` (all rooms) and ``getroombytime`` (rooms overlapping starttime..endtime)."""
        form = request.form()
        if not form.get("key"):
            return _result(4001, "企业key不能为空")
        if form["key"] != data.key:
            return _result(4109, "企业key错误")
        rooms = data.room_list()
        if request.path.endswith("getroombytime"):
            try:
                start, end = int(form["starttime"]), int(form["endtime"])
            except (KeyError, ValueError):
                return _result(4004, "时间参数格式错误")
            rooms = [r for r in rooms if r["starttime"] <= end and r["endtime"] >= start]
        if not rooms:
            return _result(4105, "暂无数据")
        return Response(200, {"result": 0, "roomlist": rooms}, rows=len(rooms))

    sandbox.route("POST", PATH, login_info)
    sandbox.route("POST", "/WebAPI/getroomlist", room_list)
    sandbox.route("POST", "/WebAPI/getroombytime", room_list)
    return data


def tap_config(data: TalkcloudData, base_url: str) -> dict:
    """The tap's ``talkcloud`` settings that read this sandbox data."""
    by_third = set(data.thirdroomids.values())
    return {
        "key": data.key,
        "base_url": base_url,
        "serials": [serial for serial in data.entries if serial not in by_third],
        "thirdroomids": list(data.thirdroomids),
    }
