"""Shangzhibo (上直播) emulation: activity visits and per-user visits.

Follows Shangzhibo's API pages 获取指定活动的用户观看明细 and 获取指定用户的访问明细:
Bearer auth, ``page``/``pageSize``, ``startedAt``/``endedAt`` in UTC ISO-8601 with at most
7 days between them, ``{pager:{page,pageSize,total}, items}``, ``duration`` in minutes,
anonymous viewers with ``userId`` null. Undocumented but realistic: activity visits cap
``pageSize`` silently at ``activity_page_cap`` and echo the size used in ``pager.pageSize``.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sandbox import bounds as ranges
from sandbox import fakedata
from sandbox.server import Request, Response, Sandbox

UTC = timezone.utc
MAX_RANGE = timedelta(days=7)


def iso_z(moment: datetime) -> str:
    """``2020-03-31T08:21:00.000Z``: the documents' form."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class ShangzhiboData:
    """Generated visits; ``activities`` maps activity id to visit count, ``users`` user id to count."""

    token: str = "szb-test-token"
    seed: int = 20261122
    period_start: datetime = datetime(2026, 9, 1, tzinfo=UTC)
    period_end: datetime = datetime(2026, 10, 1, tzinfo=UTC)
    activities: dict[str, int] = field(default_factory=lambda: {"10024069": 500})
    agent_id: int = 105131
    users: dict[int, int] = field(default_factory=lambda: {15460259: 40})
    activity_page_cap: int = 100
    #: False: answer fewer rows than asked without saying so (no ``pager.pageSize``).
    echo_page_size: bool = True
    #: Serve pages of this many rows whatever ``pageSize`` asks (a gateway paging by its own size).
    serve_page_size: int | None = None
    #: How ``startedAt``/``endedAt`` are read: ``[)`` (default), ``[]``, ``(]`` or ``()``.
    bounds: str = "[)"
    #: activity id -> (startedAt, endedAt) the activity list says; default: the span of its visits.
    activity_times: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    visits: dict[str, list[dict]] = field(default_factory=dict, init=False)
    user_visits: dict[int, list[dict]] = field(default_factory=dict, init=False)
    _visit_times: dict[str, tuple] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        for activity_id, count in self.activities.items():
            self.visits[activity_id] = self._activity_visits(rng, activity_id, count)
        catalog = [self._activity(rng, str(10096289 + i)) for i in range(6)]
        for user_id, count in self.users.items():
            self.user_visits[user_id] = self._user_visits(rng, user_id, count, catalog)

    # ---------------------------------------------------------------- generation

    def _moment(self, rng: random.Random) -> datetime:
        span = (self.period_end - self.period_start).total_seconds()
        moment = self.period_start + timedelta(seconds=rng.randrange(int(span)))
        if rng.random() < 0.02:  # some visits land exactly on a day boundary
            moment = moment.replace(hour=0, minute=0, second=0)
        return moment

    def _activity_visits(self, rng: random.Random, activity_id: str, count: int) -> list[dict]:
        viewers = [rng.randint(1_000_000, 9_999_999) for _ in range(max(1, count // 3))]
        rows = []
        taken: set[tuple] = set()  # a viewer cannot start two visits at the same instant
        for _ in range(count):
            anonymous = rng.random() < 0.25
            visit_at = self._moment(rng)
            user_id = None if anonymous else rng.choice(viewers)
            while not anonymous and (user_id, visit_at) in taken:
                visit_at = self._moment(rng)
            taken.add((user_id, visit_at))
            minutes = rng.choice((0, 0, 1, 3, 5, 12, 30, 47, 95))
            last = visit_at + timedelta(minutes=minutes, seconds=rng.randint(0, 59))
            province, city = fakedata.place(rng)
            rows.append(
                {
                    "userId": user_id,
                    "province": province,
                    "city": city,
                    "visitAt": iso_z(visit_at),
                    "lastOnlineAt": iso_z(last),
                    "duration": minutes,
                    "referer": f"https://shangzhibo.tv/watch/{activity_id}",
                    "userAgent": rng.choice(fakedata.USER_AGENTS),
                    "device": rng.choice(fakedata.DEVICES),
                    "nickname": "匿名用户" if anonymous else fakedata.nickname(rng),
                    "avatar": ""
                    if anonymous
                    else f"http://thirdwx.qlogo.cn/mmopen/{rng.randrange(10**8)}/132",
                    "anonymousId": f"{rng.getrandbits(32):08x}" if anonymous else "",
                    "partnerUID": "" if rng.random() < 0.7 else f"crm-{rng.randrange(10**6)}",
                    "invitedBy": rng.choice((None, None, rng.randint(1000, 9999))),
                }
            )
        rows.sort(key=lambda row: row["visitAt"])
        return rows

    def _activity(self, rng: random.Random, activity_id: str) -> dict:
        started = self._moment(rng)
        return {
            "isArchived": False,
            "isPushing": False,
            "id": activity_id,
            "agentId": self.agent_id,
            "subagentId": None,
            "categoryId": 1,
            "name": rng.choice(["新品发布会", "年度峰会", "在线公开课", "直播带货专场", "季度复盘会"]),
            "status": rng.choice(["enabled", "disabled", "forbidden"]),
            "startedAt": iso_z(started),
            "endedAt": iso_z(started + timedelta(hours=rng.randint(1, 5))),
            "pushDomain": "push.shangzhibo.tv",
            "pullDomain": "play.shangzhibo.tv",
            "groupId": -1,
            "createdAt": iso_z(started - timedelta(days=2)),
            "updatedAt": iso_z(started + timedelta(hours=6)),
        }

    def _user_visits(self, rng: random.Random, user_id: int, count: int, catalog: list[dict]) -> list[dict]:
        rows = []
        taken: set[tuple] = set()
        for _ in range(count):
            activity = rng.choice(catalog)
            visit_at = self._moment(rng)
            while (activity["id"], visit_at) in taken:
                visit_at = self._moment(rng)
            taken.add((activity["id"], visit_at))
            minutes = rng.choice((0, 1, 4, 9, 26))
            rows.append(
                {
                    "activity": dict(activity),
                    "visitAt": iso_z(visit_at),
                    "lastOnlineAt": iso_z(visit_at + timedelta(minutes=minutes, seconds=3)),
                    "duration": minutes,
                    "userId": user_id,
                    "activityId": activity["id"],
                }
            )
        rows.sort(key=lambda row: row["visitAt"])
        return rows

    def activity_list(self) -> list[dict]:
        """``GET /api/activity`` items, consistent with the visits (an activity spans its visits)."""
        rows = []
        for activity_id, visits in self.visits.items():
            times = [parse_z(v["visitAt"]) for v in visits if _readable(v.get("visitAt"))]
            default = (min(times), max(times)) if times else (self.period_start, self.period_end)
            started, ended = self.activity_times.get(activity_id, default)
            rows.append(
                {
                    "id": activity_id,
                    "name": f"活动 {activity_id}",
                    "status": "enabled",
                    "isArchived": False,
                    "startedAt": iso_z(started),
                    "endedAt": iso_z(ended),
                    "createdAt": iso_z(started - timedelta(days=2)),
                    "updatedAt": iso_z(ended),
                }
            )
        return rows

    def visits_between(self, activity_id: str, started: datetime, ended: datetime) -> list[dict]:
        """Visits between the bounds, read as ``bounds`` says (bisect: rows are sorted by visitAt).

        Rows whose ``visitAt`` a test made unreadable are served with every range.
        """
        rows = self.visits[activity_id]
        key = len(rows)  # rows are only ever added (tests change values before the first call)
        if self._visit_times.get(activity_id, (None, None))[1] != key:
            readable = [(parse_z(r["visitAt"]), r) for r in rows if _readable(r.get("visitAt"))]
            odd = [r for r in rows if not _readable(r.get("visitAt"))]
            self._visit_times[activity_id] = (([t for t, _ in readable], [r for _, r in readable], odd), key)
        times, ordered, odd = self._visit_times[activity_id][0]
        bounds = ranges.check(self.bounds)
        first = (bisect.bisect_left if bounds[0] == "[" else bisect.bisect_right)(times, started)
        last = (bisect.bisect_right if bounds[1] == "]" else bisect.bisect_left)(times, ended)
        return ordered[first:last] + odd

    def add_visit(self, activity_id: str, visit_at: datetime, user_id: int) -> dict:
        """One more visit to ``activity_id`` by ``user_id``, starting at ``visit_at``."""
        row = dict(self.visits[activity_id][0])
        row.update(userId=user_id, anonymousId="", visitAt=iso_z(visit_at), lastOnlineAt=iso_z(visit_at))
        self.visits[activity_id].append(row)
        self.visits[activity_id].sort(key=lambda r: str(r["visitAt"]))
        return row

    def add_user_visit(self, user_id: int, visit_at: datetime) -> dict:
        """A new visit (for incremental tests): it appears first in ``visitAt desc`` order."""
        template = dict(self.user_visits[user_id][-1])
        template.update(visitAt=iso_z(visit_at), lastOnlineAt=iso_z(visit_at + timedelta(seconds=5)))
        self.user_visits[user_id].append(template)
        self.user_visits[user_id].sort(key=lambda row: row["visitAt"])
        return template


def _readable(value: object) -> bool:
    """Whether a ``visitAt`` is the documented text (tests may plant other values)."""
    if not isinstance(value, str):
        return False
    try:
        parse_z(value)
    except ValueError:
        return False
    return True


def _error(status: int, message: str) -> Response:
    return Response(status, {"message": message})


def _page_args(request: Request, default_size: int, cap: int) -> tuple[int, int] | Response:
    try:
        page = int(request.query.get("page", 1))
        size = int(request.query.get("pageSize", default_size))
    except ValueError:
        return _error(400, "page and pageSize must be integers")
    if page < 1 or size < 1:
        return _error(400, "page and pageSize must be positive")
    return page, min(size, cap)


def register(sandbox: Sandbox, data: ShangzhiboData | None = None) -> ShangzhiboData:
    """Add the Shangzhibo routes to ``sandbox``; returns the data behind them."""
    data = data or ShangzhiboData()
    sandbox.providers["shangzhibo"] = data

    def authorised(request: Request) -> bool:
        return request.bearer_token() == data.token

    def activity_visits(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Unauthorized: invalid access token")
        activity_id = request.params["id"]
        if activity_id not in data.visits:
            return _error(404, f"activity {activity_id} not found")
        args = _page_args(request, 10, data.activity_page_cap)
        if isinstance(args, Response):
            return args
        page, size = args
        size = data.serve_page_size or size
        try:
            ended = parse_z(request.query["endedAt"]) if "endedAt" in request.query else sandbox.now()
            started = (
                parse_z(request.query["startedAt"]) if "startedAt" in request.query else ended - MAX_RANGE
            )
        except ValueError:
            return _error(400, "startedAt/endedAt must be ISO-8601 in GMT, e.g. 2019-06-21T01:52:12.736Z")
        if ended - started > MAX_RANGE:
            return _error(400, "最多支持查询 7 天范围内的数据")
        rows = data.visits_between(activity_id, started, ended)
        items = rows[(page - 1) * size : page * size]
        pager = {"page": page, "pageSize": size, "total": len(rows)}
        if not data.echo_page_size:
            del pager["pageSize"]
        return Response(200, {"pager": pager, "items": items}, rows=len(items))

    def user_visits(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Unauthorized: invalid access token")
        if int(request.params["agent"]) != data.agent_id:
            return _error(403, "agent does not belong to this token")
        user_id = int(request.params["user"])
        if user_id not in data.user_visits:
            return _error(404, f"user {user_id} not found")
        args = _page_args(request, 10, 1000)
        if isinstance(args, Response):
            return args
        page, size = args
        order = request.query.get("order", "visitAt desc")
        if order not in ("visitAt asc", "visitAt desc"):
            return _error(400, "order must be 'visitAt asc' or 'visitAt desc'")
        rows = list(data.user_visits[user_id])
        if "activityId" in request.query:
            rows = [r for r in rows if r["activityId"] == request.query["activityId"]]
        if order == "visitAt desc":
            rows.reverse()
        items = rows[(page - 1) * size : page * size]
        return Response(
            200,
            {"pager": {"page": page, "pageSize": size, "total": len(rows)}, "items": items},
            rows=len(items),
        )

    def activity_list(request: Request) -> Response:
        """``GET /api/activity``: the activities behind the visits, ``{pager, items}``."""
        if not authorised(request):
            return _error(401, "Unauthorized: invalid access token")
        args = _page_args(request, 10, 100)
        if isinstance(args, Response):
            return args
        page, size = args
        rows = data.activity_list()
        items = rows[(page - 1) * size : page * size]
        return Response(
            200,
            {"pager": {"page": page, "pageSize": size, "total": len(rows)}, "items": items},
            rows=len(items),
        )

    sandbox.route("GET", "/api/activity", activity_list)
    sandbox.route("GET", "/api/activity/{id}/stats/user-visits", activity_visits)
    sandbox.route("GET", "/api/v3/agent/{agent}/user/{user}/stats/visits", user_visits)
    return data


def tap_config(data: ShangzhiboData, base_url: str) -> dict:
    """The tap's ``shangzhibo`` settings that read this sandbox data."""
    return {
        "access_token": data.token,
        "base_url": base_url,
        "activity_ids": list(data.activities),
        "agent_id": data.agent_id,
        "user_ids": list(data.users),
    }
