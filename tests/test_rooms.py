"""Rooms found, not typed (issue 12): list streams as parents of the viewer streams.

Through the real CLI against the sandbox: with empty id lists every viewer row of every listed
room arrives once; a second run reads only rooms that can have new data (calls counted per
room) and a room listed for the first time from ``start_date``; with ids given, the list
endpoint is not called.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone

from conftest import run_tap
from sandbox import Sandbox
from sandbox import mudu as mu
from sandbox import shangzhibo as sz
from sandbox import talkcloud as tk

UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=80)
LOGIN = "talkcloud_login_records"
ROOMS = "talkcloud_rooms"


def tk_identity(row: dict) -> tuple:
    return (row["serial"], row["userid"], int(row["entertimestamp"]), row["terminal"])


def tk_expected(data: tk.TalkcloudData, start: datetime, end: datetime, serials=None) -> Counter:
    low, high = int(start.timestamp()), int(end.timestamp())
    return Counter(
        tk_identity(row)
        for serial, rows in data.entries.items()
        if serials is None or serial in serials
        for row in rows
        if low <= row["entertimestamp"] < high
    )


def tk_data() -> tk.TalkcloudData:
    """Two rooms that ended weeks ago and one that runs on (its end is in the future)."""
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    data.add_room("111000111", 230, NOW - timedelta(days=60), NOW - timedelta(days=40), seed=1)
    data.add_room("222000222", 90, NOW - timedelta(days=50), NOW - timedelta(days=45), seed=2)
    data.add_room("333000333", 260, NOW - timedelta(days=20), NOW - timedelta(days=2), seed=3)
    data.room_times["333000333"] = (
        int((NOW - timedelta(days=20)).timestamp()),
        int((NOW + timedelta(days=30)).timestamp()),
    )
    return data


def tk_config(base_url: str, data: tk.TalkcloudData, end: datetime, **talkcloud) -> dict:
    return {
        "start_date": START.isoformat(),
        "end_date": end.isoformat(),
        "backoff_base_seconds": 0.05,
        "talkcloud": {"key": data.key, "base_url": base_url, "serials": [], "thirdroomids": [], **talkcloud},
    }


def calls_per_room(sandbox) -> Counter:
    return Counter(call.form().get("serial") for call in sandbox.calls_to(tk.PATH))


def test_talkcloud_empty_room_list_reads_every_listed_room_once(sandbox, tmp_path):
    data = tk.register(sandbox, tk_data())
    end = NOW - timedelta(days=1)
    run = run_tap(tmp_path, tk_config(sandbox.base_url, data, end))
    assert run.returncode == 0, run.stderr[-2000:]
    got = Counter(tk_identity(r) for r in run.records(LOGIN))
    assert got == tk_expected(data, START, end)
    assert max(got.values()) == 1
    assert {r["id"] for r in run.records(ROOMS)} == set(data.entries)
    assert len(sandbox.calls_to("/WebAPI/getroomlist")) == 1
    assert set(calls_per_room(sandbox)) == set(data.entries)
    assert "talkcloud_login_records of the rooms talkcloud_rooms lists" in run.stderr
    # viewer_sessions still gets one row per entry of every listed room (a list row is no session)
    sessions = run.records("viewer_sessions")
    assert len(sessions) == sum(got.values())
    assert {s["room_id"] for s in sessions} == set(data.entries)


def test_talkcloud_second_run_reads_only_rooms_that_can_have_new_data_and_new_rooms_from_start(
    sandbox, tmp_path
):
    data = tk.register(sandbox, tk_data())
    first_end = NOW - timedelta(days=1)
    first = run_tap(tmp_path, tk_config(sandbox.base_url, data, first_end))
    assert first.returncode == 0, first.stderr[-2000:]
    # New visits in the running room, and a room listed for the first time (ended long ago).
    for minutes in (30, 90, 400):
        data.add_entry("333000333", first_end + timedelta(minutes=minutes), userid=f"7700{minutes}")
    data.add_room("444000444", 40, NOW - timedelta(days=70), NOW - timedelta(days=65), seed=4)
    sandbox.reset_calls()
    second_end = NOW - timedelta(hours=3)
    second = run_tap(tmp_path, tk_config(sandbox.base_url, data, second_end), state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    per_room = calls_per_room(sandbox)
    assert set(per_room) == {"333000333", "444000444"}, per_room  # the two old rooms cost nothing
    assert per_room["333000333"] == 1  # one window of under 28 days, one page
    got = Counter(tk_identity(r) for r in second.records(LOGIN))
    expected = tk_expected(data, first_end, second_end, {"333000333"}) + tk_expected(
        data, START, second_end, {"444000444"}
    )
    assert got == expected
    assert "4 room(s) listed" in second.stderr and "2 read, 2 without new data skipped" in second.stderr


def test_talkcloud_rooms_given_never_call_the_room_list(sandbox, tmp_path):
    data = tk.register(sandbox, tk_data())
    end = NOW - timedelta(days=1)
    run = run_tap(tmp_path, tk_config(sandbox.base_url, data, end, serials=["111000111"]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert sandbox.calls_to("/WebAPI/getroom") == []
    assert run.records(ROOMS) == []
    assert set(calls_per_room(sandbox)) == {"111000111"}
    assert Counter(tk_identity(r) for r in run.records(LOGIN)) == tk_expected(data, START, end, {"111000111"})


# ----------------------------------------------------------------------------- Shangzhibo

VISITS = "shangzhibo_activity_visits"
ACTIVITIES = "shangzhibo_activities"
SZ_START = NOW - timedelta(days=40)


def sz_identity(row: dict) -> tuple:
    return (row["activity_id"], row["userId"], row["anonymousId"] or None, row["visitAt"])


def sz_expected(data: sz.ShangzhiboData, start: datetime, end: datetime, ids=None) -> Counter:
    return Counter(
        (activity_id, v["userId"], v["anonymousId"] or None, sz.parse_z(v["visitAt"]).isoformat())
        for activity_id, visits in data.visits.items()
        if ids is None or activity_id in ids
        for v in visits
        if start <= sz.parse_z(v["visitAt"]) < end
    )


def sz_data() -> sz.ShangzhiboData:
    """Three activities over 20 days ending 10 days ago; the third runs on (ends in the future)."""
    data = sz.ShangzhiboData(
        activities={"5001": 150, "5002": 60, "5003": 120},
        users={},
        period_start=NOW - timedelta(days=30),
        period_end=NOW - timedelta(days=20),
    )
    data.activity_times["5003"] = (NOW - timedelta(days=30), NOW + timedelta(days=5))
    return data


def sz_config(base_url: str, data: sz.ShangzhiboData, end: datetime, **shangzhibo) -> dict:
    return {
        "start_date": SZ_START.isoformat(),
        "end_date": end.isoformat(),
        "backoff_base_seconds": 0.05,
        "shangzhibo": {"access_token": data.token, "base_url": base_url, **shangzhibo},
    }


def calls_per_activity(sandbox) -> Counter:
    return Counter(call.path.split("/")[3] for call in sandbox.calls_to("/stats/user-visits"))


def sz_records(run) -> Counter:
    return Counter(
        (
            r["activity_id"],
            r["userId"],
            r["anonymousId"] or None,
            datetime.fromisoformat(r["visitAt"]).isoformat(),
        )
        for r in run.records(VISITS)
    )


def test_shangzhibo_empty_activity_list_reads_every_listed_activity_once(sandbox, tmp_path):
    data = sz.register(sandbox, sz_data())
    end = NOW - timedelta(days=1)
    run = run_tap(tmp_path, sz_config(sandbox.base_url, data, end))
    assert run.returncode == 0, run.stderr[-2000:]
    got = sz_records(run)
    assert got == sz_expected(data, SZ_START, end) and max(got.values()) == 1
    assert {r["id"] for r in run.records(ACTIVITIES)} == set(data.visits)
    assert [c.path for c in sandbox.calls_to("/api/activity") if c.path == "/api/activity"] == [
        "/api/activity"
    ]


def test_shangzhibo_second_run_reads_only_activities_that_can_have_new_visits(sandbox, tmp_path):
    data = sz.register(sandbox, sz_data())
    first_end = NOW - timedelta(days=1)
    first = run_tap(tmp_path, sz_config(sandbox.base_url, data, first_end))
    assert first.returncode == 0, first.stderr[-2000:]
    for hours in (2, 5, 9):
        data.add_visit("5003", first_end + timedelta(hours=hours), 4400000 + hours)
    sandbox.reset_calls()
    second_end = NOW - timedelta(hours=3)
    second = run_tap(tmp_path, sz_config(sandbox.base_url, data, second_end), state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    assert calls_per_activity(sandbox) == Counter({"5003": 1})  # one window, one page; 5001/5002 none
    assert sz_records(second) == sz_expected(data, first_end, second_end, {"5003"})


def test_shangzhibo_activities_given_never_call_the_activity_list(sandbox, tmp_path):
    data = sz.register(sandbox, sz_data())
    end = NOW - timedelta(days=1)
    run = run_tap(tmp_path, sz_config(sandbox.base_url, data, end, activity_ids=["5002"]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert [c for c in sandbox.calls if c.path == "/api/activity"] == []
    assert run.records(ACTIVITIES) == []
    assert set(calls_per_activity(sandbox)) == {"5002"}
    assert sz_records(run) == sz_expected(data, SZ_START, end, {"5002"})


# ----------------------------------------------------------------------------------- Mudu

RECORDS = "mudu_user_records"
CHANNELS = "mudu_channels"
MUDU_DAY = {"start_date": "2026-09-20T00:00:00+08:00", "end_date": "2026-09-21T00:00:00+08:00"}


def mudu_box():
    box = Sandbox(now=datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    box.start()
    return box


def mudu_config(box: Sandbox, data: mu.MuduData, **mudu) -> dict:
    return {
        **MUDU_DAY,
        "backoff_base_seconds": 0.01,
        "mudu": {**mu.tap_config(data, box.base_url), "channel_ids": [], **mudu},
    }


def mudu_keys(run) -> Counter:
    return Counter((r["channel_id"], r["record_id"]) for r in run.records(RECORDS))


def mudu_expected(data: mu.MuduData, channels=None) -> Counter:
    return Counter(
        (c, r["record_id"])
        for c in data.records
        if channels is None or c in channels
        for r in data.matching(c)
    )


def test_mudu_empty_channel_list_reads_every_channel_once_and_lists_once_a_day(tmp_path, private_call_ledger):
    box = mudu_box()
    try:
        data = mu.register(box, mu.MuduData(channels={"7101": 150, "7102": 60, "7103": 90}))
        first = run_tap(tmp_path, mudu_config(box, data))
        assert first.returncode == 0, first.stderr[-2000:]
        assert mudu_keys(first) == mudu_expected(data) and max(mudu_keys(first).values()) == 1
        assert {r["id"] for r in first.records(CHANNELS)} == set(data.records)
        assert len(box.calls_to("/v1/activities")) == 1
        # one list call and 2 + 1 + 1 pages of records, all of the same day's ten
        assert data.calls_counted(data.token, date(2026, 11, 20)) == 5
        assert "3 room(s) listed with 1 call(s) (the daily budget's calls)" in first.stderr
        # Later the same day: the list kept in the state is reused, no call spent on it.
        box.reset_calls()
        again = run_tap(tmp_path, mudu_config(box, data), state=first.last_state)
        assert again.returncode == 0, again.stderr[-2000:]
        assert box.calls_to("/v1/activities") == []
        assert "3 room(s) listed with 0 call(s) (today's channel list reused from the state)" in again.stderr
    finally:
        box.stop()


def test_mudu_list_never_takes_more_than_half_the_calls_left_when_a_list_is_kept(
    tmp_path, private_call_ledger
):
    box = mudu_box()
    try:
        channels = {str(8000 + i): 3 for i in range(95)}  # four pages of 30
        data = mu.register(box, mu.MuduData(channels=channels, daily_quota=10))
        first = run_tap(tmp_path, mudu_config(box, data, daily_call_limit=10))
        assert first.returncode == 0, first.stderr[-2000:]
        assert len(box.calls_to("/v1/activities")) == 4  # no list kept yet: the list first
        assert len(box.calls_to("/userRecords")) == 6  # the rest of the day's ten on channels
        # Next day: a list is kept, so the new list may take at most half of the ten.
        box.advance_clock(days=1)
        state = first.last_state
        for entry in state["bookmarks"][RECORDS]["call_ledger"].values():
            entry["day"] = "2000-01-01"  # the tap's day is its own clock's: make both yesterday's
        state["bookmarks"][CHANNELS]["channel_list"]["day"] = "2000-01-01"
        private_call_ledger.unlink()
        box.reset_calls()
        second = run_tap(tmp_path, mudu_config(box, data, daily_call_limit=10), state=state)
        assert second.returncode == 0, second.stderr[-2000:]
        assert len(box.calls_to("/v1/activities")) == 4  # a complete list fits in 5
        assert len(box.calls_to("/userRecords")) == 6
        # Channels never read come first: day 2 reads other channels than day 1.
        read = {c.path.split("/")[-2] for c in box.calls_to("/userRecords")}
        day1 = {k[0] for k in mudu_keys(first)}
        assert len(read) == 6 and not (read & day1), (read, day1)
    finally:
        box.stop()


def test_mudu_channels_given_never_call_the_channel_list(tmp_path, private_call_ledger):
    box = mudu_box()
    try:
        data = mu.register(box, mu.MuduData(channels={"7101": 150, "7102": 60}))
        run = run_tap(tmp_path, mudu_config(box, data, channel_ids=["7102"]))
        assert run.returncode == 0, run.stderr[-2000:]
        assert box.calls_to("/v1/activities") == [] and run.records(CHANNELS) == []
        assert mudu_keys(run) == mudu_expected(data, {"7102"})
    finally:
        box.stop()


def test_connection_test_with_empty_room_lists_checks_the_lists_and_spends_no_mudu_call(
    sandbox, tmp_path, private_call_ledger
):
    data = tk.register(sandbox, tk_data())
    mudu = mu.register(sandbox, mu.MuduData(channels={"7101": 10}))
    config = tk_config(sandbox.base_url, data, NOW - timedelta(days=1))
    config["mudu"] = {**mu.tap_config(mudu, sandbox.base_url), "channel_ids": []}
    run = run_tap(tmp_path, config, extra_args=["--test"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(sandbox.calls_to("/WebAPI/getroomlist")) == 1
    assert sandbox.calls_to("/api/v1/activities") == [] and sandbox.calls_to("/userRecords") == []


def test_mudu_list_longer_than_half_the_calls_left_continues_next_run_and_the_kept_list_is_used(
    tmp_path, private_call_ledger
):
    box = mudu_box()
    try:
        channels = {str(8000 + i): 3 for i in range(95)}  # four pages of 30
        data = mu.register(box, mu.MuduData(channels=channels, daily_quota=6))
        config = mudu_config(box, data, daily_call_limit=6)

        def next_day(state: dict) -> dict:
            box.advance_clock(days=1)
            for entry in state["bookmarks"][RECORDS]["call_ledger"].values():
                entry["day"] = "2000-01-01"
            state["bookmarks"][CHANNELS]["channel_list"]["day"] = "2000-01-01"
            private_call_ledger.unlink()
            box.reset_calls()
            return state

        first = run_tap(tmp_path, config)
        assert first.returncode == 0, first.stderr[-2000:]
        assert len(box.calls_to("/v1/activities")) == 4 and len(box.calls_to("/userRecords")) == 2
        second = run_tap(tmp_path, config, state=next_day(first.last_state))
        assert second.returncode == 0, second.stderr[-2000:]
        # half of the six calls on the list (pages 1-3), the rest on channels from the kept list
        assert [c.query.get("p") for c in box.calls_to("/v1/activities")] == ["1", "2", "3"]
        assert len(box.calls_to("/userRecords")) == 3
        assert "list not finished, continued at page 4 next run" in second.stderr
        assert "95 room(s) listed" in second.stderr
        third = run_tap(tmp_path, config, state=next_day(second.last_state))
        assert third.returncode == 0, third.stderr[-2000:]
        assert [c.query.get("p") for c in box.calls_to("/v1/activities")] == ["4"]
        assert len(box.calls_to("/userRecords")) == 5
        read = [k[0] for run in (first, second, third) for k in mudu_keys(run)]
        assert len(set(read)) == 10  # ten different channels over three days, none twice
    finally:
        box.stop()
