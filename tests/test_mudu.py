"""Mudu (目睹) user records: the real tap CLI against the sandbox's Mudu endpoint.

The contract is Mudu's API page 获取观众观看流水 (v2) and issue 3: at most 10 calls a day
per access token ("本接口每日调用上限为10次，次日0点重置"), 100 rows a call, a bare JSON array
whose short page is the last one.

How a test makes "the next day" (``next_day``): the sandbox clock moves one day forward, which
resets the sandbox's quota, and the call ledger in the saved state is dated one day earlier,
which is what a real day passing does to the tap (its ledger entry is then not "today" any
more). The tap itself keeps reading the real clock; nothing in it knows about tests. A run that
straddles China midnight (16:00 UTC) would see a real new day; each test takes seconds.
"""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import discover, run_tap
from sandbox import Fault, Response, Sandbox
from sandbox import mudu as mudu_sandbox
from sandbox import shangzhibo as shangzhibo_sandbox
from sandbox.bounds import READINGS
from tap_livestream_viewers import call_ledger

STREAM = "mudu_user_records"
FIXTURE = Path(__file__).parent / "fixtures" / "mudu_example.json"
# Every field of the document's 返回参数说明 table.
DOCUMENTED_FIELDS = {
    "record_id",
    "user_id",
    "assign_id",
    "nick",
    "addr",
    "online_time",
    "watch_time",
    "phone",
    "first_login_time",
    "last_online_time",
    "device",
    "browser",
    "origin",
}
EVENT_DAY = {"start_date": "2026-09-20T00:00:00+08:00", "end_date": "2026-09-21T00:00:00+08:00"}


def config_for(box: Sandbox, data: mudu_sandbox.MuduData, **mudu: object) -> dict:
    return {
        **EVENT_DAY,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "mudu": {**mudu_sandbox.tap_config(data, box.base_url), **mudu},
    }


def mudu_calls(box: Sandbox) -> list:
    return box.calls_to("/userRecords")


def next_day(box: Sandbox, state: dict) -> dict:
    """A day passes: the provider's quota resets, and the tap's ledger entries become yesterday's."""
    box.advance_clock(days=1)
    aged = copy.deepcopy(state)
    for entry in aged["bookmarks"][STREAM]["call_ledger"].values():
        entry["day"] = (date.fromisoformat(entry["day"]) - timedelta(days=1)).isoformat()
    local = call_ledger.default_path()  # the machine-local copy of the count ages the same way
    if local.exists():
        entries = json.loads(local.read_text())
        for entry in entries.values():
            entry["day"] = (date.fromisoformat(entry["day"]) - timedelta(days=1)).isoformat()
        local.write_text(json.dumps(entries))
    return aged


def partition(state: dict, channel_id: str) -> dict:
    for item in state["bookmarks"][STREAM]["partitions"]:
        if item["context"] == {"channel_id": channel_id}:
            return item
    raise AssertionError(f"no state for channel {channel_id}")


def budget_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line and "daily call budget" in line]


# --------------------------------------------------------------------------- shaping


def test_document_example_parses_and_is_shaped(tmp_path: Path, box: Sandbox) -> None:
    """The document's own example answer, served verbatim, becomes two well-shaped records."""
    box.route(
        "POST", "/api/v2/activities/{channel_id}/userRecords", lambda _r: Response(200, FIXTURE.read_bytes())
    )
    config = {  # the day of the example's records: rows outside the asked window are not kept
        "start_date": "2018-03-15T00:00:00+08:00",
        "end_date": "2018-03-16T00:00:00+08:00",
        "mudu": {"access_token": "doc-token-1", "base_url": f"{box.base_url}/api", "channel_ids": ["4321"]},
    }
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    records = run.records(STREAM)
    example = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert len(records) == 2
    for record, sent in zip(records, example, strict=True):
        assert set(record) >= DOCUMENTED_FIELDS
        for name in DOCUMENTED_FIELDS - {"first_login_time", "last_online_time"}:
            assert record[name] == sent[name], name
        assert record["channel_id"] == "4321"
    first, second = records
    # "first_login_time": "2018-03-15 15:33" is China time, minute precision.
    assert first["first_login_time"] == "2018-03-15T15:33:00+08:00"
    assert first["last_online_time"] == "2018-03-15T15:34:00+08:00"
    assert (first["online_seconds"], first["watch_seconds"]) == (120, 60)  # 00:02:00, 00:01:00
    assert second["first_login_time"] == "2018-03-15T13:31:00+08:00"
    assert (second["online_seconds"], second["watch_seconds"]) == (360, 300)  # 00:06:00, 00:05:00
    # Two rows is a page shorter than perPage: the last one, so one call only.
    calls = mudu_calls(box)
    assert len(calls) == 1
    assert calls[0].method == "POST"
    assert calls[0].json() == {
        "start_time": "2018-03-14 23:59:00",  # a minute early: records show only the minute
        "end_time": "2018-03-16 00:00:00",
        "perPage": 100,
        "p": 1,
        "filter_watch_time": 1,
    }


def test_schema_has_every_documented_field_and_date_times(tmp_path: Path, box: Sandbox) -> None:
    data = mudu_sandbox.register(box)
    catalog = discover(tmp_path, config_for(box, data))
    (entry,) = [s for s in catalog["streams"] if s["tap_stream_id"] == STREAM]
    properties = entry["schema"]["properties"]
    assert DOCUMENTED_FIELDS | {"channel_id", "online_seconds", "watch_seconds"} == set(properties)
    for name in ("first_login_time", "last_online_time"):
        assert properties[name]["format"] == "date-time"
    assert entry["key_properties"] == ["channel_id", "record_id"]


# ------------------------------------------------------------------------ call budget


def test_2350_records_take_three_days_of_ten_calls(tmp_path: Path, box: Sandbox) -> None:
    """Issue 3's done-when: 10 + 10 + 4 calls, 2,350 distinct records, then nothing to spend."""
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"880001": 2350}))
    config = config_for(box, data)
    expected = {row["record_id"] for row in data.matching("880001")}
    assert len(expected) == 2350  # the sandbox's own selection, filter_watch_time=1
    seen: list[int] = []

    # Day 1: ten full pages, then a clean stop at page 11.
    day1 = run_tap(tmp_path, config)
    assert day1.returncode == 0, day1.stderr
    assert len(mudu_calls(box)) == 10
    assert len(day1.records(STREAM)) == 1000
    seen += [r["record_id"] for r in day1.records(STREAM)]
    progress = partition(day1.last_state, "880001")["progress"]
    assert progress["next_page"] == 11
    assert progress["window_end"] == "2026-09-21T00:00:00+08:00"
    (warning,) = budget_warnings(day1.stderr)
    assert "10 of 10 calls" in warning and "page 11" in warning
    assert "resets at" in warning and "T00:00:00+08:00" in warning
    # A state is emitted after every page, so a stop loses nothing.
    assert sum(1 for s in day1.states if STREAM in s.get("bookmarks", {})) >= 10

    # Day 1 again: the budget is shared across runs, so no call at all.
    again = run_tap(tmp_path, config, state=day1.last_state)
    assert again.returncode == 0, again.stderr
    assert len(mudu_calls(box)) == 10
    assert again.records(STREAM) == []
    assert partition(again.last_state, "880001")["progress"]["next_page"] == 11

    # Day 2: the same window from page 11 (never from page 1), ten more pages.
    box.reset_calls()
    day2 = run_tap(tmp_path, config, state=next_day(box, again.last_state))
    assert day2.returncode == 0, day2.stderr
    calls = mudu_calls(box)
    assert [c.json()["p"] for c in calls] == list(range(11, 21))
    assert {(c.json()["start_time"], c.json()["end_time"]) for c in calls} == {
        ("2026-09-19 23:59:00", "2026-09-21 00:00:00")  # asked from a minute early
    }
    assert len(day2.records(STREAM)) == 1000
    seen += [r["record_id"] for r in day2.records(STREAM)]

    # Day 3: three full pages and one of 50; the window is done and the bookmark moves.
    box.reset_calls()
    day3 = run_tap(tmp_path, config, state=next_day(box, day2.last_state))
    assert day3.returncode == 0, day3.stderr
    assert [c.json()["p"] for c in mudu_calls(box)] == [21, 22, 23, 24]
    assert len(day3.records(STREAM)) == 350
    seen += [r["record_id"] for r in day3.records(STREAM)]
    final = partition(day3.last_state, "880001")
    assert "progress" not in final
    assert final["replication_key_value"] == "2026-09-21T00:00:00+08:00"
    assert budget_warnings(day3.stderr) == []

    # Day 3 again: nothing left in the range, so no call.
    box.reset_calls()
    rerun = run_tap(tmp_path, config, state=day3.last_state)
    assert rerun.returncode == 0, rerun.stderr
    assert mudu_calls(box) == []
    assert rerun.records(STREAM) == []

    assert len(seen) == 2350 and len(set(seen)) == 2350
    assert set(seen) == expected
    # The provider counted the same 24 calls: 10, 10 and 4 on its three days.
    used = sorted(data.usage.values())
    assert used == [4, 10, 10]
    for run in (day1, again, day2, day3, rerun):
        assert data.token not in run.stderr
        assert data.token not in json.dumps(run.messages, ensure_ascii=False)


def test_provider_limit_answer_stops_cleanly_and_next_day_resumes(tmp_path: Path, box: Sandbox) -> None:
    """The provider refuses before the tap's own count is spent (e.g. the token is used elsewhere)."""
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"880002": 450}, daily_quota=3))
    config = config_for(box, data, daily_call_limit=10)

    day1 = run_tap(tmp_path, config)
    assert day1.returncode == 0, day1.stderr
    calls = mudu_calls(box)
    assert [c.status for c in calls] == [200, 200, 200, 429]  # the refusal is not retried
    assert len(day1.records(STREAM)) == 300
    assert partition(day1.last_state, "880002")["progress"]["next_page"] == 4
    (warning,) = budget_warnings(day1.stderr)
    assert "Mudu answered HTTP 429" in warning and "page 4" in warning and "resets at" in warning

    # The tap believes the provider for the rest of the day: a second run makes no call.
    again = run_tap(tmp_path, config, state=day1.last_state)
    assert again.returncode == 0, again.stderr
    assert len(mudu_calls(box)) == 4

    box.reset_calls()
    day2 = run_tap(tmp_path, config, state=next_day(box, again.last_state))
    assert day2.returncode == 0, day2.stderr
    assert [c.json()["p"] for c in mudu_calls(box)] == [4, 5]
    ids = [r["record_id"] for r in day1.records(STREAM) + day2.records(STREAM)]
    assert len(ids) == len(set(ids)) == 450
    assert "progress" not in partition(day2.last_state, "880002")


def test_channels_share_one_budget_per_token(tmp_path: Path, box: Sandbox) -> None:
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"7001": 450, "7002": 700}))
    config = config_for(box, data)

    day1 = run_tap(tmp_path, config)
    assert day1.returncode == 0, day1.stderr
    by_channel = [c.path.split("/")[-2] for c in mudu_calls(box)]
    assert by_channel == ["7001"] * 5 + ["7002"] * 5
    assert "progress" not in partition(day1.last_state, "7001")
    assert partition(day1.last_state, "7002")["progress"]["next_page"] == 6

    box.reset_calls()
    day2 = run_tap(tmp_path, config, state=next_day(box, day1.last_state))
    assert day2.returncode == 0, day2.stderr
    # 7001 is done (its bookmark is the range end); 7002 goes on at page 6: two full pages,
    # then an empty one (a full page cannot tell it was the last).
    assert [(c.path.split("/")[-2], c.json()["p"]) for c in mudu_calls(box)] == [
        ("7002", 6),
        ("7002", 7),
        ("7002", 8),
    ]
    records = day1.records(STREAM) + day2.records(STREAM)
    keys = [(r["channel_id"], r["record_id"]) for r in records]
    assert len(keys) == len(set(keys)) == 1150


def test_spent_budget_lets_other_streams_go_on(tmp_path: Path, box: Sandbox) -> None:
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"880003": 1200}))
    szb = shangzhibo_sandbox.register(box)
    config = config_for(box, data)
    day1 = run_tap(tmp_path, config)
    assert len(mudu_calls(box)) == 10

    config = {
        **config,
        "start_date": "2026-09-01T00:00:00Z",
        "end_date": "2026-10-01T00:00:00Z",
        "shangzhibo": shangzhibo_sandbox.tap_config(szb, box.base_url),
    }
    run = run_tap(tmp_path, config, state=day1.last_state)
    assert run.returncode == 0, run.stderr
    assert len(mudu_calls(box)) == 10  # nothing spent on Mudu
    assert run.records(STREAM) == []
    assert len(run.records("shangzhibo_activity_visits")) == 500
    assert partition(run.last_state, "880003")["progress"]["next_page"] == 11


# ------------------------------------------------------------------------- failures


def test_wrong_token_fails_at_once_with_one_call(tmp_path: Path, box: Sandbox) -> None:
    data = mudu_sandbox.register(box)
    wrong = "not-the-right-token-0042"
    run = run_tap(tmp_path, config_for(box, data, access_token=wrong))
    assert run.returncode != 0
    assert len(mudu_calls(box)) == 1
    lines = [line for line in run.stderr.splitlines() if "HTTP 401" in line]
    assert lines, run.stderr
    line = lines[0]
    for part in ("Mudu", STREAM, "channel_id=263218", "ACCESS TOKEN 无效", "mudu.access_token"):
        assert part in line
    assert wrong not in run.stderr
    assert wrong not in json.dumps(run.messages)


def test_unknown_channel_fails_only_that_partition(tmp_path: Path, box: Sandbox) -> None:
    data = mudu_sandbox.register(box)
    run = run_tap(tmp_path, config_for(box, data, channel_ids=["999999", "263218"]))
    assert run.returncode != 0  # the run reports the failed partition at the end
    assert len(run.records(STREAM)) == len(data.matching("263218"))
    assert any("HTTP 404" in line and "channel_id=999999" in line for line in run.stderr.splitlines())


# ------------------------------------------------------------------------ the request


def test_request_follows_settings(tmp_path: Path, box: Sandbox) -> None:
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"5005": 120}, idle_share=0.25))
    run = run_tap(tmp_path, config_for(box, data, page_size=500, filter_watch_time=False))
    assert run.returncode == 0, run.stderr
    bodies = [c.json() for c in mudu_calls(box)]
    # perPage is capped at the documented maximum ("最大100"); 150 rows are 100 + 50.
    assert [(b["perPage"], b["p"], b["filter_watch_time"]) for b in bodies] == [(100, 1, 0), (100, 2, 0)]
    records = run.records(STREAM)
    assert len(records) == 150
    assert any(r["watch_seconds"] == 0 for r in records)  # viewers who did not watch are kept

    box.reset_calls()
    (tmp_path / "small").mkdir()
    small = run_tap(tmp_path / "small", config_for(box, data, page_size=40))
    # 120 watchers in pages of 40: three full pages, then an empty one (a full page cannot
    # tell it was the last).
    assert [c.json()["perPage"] for c in mudu_calls(box)] == [40, 40, 40, 40]
    assert len(small.records(STREAM)) == 120


@pytest.mark.parametrize("end_date", [None, "2099-01-01T00:00:00+08:00"])
def test_window_ends_an_hour_ago_at_the_latest(tmp_path: Path, box: Sandbox, end_date: str | None) -> None:
    """Without end_date, or with one in the future, the window ends at now less an hour (China time).

    A window ending in the future would move the bookmark past viewers not yet seen.
    """
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"263218": 60}))
    config = config_for(box, data)
    config.pop("end_date")
    if end_date:
        config["end_date"] = end_date
    before = datetime.now(timezone.utc)
    run = run_tap(tmp_path, config)
    after = datetime.now(timezone.utc)
    assert run.returncode == 0, run.stderr
    (call,) = mudu_calls(box)
    china = timezone(timedelta(hours=8))
    end = datetime.strptime(call.json()["end_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=china)
    # whole minutes: records show only the minute, so windows are cut at minutes
    assert end.second == 0
    assert before - timedelta(hours=1, minutes=1) <= end <= after - timedelta(hours=1)
    assert len(run.records(STREAM)) == len(data.matching("263218"))
    assert "progress" not in partition(run.last_state, "263218")


def test_retries_spend_the_budget_too(tmp_path: Path, box: Sandbox) -> None:
    """A retried attempt is a call Mudu may count: it comes out of the same daily budget."""
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"6006": 250}))
    box.add_fault(Fault(path="/userRecords", kind="status", status=503, count=1))
    run = run_tap(tmp_path, config_for(box, data, daily_call_limit=3))
    assert run.returncode == 0, run.stderr
    calls = mudu_calls(box)
    assert [(c.status, c.json()["p"]) for c in calls] == [(503, 1), (200, 1), (200, 2)]
    assert len(run.records(STREAM)) == 200
    assert partition(run.last_state, "6006")["progress"]["next_page"] == 3
    (warning,) = budget_warnings(run.stderr)
    assert "3 of 3 calls" in warning and "page 3" in warning


def test_short_429_is_retried_not_read_as_the_daily_limit(tmp_path: Path, box: Sandbox) -> None:
    """A 429 asking to wait a moment, with no word of a limit, is a hiccup: one retry, then on."""
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"6007": 150}))
    box.add_fault(
        Fault(path="/userRecords", kind="status", status=429, count=1, retry_after=0.01, body={"msg": "busy"})
    )
    run = run_tap(tmp_path, config_for(box, data))
    assert run.returncode == 0, run.stderr
    assert [c.status for c in mudu_calls(box)] == [429, 200, 200]
    assert len(run.records(STREAM)) == 150
    assert "progress" not in partition(run.last_state, "6007")


def test_a_channel_starved_before_its_first_call_costs_one_call_the_next_day(tmp_path: Path, box: Sandbox):
    """No window is kept for a channel the budget never reached: the next day it is one call.

    Without ``end_date`` each window ends at "now less an hour"; a window fixed on day 1 but
    never read would, on day 2, cost its own call plus one for the gap after it.
    """
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"880001": 40, "880002": 40}))
    config = config_for(box, data, daily_call_limit=1)
    config.pop("end_date")

    day1 = run_tap(tmp_path, config)
    assert day1.returncode == 0, day1.stderr
    assert len(mudu_calls(box)) == 1
    assert "progress" not in partition(day1.last_state, "880002")  # nothing of it was read
    box.reset_calls()

    config["mudu"]["daily_call_limit"] = 2
    day2 = run_tap(tmp_path, config, state=next_day(box, day1.last_state))
    assert day2.returncode == 0, day2.stderr
    calls = mudu_calls(box)
    starved = [c for c in calls if "/880002/" in c.path]
    assert len(starved) == 1  # everything of 880002, from start_date, in one call
    assert starved[0].json()["start_time"] == "2026-09-19 23:59:00"  # a minute early
    # 880001 asks at most for the seconds since its day-1 window (none when they round away)
    assert len(calls) - len(starved) <= 1
    for channel in ("880001", "880002"):
        assert "progress" not in partition(day2.last_state, channel)
    got = {r["record_id"] for r in day1.records(STREAM) + day2.records(STREAM)}
    assert len(got) == 80  # 2 x 40 watchers (filter_watch_time=1 leaves the idle viewers out)


# ------------------------------------------------------- when the provider misbehaves

CHINA = mudu_sandbox.CHINA


def warnings_about(stderr: str, *words: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line and all(w in line for w in words)]


@pytest.mark.parametrize("body", [{"data": None}, {"code": 0, "data": []}], ids=["null-data", "object"])
def test_mudu_answer_without_a_list_fails_at_once_spending_one_call_and_keeps_the_state(
    tmp_path: Path, box: Sandbox, body: dict
) -> None:
    """Not retried: every retry would spend one of the day's 10 calls on the same malformed answer."""
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"263218": 230}))
    box.add_fault(Fault(path="/userRecords", kind="status", status=200, body=body, count=1, after=1))
    config = config_for(box, data)
    failed = run_tap(tmp_path, config)
    assert failed.returncode != 0
    line = next(line for line in failed.stderr.splitlines() if "without a list of records" in line)
    assert "channel_id=263218" in line and "What to do" in line and data.token not in failed.stderr
    assert len(mudu_calls(box)) == 2  # page 1, then the malformed page 2 once
    progress = partition(failed.last_state, "263218")["progress"]
    assert progress["next_page"] == 2  # the state resumes at the malformed page
    box.reset_calls()
    resumed = run_tap(tmp_path, config, state=failed.last_state)
    assert resumed.returncode == 0, resumed.stderr
    assert [c.json()["p"] for c in mudu_calls(box)] == [2, 3]
    got = {r["record_id"] for r in failed.records(STREAM) + resumed.records(STREAM)}
    assert got == {r["record_id"] for r in data.matching("263218")}


def test_mudu_pages_larger_than_asked_are_followed_without_an_extra_call(
    tmp_path: Path, box: Sandbox
) -> None:
    """Served 200 rows for perPage 100: a later page of 150 is the last, no call is spent after it."""
    data = mudu_sandbox.register(
        box, mudu_sandbox.MuduData(channels={"263218": 350}, idle_share=0, serve_page_size=200)
    )
    run = run_tap(tmp_path, config_for(box, data))
    assert run.returncode == 0, run.stderr
    assert [c.json()["p"] for c in mudu_calls(box)] == [1, 2]
    assert len({r["record_id"] for r in run.records(STREAM)}) == 350


@pytest.mark.parametrize("minute", ["cut", "round"])
@pytest.mark.parametrize("bounds", READINGS)
def test_mudu_logins_on_window_boundaries_arrive_once_under_every_bounds_reading(
    tmp_path: Path, box: Sandbox, bounds: str, minute: str
) -> None:
    """Bounds may be inclusive or not, and records show only the minute (cut or rounded): once each."""
    data = mudu_sandbox.MuduData(channels={"263218": 120}, bounds=bounds, minute=minute)
    split = datetime(2026, 9, 20, 20, 30, 30, tzinfo=CHINA)  # not a whole minute: windows are cut at 20:30
    for second in (-91, -61, -60, -59, -31, -30, -29, -1, 0, 1, 29, 30, 31, 59, 60, 61):
        data.add_login("263218", split + timedelta(seconds=second), seed=second)
    mudu_sandbox.register(box, data)
    first = run_tap(tmp_path, config_for(box, data) | {"end_date": split.isoformat()})
    assert first.returncode == 0, first.stderr
    second_run = run_tap(tmp_path, config_for(box, data), state=first.last_state)
    assert second_run.returncode == 0, second_run.stderr
    got = sorted(r["record_id"] for r in first.records(STREAM) + second_run.records(STREAM))
    assert got == sorted(r["record_id"] for r in data.matching("263218"))  # every record exactly once
    assert partition(first.last_state, "263218")["replication_key_value"] == "2026-09-20T20:30:00+08:00"


def test_mudu_records_without_record_id_are_kept_under_distinct_stable_keys_with_one_warning(
    tmp_path: Path, box: Sandbox
) -> None:
    data = mudu_sandbox.MuduData(channels={"263218": 230}, idle_share=0)
    rows = data.records["263218"]
    for row in rows[::3]:
        row["record_id"] = None
    for row in rows[1:40:3]:
        row["record_id"] = 42  # different records under one id
    mudu_sandbox.register(box, data)
    config = config_for(box, data)
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    keys = [(r["channel_id"], r["record_id"]) for r in run.records(STREAM)]
    assert len(keys) == len(set(keys)) == 230  # an upserting target keeps all 230
    assert all(isinstance(record_id, int) for _, record_id in keys)
    (missing,) = warnings_about(run.stderr, "without record_id")
    assert "77 row(s)" in missing and "channel_id=263218" in missing
    (collision,) = warnings_about(run.stderr, "key of a different row")
    assert "12 row(s)" in collision
    box.advance_clock(days=1)
    again = run_tap(tmp_path, config)
    assert sorted(keys) == sorted((r["channel_id"], r["record_id"]) for r in again.records(STREAM))


def test_mudu_malformed_values_keep_the_row_with_nulls_and_one_warning_per_field(
    tmp_path: Path, box: Sandbox
) -> None:
    data = mudu_sandbox.MuduData(channels={"263218": 50}, idle_share=0)
    rows = data.records["263218"]
    rows[2]["online_time"] = "ten"
    rows[3]["online_time"] = 600
    rows[4]["last_online_time"] = "later"
    rows[5]["record_id"] = "5200x"
    rows[6]["user_id"] = 12345678
    mudu_sandbox.register(box, data)
    run = run_tap(tmp_path, config_for(box, data))
    assert run.returncode == 0, run.stderr
    assert len(run.records(STREAM)) == 50
    two = run.records(STREAM)[2]
    assert two["online_time"] == "ten" and two["online_seconds"] is None  # the raw value is kept
    assert run.records(STREAM)[4]["last_online_time"] is None
    assert isinstance(run.records(STREAM)[5]["record_id"], int)  # a content key, never text
    assert run.records(STREAM)[6]["user_id"] == "12345678"
    (online,) = warnings_about(run.stderr, "unreadable online_time")
    assert "2 row(s)" in online and "'ten'" in online and "record_id=" in online
    assert len(warnings_about(run.stderr, "unreadable last_online_time")) == 1
    assert len(warnings_about(run.stderr, "unreadable record_id")) == 1


def test_mudu_page_size_learned_from_a_bigger_page_is_kept_across_days(tmp_path: Path, box: Sandbox) -> None:
    """Day 1 reads one page of 200 (100 asked); day 2's page of 150 is then the last: no call after it."""
    data = mudu_sandbox.register(
        box, mudu_sandbox.MuduData(channels={"263218": 350}, idle_share=0, serve_page_size=200)
    )
    config = config_for(box, data, daily_call_limit=1)
    day1 = run_tap(tmp_path, config)
    assert day1.returncode == 0, day1.stderr
    progress = partition(day1.last_state, "263218")["progress"]
    assert progress["next_page"] == 2 and progress["served_page_size"] == 200
    box.reset_calls()
    day2 = run_tap(tmp_path, config, state=next_day(box, day1.last_state))
    assert day2.returncode == 0, day2.stderr
    assert [c.json()["p"] for c in mudu_calls(box)] == [2]
    got = {r["record_id"] for r in day1.records(STREAM) + day2.records(STREAM)}
    assert len(got) == 350
