"""Talk-cloud streams against the sandbox, through the real tap CLI.

What a user relies on (document 004 and issue 5): every entry arrives once per key, no query
spans more than a month ("时间区间最大限制1个月") or reaches back more than a year ("只支持
查询1年内的数据"), calls are exactly what the windows need (200 rows a page, ``uptablelist``
on page 1 only, both streams from the same calls), an empty window (4105) is quiet, an
unknown room (4007) fails naming it, and the key never shows.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import discover, run_tap, run_tap_until_killed, select_only
from sandbox import Fault
from sandbox import talkcloud as tk
from sandbox.bounds import READINGS
from tap_livestream_viewers import tolerant_json
from tap_livestream_viewers.providers import talkcloud as talkcloud_module
from tap_livestream_viewers.providers.talkcloud import entry_key, shape_row
from tap_livestream_viewers.timeutil import zone

UTC = timezone.utc
SHANGHAI = zone("Asia/Shanghai")
FIXTURES = Path(__file__).parent / "fixtures"
PATH = tk.PATH
LOGIN = "talkcloud_login_records"
STAGE = "talkcloud_stage_users"
ROOM = "500100200"


def day_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


P0 = day_floor(datetime.now(UTC) - timedelta(days=90))
P_END = P0 + timedelta(days=75)


def test_demo_month_is_within_talkcloud_reach():
    """The shared demo data (September 2026) must lie in the tests' fixed September windows and
    within the year Talk-cloud answers for, or the demo, the SDK suite and the Meltano tests
    read no Talk-cloud row. This names the cause the day that year passes it."""
    first, last = tk.DEMO_PERIOD
    tests_window = (datetime(2026, 9, 1, tzinfo=SHANGHAI), datetime(2026, 10, 1, tzinfo=SHANGHAI))
    assert tests_window[0] <= first < last < tests_window[1]
    reach_starts = datetime.now(UTC) - talkcloud_module.YEAR + talkcloud_module.YEAR_MARGIN
    assert tests_window[0] >= reach_starts, (
        "Talk-cloud answers only for the last 365 days: move DEMO_PERIOD (sandbox/talkcloud.py), the "
        "demo's start date and the tests' September 2026 windows to a month within the last year"
    )


def room_data(count: int = 1030, **rooms: tuple[int, datetime, datetime]) -> tk.TalkcloudData:
    """One room with ``count`` entries over 75 days, one of them exactly on a window boundary."""
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    data.add_room(ROOM, count - 1, P0, P_END, seed=11)
    data.add_entry(ROOM, P0 + STEP, userid="900000000001")  # on the first window boundary
    for serial, (n, start, end) in rooms.items():
        data.add_room(serial, n, start, end, seed=len(serial))
    return data


def make_config(base_url: str, data: tk.TalkcloudData, **overrides) -> dict:
    config = {
        "start_date": P0.isoformat(),
        "end_date": P_END.isoformat(),
        "backoff_base_seconds": 0.05,
        "talkcloud": {**tk.tap_config(data, base_url), "serials": [ROOM]},
    }
    config.update(overrides)
    return config


def identity(row: dict) -> tuple:
    """What identifies an entry in the sandbox data, independent of the tap's derived key."""
    return (row["serial"], row["userid"], int(row["entertimestamp"]), row["terminal"])


def window_of(call) -> tuple[int, int]:
    form = call.form()
    return int(form["starttime"]), int(form["endtime"])


#: The documented span: "时间区间最大限制1个月", read as 28 days (within any calendar month).
#: Each query starts one second before its window (the bounds may be exclusive), so a
#: window is 28 days less that second.
EARLY = timedelta(seconds=1)
STEP = timedelta(days=28) - EARLY


def expected_windows(start: datetime, end: datetime) -> list[tuple[int, int]]:
    """The queries for ``[start, end)``: consecutive windows, each asked from one second early."""
    windows = []
    cursor = start
    while cursor < end:
        window_end = min(cursor + STEP, end)
        windows.append((int((cursor - EARLY).timestamp()), int(window_end.timestamp())))
        cursor = window_end
    return windows


def rows_sent(data: tk.TalkcloudData, serial: str, start: int, end: int) -> int:
    """Rows the sandbox sends for one window: it counts ``start <= entered <= end``, both inclusive.

    So a row entered exactly at a window's end is sent by that window too (the tap leaves it to
    the next one, which sends it again from its start): it is paged, so it counts here.
    """
    return sum(1 for row in data.entries[serial] if start <= row["entertimestamp"] <= end)


def pages_needed(rows: int) -> int:
    """Rows / 200 rounded up, at least one, one more where the rows fill the last page exactly."""
    return max(1, math.ceil(rows / 200)) + (1 if rows and rows % 200 == 0 else 0)


def expected_calls(data: tk.TalkcloudData, serial: str, windows: list[tuple[int, int]]) -> list[tuple]:
    """Every call the windows need, in order: ``((starttime, endtime), page)``."""
    return [
        (window, page)
        for window in windows
        for page in range(1, pages_needed(rows_sent(data, serial, *window)) + 1)
    ]


def calls_made(calls) -> list[tuple]:
    """The tap's calls as the sandbox logged them: ``((starttime, endtime), page)``, sorted (the
    first pages of later windows are fetched ahead, so they arrive in any order)."""
    return sorted((window_of(c), int(c.form()["page"])) for c in calls)


def assert_windows_cover(windows: list[tuple[int, int]], start: datetime, end: datetime) -> None:
    """Consecutive, never longer than a month (28 days, within any calendar month), covering all."""
    windows = sorted(windows)
    assert windows[0][0] == int((start - EARLY).timestamp())
    assert windows[-1][1] == int(end.timestamp())
    for (_, first_end), (second_start, _) in itertools.pairwise(windows):
        assert first_end == second_start + 1  # each query starts a second before its window
    for window_start, window_end in windows:
        assert window_end - window_start <= 28 * 86400
        assert window_end <= tk.add_month(datetime.fromtimestamp(window_start, UTC)).timestamp()


# ----------------------------------------------------------------------- the room


def test_75_days_of_1030_rows_arrive_once_in_month_windows_with_exactly_the_needed_calls(sandbox, tmp_path):
    data = tk.register(sandbox, room_data())
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr

    records = run.records(LOGIN)
    keys = [r["entry_key"] for r in records]
    assert len(keys) == len(set(keys)) == 1030
    assert {identity(r) for r in records} == {identity(r) for r in data.entries[ROOM]}

    calls = sandbox.calls_to(PATH)
    windows = expected_windows(P0, P_END)
    # 75 days: 28 + 28 + 19 (less a second each), the first boundary holding one row
    assert windows == [
        (int((P0 - EARLY).timestamp()), int((P0 + STEP).timestamp())),
        (int((P0 + STEP - EARLY).timestamp()), int((P0 + 2 * STEP).timestamp())),
        (int((P0 + 2 * STEP - EARLY).timestamp()), int(P_END.timestamp())),
    ]
    assert_windows_cover(windows, P0, P_END)
    assert sum(rows_sent(data, ROOM, *w) for w in windows) == 1030 + 1  # the boundary row is sent twice
    assert [pages_needed(rows_sent(data, ROOM, *w)) for w in windows] == [2, 2, 2]  # 388, 375, 268 rows
    assert calls_made(calls) == expected_calls(data, ROOM, windows)
    assert_windows_cover(sorted({window_of(c) for c in calls}), P0, P_END)
    for window in windows:
        pages = sorted(int(c.form()["page"]) for c in calls if window_of(c) == window)
        assert pages == list(range(1, len(pages) + 1))  # no page asked twice

    # the stage users came from the same calls: every one once, no call of their own
    stage = run.records(STAGE)
    stage_keys = [r["entry_key"] for r in stage]
    assert len(stage_keys) == len(set(stage_keys)) == len(data.stage[ROOM]) > 0
    assert {identity(r) for r in stage} == {identity(r) for r in data.stage[ROOM]}

    state = run.last_state["bookmarks"]
    partition = state[LOGIN]["partitions"][0]
    assert partition["context"] == {"serial": ROOM}
    assert datetime.fromisoformat(partition["replication_key_value"]) == P_END
    assert "progress" not in partition
    assert STAGE not in state  # a derived stream keeps no state: its position is the login records'


def test_a_window_whose_rows_fill_its_last_page_costs_exactly_one_more_call(sandbox, tmp_path):
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    data.add_room(ROOM, 400, P0, P0 + timedelta(days=10))
    tk.register(sandbox, data)
    run = run_tap(
        tmp_path, make_config(sandbox.base_url, data, end_date=(P0 + timedelta(days=20)).isoformat())
    )
    assert run.returncode == 0, run.stderr
    assert len({r["entry_key"] for r in run.records(LOGIN)}) == 400
    assert [(c.form()["page"], c.rows) for c in sandbox.calls_to(PATH)] == [("1", 200), ("2", 200), ("3", 0)]
    (window,) = expected_windows(P0, P0 + timedelta(days=20))
    assert (
        calls_made(sandbox.calls_to(PATH))
        == expected_calls(data, ROOM, [window])
        == [
            (window, 1),
            (window, 2),
            (window, 3),
        ]
    )


def test_records_carry_every_field_typed_labelled_and_in_rfc3339(sandbox, tmp_path):
    data = tk.register(sandbox, room_data(200))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    by_identity = {identity(r): r for r in data.entries[ROOM]}
    records = run.records(LOGIN)
    # the sandbox spells every 7th row's start "startimestamp", as the document does
    assert len(records) == 200
    for record in records:
        raw = by_identity[identity(record)]
        for field, value in raw.items():
            assert record[field] == value, field
        assert record["duration_seconds"] == int(raw["duration"])
        assert record["paytime_seconds"] == int(raw["paytime"])
        assert record["entertime_utc"] == datetime.fromtimestamp(raw["entertimestamp"], UTC).isoformat()
        assert record["starttime_utc"] == datetime.fromtimestamp(raw["starttimestamp"], UTC).isoformat()
        assert datetime.fromisoformat(record["outtime_utc"]).utcoffset() == timedelta(0)
        assert (
            record["terminal_label"]
            == {
                "0": "windows",
                "1": "mac",
                "2": "ios",
                "3": "android",
                "4": "linux",
                "5": "unknown",
            }[raw["terminal"]]
        )
        assert record["userroleid_label"] in {"lecturer", "assistant", "student", "live_viewer", "inspector"}
        assert record["terminal_details_label"] in {"client", "wechat_browser", "safari", "chrome", "other"}
        assert "startimestamp" not in record
    for record in run.records(STAGE):
        assert record["starttimestamp"] and record["starttime_utc"]


# ---------------------------------------------------------------------- shared calls


def test_only_stage_users_reads_the_login_records_unemitted_and_advances_their_state(sandbox, tmp_path):
    """Stage users derive from the login-records calls: alone, those are read (not emitted)."""
    data = tk.register(sandbox, room_data())
    config = make_config(sandbox.base_url, data)
    catalog = select_only(discover(tmp_path, config), STAGE)
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert run.records(LOGIN) == []
    assert LOGIN not in {m["stream"] for m in run.messages if m["type"] == "SCHEMA"}
    assert len({r["entry_key"] for r in run.records(STAGE)}) == len(data.stage[ROOM])
    calls = sandbox.calls_to(PATH)
    assert calls_made(calls) == expected_calls(data, ROOM, expected_windows(P0, P_END))
    partition = run.last_state["bookmarks"][LOGIN]["partitions"][0]
    assert datetime.fromisoformat(partition["replication_key_value"]) == P_END
    assert STAGE not in run.last_state["bookmarks"]


def test_only_login_records_leaves_stage_users_alone(sandbox, tmp_path):
    data = tk.register(sandbox, room_data())
    config = make_config(sandbox.base_url, data)
    run = run_tap(tmp_path, config, catalog=select_only(discover(tmp_path, config), LOGIN))
    assert run.returncode == 0, run.stderr
    assert run.records(STAGE) == []
    assert len({r["entry_key"] for r in run.records(LOGIN)}) == 1030
    calls = sandbox.calls_to(PATH)
    assert calls_made(calls) == expected_calls(data, ROOM, expected_windows(P0, P_END))
    assert STAGE not in run.last_state["bookmarks"] or not run.last_state["bookmarks"][STAGE].get(
        "partitions"
    )


def test_stage_users_read_alone_then_both_continue_without_repeats(sandbox, tmp_path):
    """Stage users alone up to a date, then both streams: both resume from the login bookmark."""
    data = tk.register(sandbox, room_data())
    middle = P0 + timedelta(days=28)
    config = make_config(sandbox.base_url, data, end_date=middle.isoformat())
    first = run_tap(tmp_path, config, catalog=select_only(discover(tmp_path, config), STAGE))
    assert first.returncode == 0, first.stderr
    sandbox.reset_calls()

    second = run_tap(tmp_path, make_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    stage = first.records(STAGE) + second.records(STAGE)
    assert len(stage) == len({r["entry_key"] for r in stage}) == len(data.stage[ROOM])
    # the first run read (without emitting) the login records up to the middle
    assert {identity(r) for r in second.records(LOGIN)} == {
        identity(r) for r in data.entries[ROOM] if r["entertimestamp"] >= middle.timestamp()
    }
    calls = sandbox.calls_to(PATH)
    assert calls_made(calls) == expected_calls(data, ROOM, expected_windows(middle, P_END))


def test_second_run_asks_only_for_the_new_window_and_a_third_asks_nothing(sandbox, tmp_path):
    data = tk.register(sandbox, room_data())
    middle = P0 + timedelta(days=40)
    first = run_tap(tmp_path, make_config(sandbox.base_url, data, end_date=middle.isoformat()))
    assert first.returncode == 0, first.stderr
    sandbox.reset_calls()

    second = run_tap(tmp_path, make_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    calls = sandbox.calls_to(PATH)
    windows = expected_windows(middle, P_END)  # the bookmark is the first run's end: 28 + 7 days
    assert len(windows) == 2 and windows[0][0] == int((middle - EARLY).timestamp())
    assert min(start for start, _ in {window_of(c) for c in calls}) == int((middle - EARLY).timestamp())
    assert calls_made(calls) == expected_calls(data, ROOM, windows)
    assert [pages_needed(rows_sent(data, ROOM, *w)) for w in windows] == [2, 1]  # 369, 103 rows
    for stream in (LOGIN, STAGE):
        keys = [r["entry_key"] for r in first.records(stream) + second.records(stream)]
        assert len(keys) == len(set(keys))
    assert len({r["entry_key"] for r in first.records(LOGIN) + second.records(LOGIN)}) == 1030

    sandbox.reset_calls()
    third = run_tap(tmp_path, make_config(sandbox.base_url, data), state=second.last_state)
    assert third.returncode == 0, third.stderr
    assert sandbox.calls_to(PATH) == []
    assert third.records(LOGIN) == third.records(STAGE) == []


def test_killed_run_resumes_at_the_next_page_for_both_streams(sandbox, tmp_path):
    data = tk.register(sandbox, room_data())
    # the kill comes with one call left (page 2 of the last window): slow enough that the tap
    # cannot finish it while this test reads the STATE line on a loaded machine
    sandbox.latency_s = 0.5
    config = make_config(sandbox.base_url, data)

    def in_second_page_of_login_records(states: list[dict]) -> bool:
        login = states[-1].get("bookmarks", {}).get(LOGIN, {}).get("partitions", [{}])[0]
        progress = login.get("progress")
        return bool(progress) and progress["next_page"] == 2 and len(states) > 4

    killed = run_tap_until_killed(tmp_path, config, in_second_page_of_login_records)
    emitted = {LOGIN: killed.records(LOGIN), STAGE: killed.records(STAGE)}
    states = killed.states
    assert killed.returncode == -signal.SIGKILL
    last_state = states[-1]
    progress = last_state["bookmarks"][LOGIN]["partitions"][0]["progress"]
    time.sleep(0.5)  # the killed run's call in flight is logged by now, then forgotten
    sandbox.reset_calls()
    sandbox.latency_s = 0

    rerun = run_tap(tmp_path, config, state=last_state)
    assert rerun.returncode == 0, rerun.stderr
    first_call = sandbox.calls_to(PATH)[0].form()
    assert first_call["page"] == str(progress["next_page"]) == "2"
    assert (
        int(first_call["starttime"]) == int(datetime.fromisoformat(progress["window_start"]).timestamp()) - 1
    )
    for stream, expected in ((LOGIN, data.entries[ROOM]), (STAGE, data.stage[ROOM])):
        keys = {r["entry_key"] for r in emitted[stream]} | {r["entry_key"] for r in rerun.records(stream)}
        assert len(keys) == len(expected), stream


# ---------------------------------------------------------------------- the request


def test_request_is_a_form_post_with_the_key_in_the_body_only(sandbox, tmp_path):
    data = tk.TalkcloudData(rooms={}, thirdroomids={"spring-course-01": ROOM})
    data.add_room(ROOM, 30, P0, P0 + timedelta(days=5))
    tk.register(sandbox, data)
    config = make_config(sandbox.base_url, data, end_date=(P0 + timedelta(days=5)).isoformat())
    config["talkcloud"]["serials"] = []
    config["talkcloud"]["thirdroomids"] = ["spring-course-01"]
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    (call,) = sandbox.calls_to(PATH)
    assert call.method == "POST" and call.query == {}
    assert not call.body.startswith(b"{")  # form fields, not JSON
    assert call.form() == {
        "key": data.key,
        "thirdroomid": "spring-course-01",
        "starttime": str(int((P0 - EARLY).timestamp())),  # a second early: bounds may be exclusive
        "endtime": str(int((P0 + timedelta(days=5)).timestamp())),
        "page": "1",
    }
    records = run.records(LOGIN)
    assert len(records) == 30
    assert all(r["thirdroomid"] == "spring-course-01" and r["serial"] == ROOM for r in records)
    everything = run.stderr + json.dumps(run.messages)
    assert data.key not in everything


def test_start_older_than_a_year_is_clamped_with_a_warning_naming_the_lost_span(sandbox, tmp_path):
    now = datetime.now(UTC)
    start = day_floor(now - timedelta(days=400))
    end = day_floor(now - timedelta(days=340))
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    data.add_room(ROOM, 100, start, end)
    tk.register(sandbox, data)
    run = run_tap(
        tmp_path, make_config(sandbox.base_url, data, start_date=start.isoformat(), end_date=end.isoformat())
    )
    assert run.returncode == 0, run.stderr
    warning = next(line for line in run.stderr.splitlines() if "last year" in line)
    assert start.isoformat() in warning and f"serial={ROOM}" in warning
    calls = sandbox.calls_to(PATH)
    first_start = min(window_of(c)[0] for c in calls)
    assert now.timestamp() - 365 * 86400 < first_start <= now.timestamp() - 363 * 86400
    read_from = datetime.fromtimestamp(first_start, UTC) + EARLY  # the query starts a second early
    assert read_from.isoformat() in warning  # the lost span ends here
    assert_windows_cover([window_of(c) for c in calls], read_from, end)


# ---------------------------------------------------------------------------- codes


def test_empty_window_4105_passes_quietly(sandbox, tmp_path):
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    data.add_room(ROOM, 50, P0, P0 + timedelta(days=3))  # later windows have nothing
    tk.register(sandbox, data)
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    assert len(run.records(LOGIN)) == 50
    calls = sandbox.calls_to(PATH)
    assert [c.rows for c in calls] == [50, 0, 0]  # one call per empty window, none more
    assert not [line for line in run.stderr.splitlines() if "4105" in line or " ERROR " in line]
    partition = run.last_state["bookmarks"][LOGIN]["partitions"][0]
    assert datetime.fromisoformat(partition["replication_key_value"]) == P_END


def test_unknown_room_fails_naming_its_serial_and_the_other_rooms_are_read(sandbox, tmp_path):
    data = tk.register(sandbox, room_data(300))
    config = make_config(sandbox.base_url, data)
    config["talkcloud"]["serials"] = ["999000111", ROOM]
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert len({r["entry_key"] for r in run.records(LOGIN)}) == 300
    assert len(run.records(STAGE)) == len(data.stage[ROOM])
    unknown = [c for c in sandbox.calls_to(PATH) if c.form().get("serial") == "999000111"]
    assert len(unknown) == 1  # neither retried nor asked again by the stage-users stream
    lines = [line for line in run.stderr.splitlines() if "4007" in line]
    assert lines, run.stderr
    for part in ("Talk-cloud", LOGIN, "serial=999000111", "What to do"):
        assert part in lines[0]
    assert data.key not in run.stderr


def test_wrong_key_fails_at_once_with_one_clear_line_and_no_key(sandbox, tmp_path):
    data = tk.register(sandbox, room_data(20))
    config = make_config(sandbox.base_url, data)
    config["talkcloud"]["key"] = "wrong-enterprise-key-42"
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert len(sandbox.calls_to(PATH)) == 1
    line = next(line for line in run.stderr.splitlines() if "result 4109" in line)
    assert "talkcloud.key" in line and f"serial={ROOM}" in line
    assert "wrong-enterprise-key-42" not in run.stderr + json.dumps(run.messages)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (4005, "time parameters refused for starttime="),
        (5004, "bug of the tap"),
        (4101, "talkcloud.key"),
        (4999, "result 4999"),
    ],
)
def test_other_codes_fail_clearly(sandbox, tmp_path, code, expected):
    data = tk.register(sandbox, room_data(20))
    sandbox.add_fault(Fault(path=PATH, kind="status", status=200, body={"result": code, "msg": "错误"}))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode != 0
    assert len(sandbox.calls_to(PATH)) == 1
    line = next(line for line in run.stderr.splitlines() if f"result {code}" in line)
    assert expected in line and "What to do" in line
    if code == 4005:
        sent = P0 - EARLY  # the query starts a second before the window
        assert f"starttime={int(sent.timestamp())} ({sent.isoformat()})" in line
    assert data.key not in run.stderr


def test_server_errors_are_retried(sandbox, tmp_path):
    data = tk.register(sandbox, room_data(450))
    sandbox.add_fault(Fault(path=PATH, kind="status", status=503, count=1, after=1))
    sandbox.add_fault(Fault(path=PATH, kind="reset", count=1, after=2))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    assert len({r["entry_key"] for r in run.records(LOGIN)}) == 450


# ------------------------------------------------------------------ document example


def test_document_example_parses_and_shapes_as_written():
    body = tolerant_json.loads((FIXTURES / "talkcloud_example.json").read_bytes())
    assert body["result"] == 0 and body["count"] == 1
    shanghai = zone("Asia/Shanghai")
    (stage,) = [shape_row(r, {"serial": "111111"}, shanghai) for r in body["uptablelist"]]
    (login,) = [shape_row(r, {"serial": "111111"}, shanghai) for r in body["logininfo"]]

    assert stage["username"] == "李思淼"
    assert stage["starttimestamp"] == 1598665727 and "startimestamp" not in stage  # misspelt in the example
    assert stage["entertime_utc"] == "2020-08-29T01:48:47+00:00"  # 09:48:47 in Beijing
    assert stage["starttime_utc"] == "2020-08-29T01:48:47+00:00"
    assert stage["outtime_utc"] == "2020-08-29T01:49:07+00:00"
    assert stage["duration"] == "20" and stage["duration_seconds"] == 20 and stage["paytime_seconds"] == 20
    assert (stage["terminal_label"], stage["terminal_details_label"], stage["userroleid_label"]) == (
        "windows",
        "client",
        "student",
    )

    assert login["username"] == "IWantSeeYouAgain"
    assert login["starttimestamp"] == 1592384718
    assert login["starttime_utc"] == "2020-06-17T09:05:18+00:00"
    assert login["endtime_utc"] == "2020-06-17T09:05:18+00:00"
    assert login["entertime_utc"] == "2020-06-17T09:05:04+00:00"
    assert login["duration_seconds"] == 14 and login["paytime_seconds"] == 0
    assert login["videotype"] == "320*240" and login["userroleid"] == "2"
    assert login["entry_key"] != stage["entry_key"]

    # the table spells the documented name: a row carrying starttimestamp keeps it
    proper = shape_row(dict(body["logininfo"][0], starttimestamp=1, startimestamp=2), {}, shanghai)
    assert proper["starttimestamp"] == 1
    # the table's "seria" is read as the room number
    seria = shape_row({"seria": "222", "userid": "1", "entertimestamp": 5}, {"serial": "222"}, shanghai)
    assert seria["serial"] == "222"


def test_entry_key_is_stable_and_tells_devices_apart():
    first = entry_key("111111", "42", 1598665727, "0", "1")
    assert first == entry_key("111111", "42", 1598665727, "0", "1")
    assert first != entry_key("111111", "42", 1598665727, "2", "2")  # same second, a phone
    assert first != entry_key("111111", "42", 1598665728, "0", "1")
    assert first != entry_key("222222", "42", 1598665727, "0", "1")


def partition_state(stream: str, progress: dict) -> dict:
    return {
        "bookmarks": {
            stream: {
                "partitions": [
                    {
                        "context": {"serial": ROOM},
                        "replication_key": "entertime_utc",
                        "replication_key_value": progress["window_start"],
                        "progress": progress,
                    }
                ]
            }
        }
    }


def test_stage_users_alone_resume_the_login_records_saved_window_at_its_next_page(sandbox, tmp_path):
    """Page 1's stage users were written before the state that names page 2: not asked again."""
    data = tk.register(sandbox, room_data())
    window_start, window_end = P0 + timedelta(days=28), P0 + timedelta(days=56)
    state = partition_state(
        LOGIN,
        {
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "next_page": 2,
            "page_size": 200,
        },
    )
    config = make_config(sandbox.base_url, data)
    run = run_tap(tmp_path, config, state=state, catalog=select_only(discover(tmp_path, config), STAGE))
    assert run.returncode == 0, run.stderr
    calls = sandbox.calls_to(PATH)
    later = expected_windows(window_end, P_END)
    assert calls_made(calls) == [
        ((int((window_start - EARLY).timestamp()), int(window_end.timestamp())), 2),
        *expected_calls(data, ROOM, later),
    ]
    expected = [r for r in data.stage[ROOM] if r["entertimestamp"] >= window_end.timestamp()]
    assert {identity(r) for r in run.records(STAGE)} == {identity(r) for r in expected}


def test_saved_window_older_than_a_year_is_asked_again_from_the_last_year(sandbox, tmp_path):
    now = datetime.now(UTC)
    old_start, old_end = day_floor(now - timedelta(days=380)), day_floor(now - timedelta(days=352))
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    data.add_room(ROOM, 60, old_start, old_end + timedelta(days=5))
    tk.register(sandbox, data)
    state = partition_state(
        LOGIN,
        {
            "window_start": old_start.isoformat(),
            "window_end": old_end.isoformat(),
            "next_page": 2,
            "page_size": 200,
        },
    )
    end = old_end + timedelta(days=10)
    config = make_config(sandbox.base_url, data, start_date=old_start.isoformat(), end_date=end.isoformat())
    run = run_tap(tmp_path, config, state=state)
    assert run.returncode == 0, run.stderr
    assert any("saved window" in line for line in run.stderr.splitlines())
    calls = sandbox.calls_to(PATH)
    assert all(c.form()["page"] == "1" for c in calls)
    assert min(window_of(c)[0] for c in calls) > now.timestamp() - 365 * 86400
    assert_windows_cover(
        [window_of(c) for c in calls], datetime.fromtimestamp(window_of(calls[0])[0], UTC) + EARLY, end
    )


# ------------------------------------------------------- when the provider misbehaves


def warnings_about(stderr: str, *words: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line and all(w in line for w in words)]


@pytest.mark.parametrize(
    "body",
    [{"result": 0}, {"result": 0, "logininfo": None}, {"result": 0, "logininfo": "none"}],
    ids=["logininfo-absent", "logininfo-null", "logininfo-not-a-list"],
)
def test_talkcloud_result_0_without_logininfo_fails_after_retries_and_keeps_the_window(
    sandbox, tmp_path, body
):
    """ "result 0" without its row list is not an empty window: the bookmark must not pass it."""
    data = tk.register(sandbox, room_data(570))
    sandbox.add_fault(Fault(path=PATH, kind="status", status=200, body=body, count=3, after=2))
    # one page at a time: the faults hit the third call three times (fetched ahead, they would be
    # spread over several windows' first pages, each retried successfully; see test_concurrency.py)
    config = make_config(sandbox.base_url, data, max_retries=2, max_concurrency=1)
    failed = run_tap(tmp_path, config)
    assert failed.returncode != 0
    line = next(line for line in failed.stderr.splitlines() if "gave up after 3 attempts" in line)
    assert "without a logininfo list" in line and f"serial={ROOM}" in line and "What to do" in line
    assert data.key not in failed.stderr
    calls = sandbox.calls_to(PATH)
    assert len(calls) == 2 + 3
    stuck_start, _ = window_of(calls[2])
    partition = failed.last_state["bookmarks"][LOGIN]["partitions"][0]
    # the bookmark stays at or before the window of the malformed answer
    assert datetime.fromisoformat(partition["replication_key_value"]).timestamp() <= stuck_start + 1

    sandbox.reset_calls()
    resumed = run_tap(tmp_path, config, state=failed.last_state)
    assert resumed.returncode == 0, resumed.stderr
    got = {identity(r) for r in failed.records(LOGIN) + resumed.records(LOGIN)}
    assert got == {identity(r) for r in data.entries[ROOM]}  # all 570


def test_talkcloud_a_passing_result_0_without_logininfo_is_retried_and_nothing_is_lost(sandbox, tmp_path):
    data = tk.register(sandbox, room_data(570))
    sandbox.add_fault(Fault(path=PATH, kind="status", status=200, body={"result": 0}, count=1, after=1))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    assert {identity(r) for r in run.records(LOGIN)} == {identity(r) for r in data.entries[ROOM]}


def test_talkcloud_page_1_without_uptablelist_is_retried_not_read_as_no_stage_users(sandbox, tmp_path):
    data = tk.register(sandbox, room_data(100))
    sandbox.add_fault(
        Fault(path=PATH, kind="status", status=200, body={"result": 0, "logininfo": []}, count=1)
    )
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    assert {identity(r) for r in run.records(STAGE)} == {identity(r) for r in data.stage[ROOM]}


@pytest.mark.parametrize("bounds", READINGS)
def test_talkcloud_entries_on_window_boundaries_arrive_once_under_every_bounds_reading(
    sandbox, tmp_path, bounds
):
    """Whether starttime/endtime are inclusive is not documented: each entry comes exactly once."""
    data = room_data(300)
    data.bounds = bounds
    split = P0 + timedelta(days=40)
    anchors = [P0 + k * STEP for k in range(4)] + [split, split + STEP, split + 2 * STEP]
    moments = {a + timedelta(seconds=o) for a in anchors for o in (-1, 0, 1)}
    for index, moment in enumerate(sorted(m for m in moments if P0 <= m < P_END)):
        data.add_entry(ROOM, moment, userid=f"7000000000{index:02d}", on_stage=True)
    tk.register(sandbox, data)
    first = run_tap(tmp_path, make_config(sandbox.base_url, data, end_date=split.isoformat()))
    assert first.returncode == 0, first.stderr
    second = run_tap(tmp_path, make_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    for stream, rows in ((LOGIN, data.entries[ROOM]), (STAGE, data.stage[ROOM])):
        got = sorted(identity(r) for r in first.records(stream) + second.records(stream))
        assert got == sorted(identity(r) for r in rows), stream  # every entry, each exactly once


def test_talkcloud_rows_without_identity_are_kept_under_distinct_stable_keys_with_one_warning(
    sandbox, tmp_path
):
    data = room_data(300)
    rows = data.entries[ROOM]
    for row in rows[5:9]:
        row["userid"] = ""
    for row in rows[20:23]:
        row.pop("entertimestamp")
        row["entertime"] = ""
    tk.register(sandbox, data)
    config = make_config(sandbox.base_url, data)
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    records = run.records(LOGIN)
    by_key = {r["entry_key"]: r for r in records}
    assert all(by_key) and len(by_key) == 300  # every entry kept, no key empty or shared
    (missing,) = warnings_about(run.stderr, "without userid")
    assert "4 row(s)" in missing and f"serial={ROOM}" in missing and "entry_key=content:" in missing
    # rows without a time match every range, so each window brings them again, under one key
    (no_time,) = warnings_about(run.stderr, "without entertimestamp and entertime")
    assert "entry_key=content:" in no_time
    again = run_tap(tmp_path, config)
    assert set(by_key) == {r["entry_key"] for r in again.records(LOGIN)}  # the same keys every run


def test_talkcloud_malformed_values_keep_the_row_with_nulls_and_one_warning_per_field(sandbox, tmp_path):
    data = room_data(200)
    rows = data.entries[ROOM]
    rows[3]["duration"] = "ten"
    rows[4]["duration"] = "1h"
    rows[5]["outtimestamp"] = "soon"
    rows[6]["outtimestamp"] = 10**20  # no date-time at all
    rows[7]["videotype"] = ["640*480"]
    tk.register(sandbox, data)
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = {identity(r): r for r in run.records(LOGIN)}
    assert len(records) == 200
    ten = records[identity(rows[3])]
    assert ten["duration"] == "ten" and ten["duration_seconds"] is None  # the raw value is kept
    assert records[identity(rows[5])]["outtimestamp"] is None
    assert records[identity(rows[6])]["outtime_utc"] is None
    assert records[identity(rows[7])]["videotype"] is None
    (duration,) = warnings_about(run.stderr, "unreadable duration")
    assert "2 row(s)" in duration and "'ten'" in duration and "entry_key=" in duration
    (out,) = warnings_about(run.stderr, "unreadable outtimestamp")
    assert "2 row(s)" in out
    assert len(warnings_about(run.stderr, "unreadable videotype")) == 1
    for record in records.values():
        assert record["outtimestamp"] is None or type(record["outtimestamp"]) is int


def test_talkcloud_codes_of_the_wrong_type_get_no_label_and_do_not_stop_the_run(sandbox, tmp_path):
    data = room_data(50)
    rows = data.entries[ROOM]
    rows[1]["terminal"] = {"os": "ios"}
    rows[2]["userroleid"] = ["2"]
    tk.register(sandbox, data)
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = run.records(LOGIN)
    assert len({r["entry_key"] for r in records}) == 50
    odd = [r for r in records if r["userid"] in (rows[1]["userid"], rows[2]["userid"])]
    assert all(r["terminal"] is None or isinstance(r["terminal"], str) for r in odd)
    assert len(warnings_about(run.stderr, "unreadable terminal")) == 1
    assert len(warnings_about(run.stderr, "unreadable userroleid")) == 1
