"""Concurrent paging (``max_concurrency``): the output of a sequential run, sooner.

Pages a window's total makes known are sent ahead in worker threads; the records, STATE and
derived rows still come out page by page, in the order and with the content of a run at
``max_concurrency`` 1. These tests run the real CLI against the sandbox over HTTP.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import run_tap, run_tap_until_killed
from sandbox import Fault, Sandbox, hostile
from sandbox import mudu as md
from sandbox import nuoyun as ny
from sandbox import shangzhibo as szb
from sandbox import talkcloud as tk
from sandbox.output import comparable
from sandbox.server import Response

NUOYUN = "nuoyun_user_durations"
#: Talk-cloud keeps a year of records: a period that ended 15 days ago.
START_TK = (datetime.now(timezone.utc) - timedelta(days=90)).replace(
    hour=0, minute=0, second=0, microsecond=0
)
START, END = "2026-08-01T00:00:00+08:00", "2026-11-05T08:00:00+08:00"


def nuoyun_config(base_url: str, data: ny.NuoyunData, **overrides: object) -> dict:
    config = {"start_date": START, "end_date": END, "backoff_base_seconds": 0.05}
    config["nuoyun"] = ny.tap_config(data, base_url)
    config.update(overrides)
    return config


def shangzhibo_september(box: Sandbox, data: szb.ShangzhiboData, concurrency: int) -> dict:
    """Shangzhibo's settings for September 2026 (five 7-day windows) at ``concurrency``."""
    return {
        "start_date": "2026-09-01T00:00:00Z",
        "end_date": "2026-10-01T00:00:00Z",
        "max_concurrency": concurrency,
        "shangzhibo": szb.tap_config(data, box.base_url),
    }


def singer_output(run) -> list[tuple]:
    """Every RECORD and STATE in order, less the clock readings (``sandbox.output``)."""
    return comparable(run.messages)


def keys_of(records: list[dict]) -> set[tuple[int, int]]:
    return {(r["room_id"], r["wechat_user_space_id"]) for r in records}


@pytest.mark.parametrize("rows", [5_000, 4_321])
def test_concurrent_run_writes_exactly_what_a_sequential_run_writes(tmp_path, rows):
    """Same records, same STATEs, same order, same derived viewer_sessions; each page asked once."""
    outputs, pages = {}, {}
    for concurrency in (1, 4):
        with Sandbox(latency_s=0.02) as box:
            data = ny.register(box, ny.NuoyunData(rows=rows))
            config = nuoyun_config(box.base_url, data, max_concurrency=concurrency)
            run = run_tap(tmp_path, config)
            assert run.returncode == 0, run.stderr[-3000:]
            outputs[concurrency] = singer_output(run)
            pages[concurrency] = sorted(call.json()["page"] for call in box.calls_to(ny.PATH))
            peak = box.peak_in_flight(ny.PATH)
            assert peak <= concurrency
            if concurrency > 1:
                assert peak > 1  # pages really were in flight together
    assert outputs[4] == outputs[1]
    assert pages[4] == pages[1] == list(range(1, math.ceil(rows / 500) + 1))
    assert any(kind == "RECORD" and entry == "viewer_sessions" for kind, entry, *_ in outputs[4])


def test_no_state_before_the_records_of_its_pages(tmp_path):
    """Each STATE's next page is exactly the records written before it: resume-at-next-page holds."""
    with Sandbox(latency_s=0.01) as box:
        data = ny.register(box, ny.NuoyunData(rows=6_000))
        run = run_tap(tmp_path, nuoyun_config(box.base_url, data, max_concurrency=4))
        assert run.returncode == 0, run.stderr[-3000:]
    written = 0
    checked = 0
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == NUOYUN:
            written += 1
        elif message["type"] == "STATE":
            progress = message["value"]["bookmarks"].get(NUOYUN, {}).get("progress")
            if progress:
                assert written == (progress["next_page"] - 1) * 500 == progress["frontier"]
                checked += 1
    assert checked == 11  # after pages 1..11 of 12


def test_killed_concurrent_run_resumes_at_its_next_page_and_loses_nothing(tmp_path):
    with Sandbox(latency_s=0.03) as box:
        data = ny.register(box, ny.NuoyunData(rows=5_000))
        config = nuoyun_config(box.base_url, data, max_concurrency=4)
        killed = run_tap_until_killed(tmp_path, config, lambda states: len(states) == 4)
        progress = killed.states[-1]["bookmarks"][NUOYUN]["progress"]
        written = len(killed.records(NUOYUN))
        assert written == (progress["next_page"] - 1) * 500 and 1 < progress["next_page"] < 10
        # The killed run's pages fetched ahead are still being answered (30 ms each): count them
        # as its calls, not the rerun's.
        time.sleep(0.2)
        while box.in_flight(ny.PATH):
            time.sleep(0.01)
        box.reset_calls()
        rerun = run_tap(tmp_path, config, state=killed.states[-1])
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        asked = sorted(call.json()["page"] for call in box.calls_to(ny.PATH))
        assert asked == list(range(progress["next_page"], 11))  # never a page before the saved one
    assert keys_of(killed.records(NUOYUN)) | keys_of(rerun.records(NUOYUN)) == data.keys


def test_a_page_that_keeps_failing_stops_the_run_at_its_turn_with_one_line(tmp_path):
    """Every call after the first fails: the records of page 1, then one line; the state resumes at 2."""
    with Sandbox() as box:
        data = ny.register(box, ny.NuoyunData(rows=3_000))
        box.add_fault(Fault(path=ny.PATH, kind="status", status=503, count=10_000, after=1))
        config = nuoyun_config(box.base_url, data, max_concurrency=4, max_retries=1)
        failed = run_tap(tmp_path, config)
        assert failed.returncode != 0
        assert len(failed.records(NUOYUN)) == 500
        assert failed.last_state["bookmarks"][NUOYUN]["progress"]["next_page"] == 2
        errors = [line for line in failed.stderr.splitlines() if "gave up after 2 attempts" in line]
        assert len(errors) == 1 and "What to do" in errors[0]
        assert "Traceback" not in failed.stderr
        box.faults.clear()
        resumed = run_tap(tmp_path, config, state=failed.last_state)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert keys_of(failed.records(NUOYUN)) | keys_of(resumed.records(NUOYUN)) == data.keys


def test_rows_that_move_mid_run_are_not_lost_and_cost_at_most_the_pages_in_flight(tmp_path):
    """40 viewers come back after page 3: pages fetched ahead are dropped, nothing is skipped."""
    calls = {}
    for concurrency in (1, 4):
        with Sandbox() as box:
            data = ny.register(box, ny.NuoyunData(rows=5_000, move_after_page=3, move_count=40))
            config = nuoyun_config(box.base_url, data, max_concurrency=concurrency)
            run = run_tap(tmp_path, config)
            assert run.returncode == 0, run.stderr[-3000:]
            assert data.keys - set(data.moved) <= keys_of(run.records(NUOYUN))
            assert "data.total fell from 5000 to 4960" in run.stderr
            calls[concurrency] = len(box.calls_to(ny.PATH))
    assert calls[1] <= calls[4] <= calls[1] + 3  # at most max_concurrency - 1 pages dropped


def test_shangzhibo_windows_read_concurrently_give_the_sequential_output(tmp_path):
    outputs = {}
    for concurrency in (1, 3):
        with Sandbox(latency_s=0.01) as box:
            data = szb.register(box, szb.ShangzhiboData(activities={"10024069": 1234}, users={}))
            run = run_tap(tmp_path, shangzhibo_september(box, data, concurrency))
            assert run.returncode == 0, run.stderr[-3000:]
            outputs[concurrency] = singer_output(run)
            assert box.peak_in_flight("/stats/user-visits") <= concurrency
            if concurrency > 1:
                assert box.peak_in_flight("/stats/user-visits") > 1  # later windows' first pages went along
    assert outputs[3] == outputs[1]


def test_talkcloud_windows_read_concurrently_give_the_sequential_output_and_stage_users(tmp_path):
    """No total to page ahead by, but the next windows' first pages (where stage users come) are."""
    outputs = {}
    for concurrency in (1, 4):
        with Sandbox(latency_s=0.01) as box:
            data = tk.TalkcloudData(rooms={}, thirdroomids={})
            data.add_room("500100200", 1030, START_TK, START_TK + timedelta(days=75), seed=11)
            tk.register(box, data)
            config = {
                "start_date": START_TK.isoformat(),
                "end_date": (START_TK + timedelta(days=75)).isoformat(),
                "max_concurrency": concurrency,
                "talkcloud": {**tk.tap_config(data, box.base_url), "serials": ["500100200"]},
            }
            run = run_tap(tmp_path, config)
            assert run.returncode == 0, run.stderr[-3000:]
            outputs[concurrency] = singer_output(run)
            assert box.peak_in_flight(tk.PATH) <= concurrency
            if concurrency > 1:
                assert box.peak_in_flight(tk.PATH) > 1
    assert outputs[4] == outputs[1]
    assert any(kind == "RECORD" and entry == "talkcloud_stage_users" for kind, entry, *_ in outputs[4])


def test_mudu_reads_one_page_at_a_time_whatever_max_concurrency_says(tmp_path):
    with Sandbox(latency_s=0.02) as box:
        data = md.register(box, md.MuduData(channels={"263218": 450}, idle_share=0))
        config = {
            "start_date": "2026-08-01T00:00:00+08:00",
            "end_date": "2026-11-05T00:00:00+08:00",
            "max_concurrency": 8,
            "mudu": md.tap_config(data, box.base_url),
        }
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(run.records("mudu_user_records")) == 450
        assert len(box.calls_to("/userRecords")) == 5  # ceil(450 / 100), none fetched ahead
        assert box.peak_in_flight("/userRecords") == 1


def test_a_stopped_run_does_not_wait_for_or_retry_pages_fetched_ahead(tmp_path):
    """Page 2 is refused (401) while pages 3-5, fetched ahead, are told to wait 120 s: the run
    ends at once with page 2's line, and no page is asked again after the stop."""

    def answer(exchange: hostile.Exchange) -> Response:
        page = exchange.request.json()["page"]
        if page == 2:
            return Response(401, {"code": 401, "msg": "token expired", "data": None})
        if page > 2:
            return Response(503, {"message": "busy"}, {"Retry-After": "120"})
        return exchange.real()

    with Sandbox(latency_s=0.05) as box:
        data = ny.register(box, ny.NuoyunData(rows=3_000))
        hostile.install(
            box, hostile.Rule("page-2-refused", answer, calls=hostile.every, providers=("nuoyun",))
        )
        started = time.monotonic()
        run = run_tap(tmp_path, nuoyun_config(box.base_url, data, max_concurrency=4), timeout=100)
        took = time.monotonic() - started
        time.sleep(0.5)  # anything still sent after the stop would be logged by now
        pages = [call.json()["page"] for call in box.calls_to(ny.PATH)]
    assert run.returncode != 0
    assert "token expired" in run.stderr and "Traceback" not in run.stderr
    assert took < 30  # not 120 s for pages nobody will read
    assert sorted(pages) == [1, 2, 3, 4, 5]  # each asked once, none retried after the stop
    assert len(run.records(NUOYUN)) == 500


def test_default_concurrency_follows_each_providers_documented_limit(tmp_path):
    """Without max_concurrency: Nuoyun (1,000 calls per 10 s documented) up to 8, Shangzhibo 4."""
    with Sandbox(latency_s=0.05) as box:
        data = ny.register(box, ny.NuoyunData(rows=10_000))
        szb_data = szb.register(box, szb.ShangzhiboData(activities={"10024069": 3000}, users={}))
        config = nuoyun_config(box.base_url, data)
        config["shangzhibo"] = szb.tap_config(szb_data, box.base_url)
        config["start_date"], config["end_date"] = "2026-08-01T00:00:00Z", "2026-10-01T00:00:00Z"
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr[-3000:]
        assert 4 < box.peak_in_flight(ny.PATH) <= 8
        assert 1 < box.peak_in_flight("/stats/user-visits") <= 4


# ------------------------------------------------------------- partitions read ahead

#: Rooms of 0 to 5 pages over 40 days; each room's window holds rows 0-20 days, then 20-40.
TK_ROOMS = {
    "500100201": 700,
    "500100202": 240,
    "500100203": 0,
    "500100204": 398,
    "500100205": 802,
    "500100206": 120,
    "500100207": 460,
    "500100208": 20,
}


def talkcloud_rooms(rooms: dict[str, int]) -> tk.TalkcloudData:
    data = tk.TalkcloudData(rooms={}, thirdroomids={})
    for index, (serial, count) in enumerate(rooms.items()):
        data.add_room(serial, count, START_TK, START_TK + timedelta(days=40), seed=index)
    return data


def talkcloud_rooms_config(base_url: str, data: tk.TalkcloudData, days: int, **overrides: object) -> dict:
    config = {
        "start_date": START_TK.isoformat(),
        "end_date": (START_TK + timedelta(days=days)).isoformat(),
        "backoff_base_seconds": 0.05,
        "talkcloud": tk.tap_config(data, base_url),
    }
    config.update(overrides)
    return config


def talkcloud_pages(box: Sandbox) -> list[tuple[str, str, str]]:
    """Every Talk-cloud page asked: room, window start, page."""
    return [
        (f.get("serial", ""), f.get("starttime", ""), f.get("page", ""))
        for f in (call.form() for call in box.calls_to(tk.PATH))
    ]


def test_talkcloud_rooms_read_ahead_give_the_sequential_output_and_ask_each_page_once(tmp_path):
    """Eight rooms of 0-5 pages, read from nothing and then from the first run's state: while a
    room's last pages are read, the next rooms' first pages are on their way; the messages are
    those of a sequential run, and no page is asked twice."""
    outputs, asked = {}, {}
    for concurrency in (1, 4):
        with Sandbox(latency_s=0.02) as box:
            data = talkcloud_rooms(TK_ROOMS)
            tk.register(box, data)
            first = run_tap(
                tmp_path, talkcloud_rooms_config(box.base_url, data, 20, max_concurrency=concurrency)
            )
            assert first.returncode == 0, first.stderr[-3000:]
            config = talkcloud_rooms_config(box.base_url, data, 40, max_concurrency=concurrency)
            second = run_tap(tmp_path, config, state=first.last_state)
            assert second.returncode == 0, second.stderr[-3000:]
            outputs[concurrency] = (singer_output(first), singer_output(second))
            pages = talkcloud_pages(box)
            assert len(pages) == len(set(pages))  # each page asked once
            asked[concurrency] = sorted(pages)
            peak = box.peak_in_flight(tk.PATH)
            assert peak <= concurrency
            if concurrency > 1:
                # One window per room and no total: a room has one page in flight at a time, so
                # these were several rooms at once.
                assert peak > 1
    assert outputs[4] == outputs[1]
    assert asked[4] == asked[1]
    assert sum(1 for kind, stream, *_ in outputs[4][0] if stream == "talkcloud_login_records") > 0


def test_shangzhibo_activities_read_ahead_give_the_sequential_output_and_ask_each_page_once(tmp_path):
    """Six activities of 0-3 pages in five 7-day windows each, and four users read newest first:
    the next activities' (users') first pages go along with an activity's last window (a user's
    last page), and the messages are those of a sequential run."""
    activities = {
        "10024001": 30,
        "10024002": 260,
        "10024003": 0,
        "10024004": 95,
        "10024005": 140,
        "10024006": 12,
    }
    outputs, asked = {}, {}
    for concurrency in (1, 4):
        with Sandbox(latency_s=0.02) as box:
            users = {15460259: 40, 15460260: 1200, 15460261: 0, 15460262: 7}
            data = szb.register(box, szb.ShangzhiboData(activities=activities, users=users))
            run = run_tap(tmp_path, shangzhibo_september(box, data, concurrency))
            assert run.returncode == 0, run.stderr[-3000:]
            outputs[concurrency] = singer_output(run)
            pages = [
                (c.path, c.query.get("startedAt"), c.query.get("page"))
                for c in box.calls_to("/stats/user-visits")
            ]
            pages += [(c.path, None, c.query.get("page")) for c in box.calls_to("/stats/visits")]
            assert len(pages) == len(set(pages))  # each page asked once
            asked[concurrency] = sorted(pages, key=str)
            for fragment in ("/stats/user-visits", "/stats/visits"):
                assert box.peak_paths_in_flight(fragment) <= concurrency
                if concurrency > 1:
                    assert box.peak_paths_in_flight(fragment) > 1  # several activities (users) at once
    assert outputs[4] == outputs[1]
    assert asked[4] == asked[1]


def test_a_retry_of_a_page_fetched_ahead_names_its_own_room(tmp_path):
    """Room B's first page, fetched ahead while room A's second page is slow, fails once: the
    retry warning names room B, not room A (the one being read)."""
    failed: list[str] = []

    def answer(exchange: hostile.Exchange) -> Response:
        form = exchange.request.form()
        if form.get("serial") == "500100202" and not failed:
            failed.append("once")
            return Response(503, {"result": 503, "msg": "busy"})
        if form.get("serial") == "500100201" and form.get("page") == "2":
            time.sleep(1.0)  # the reading thread waits on room A while room B is retried
        return exchange.real()

    with Sandbox(latency_s=0.02) as box:
        data = talkcloud_rooms({"500100201": 600, "500100202": 50})
        tk.register(box, data)
        hostile.install(
            box, hostile.Rule("room-b-busy", answer, calls=hostile.every, providers=("talkcloud",))
        )
        run = run_tap(tmp_path, talkcloud_rooms_config(box.base_url, data, 20, max_concurrency=4))
    assert run.returncode == 0, run.stderr[-3000:]
    retries = [line for line in run.stderr.splitlines() if "attempt 1 failed" in line]
    assert len(retries) == 1 and "serial=500100202" in retries[0], retries
    assert "serial=500100201" not in retries[0]


def test_a_missing_room_among_rooms_read_ahead_fails_alone_and_the_others_are_read(tmp_path):
    """Room 500100299 does not exist (result 4007): at concurrency 4 its first page comes ahead,
    its failure is its own one line at its turn, and every other room is read as sequentially."""
    rooms = {"500100201": 260, "500100202": 40, "500100204": 90, "500100205": 410}
    outputs = {}
    for concurrency in (1, 4):
        with Sandbox(latency_s=0.02) as box:
            data = talkcloud_rooms(rooms)
            tk.register(box, data)
            config = talkcloud_rooms_config(box.base_url, data, 20, max_concurrency=concurrency)
            config["talkcloud"]["serials"] = ["500100201", "500100202", "500100299", "500100204", "500100205"]
            run = run_tap(tmp_path, config)
            pages = talkcloud_pages(box)
        assert run.returncode != 0
        assert len(pages) == len(set(pages))
        errors = [line for line in run.stderr.splitlines() if "result 4007" in line]
        assert errors and all("serial=500100299" in line for line in errors), errors
        assert "Traceback" not in run.stderr
        assert {r["serial"] for r in run.records("talkcloud_login_records")} == set(rooms)
        outputs[concurrency] = singer_output(run)
    assert outputs[4] == outputs[1]


def test_a_run_stopped_at_one_room_sends_nothing_more_for_the_rooms_fetched_ahead(tmp_path):
    """Room C's answer refuses the key (the run stops there) while rooms D and E, fetched ahead,
    are told to wait 120 s: the run ends at once, and no page is asked twice."""

    def answer(exchange: hostile.Exchange) -> Response:
        serial = exchange.request.form().get("serial")
        if serial == "500100203":
            return Response(200, {"result": 4109, "msg": "企业key错误"})
        if serial in ("500100204", "500100205"):
            return Response(503, {"result": 503, "msg": "busy"}, {"Retry-After": "120"})
        return exchange.real()

    rooms = {f"50010020{n}": 50 for n in range(1, 7)}
    with Sandbox(latency_s=0.05) as box:
        data = talkcloud_rooms(rooms)
        tk.register(box, data)
        hostile.install(
            box, hostile.Rule("room-c-refused", answer, calls=hostile.every, providers=("talkcloud",))
        )
        started = time.monotonic()
        run = run_tap(
            tmp_path, talkcloud_rooms_config(box.base_url, data, 20, max_concurrency=4), timeout=100
        )
        took = time.monotonic() - started
        time.sleep(0.5)  # anything still sent after the stop would be logged by now
        pages = talkcloud_pages(box)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    refused = [line for line in run.stderr.splitlines() if "result 4109" in line]
    assert refused and "serial=500100203" in refused[0]
    assert took < 30  # not 120 s for rooms nobody will read
    assert len(pages) == len(set(pages))  # none retried after the stop
    assert {serial for serial, _, _ in pages} <= set(rooms)
    assert {r["serial"] for r in run.records("talkcloud_login_records")} == {"500100201", "500100202"}


def room_in_flight(state: dict, serial: str) -> bool:
    """Whether the login records of room ``serial`` have a window in flight past page 1 in ``state``."""
    partitions = state.get("bookmarks", {}).get("talkcloud_login_records", {}).get("partitions", [])
    return any(
        p.get("context", {}).get("serial") == serial and p.get("progress", {}).get("next_page", 1) > 1
        for p in partitions
    )


def test_rooms_read_ahead_after_a_kill_resume_like_a_sequential_run_and_lose_nothing(tmp_path):
    """Killed while the fifth room is between its pages (rooms after it fetched ahead and lost):
    resumed at 4, the run writes what a resume at 1 writes (four rooms with nothing left, one
    resumed at its next page, three from the start); nothing is lost."""
    with Sandbox(latency_s=0.02) as box:
        data = talkcloud_rooms(TK_ROOMS)
        tk.register(box, data)
        config = talkcloud_rooms_config(box.base_url, data, 40, max_concurrency=4)
        killed = run_tap_until_killed(
            tmp_path, config, lambda states: room_in_flight(states[-1], "500100205")
        )
    saved = killed.states[-1]
    assert room_in_flight(saved, "500100205")
    outputs, records = {}, {}
    for concurrency in (1, 4):
        with Sandbox(latency_s=0.02) as box:
            data = talkcloud_rooms(TK_ROOMS)
            tk.register(box, data)
            config = talkcloud_rooms_config(box.base_url, data, 40, max_concurrency=concurrency)
            resumed = run_tap(tmp_path, config, state=saved)
            assert resumed.returncode == 0, resumed.stderr[-3000:]
            pages = talkcloud_pages(box)
            assert len(pages) == len(set(pages))
            if concurrency > 1:
                assert box.peak_in_flight(tk.PATH) > 1
            room, next_page = in_flight_room(saved)
            assert next(page for serial, _, page in pages if serial == room) == str(next_page)
        outputs[concurrency] = singer_output(resumed)
        records[concurrency] = resumed.records("talkcloud_login_records")
    assert outputs[4] == outputs[1]
    keys = {r["entry_key"] for r in killed.records("talkcloud_login_records") + records[4]}
    assert len(keys) == sum(len(rows) for rows in data.entries.values())


def in_flight_room(state: dict) -> tuple[str, int]:
    """The room with a window in flight and its next page."""
    partitions = state["bookmarks"]["talkcloud_login_records"]["partitions"]
    return next(
        (p["context"]["serial"], p["progress"]["next_page"])
        for p in partitions
        if p.get("progress", {}).get("next_page", 1) > 1
    )


def test_nuoyun_user_partitions_read_ahead_give_the_sequential_output(tmp_path):
    """Six ``wechat_user_space_ids`` partitions of a page each: their first pages go together,
    and the messages are those of a sequential run (each page asked once)."""
    outputs, asked = {}, {}
    for concurrency in (1, 8):
        with Sandbox(latency_s=0.02) as box:
            data = ny.register(box, ny.NuoyunData(rows=600))
            users = sorted({user for _, user in data.keys})[:6]
            config = nuoyun_config(box.base_url, data, max_concurrency=concurrency)
            config["nuoyun"]["wechat_user_space_ids"] = users
            run = run_tap(tmp_path, config)
            assert run.returncode == 0, run.stderr[-3000:]
            outputs[concurrency] = singer_output(run)
            pages = [(c.json()["wechat_user_space_id"], c.json()["page"]) for c in box.calls_to(ny.PATH)]
            assert len(pages) == len(set(pages)) == len(users)
            asked[concurrency] = sorted(pages)
            if concurrency > 1:
                assert 1 < box.peak_in_flight(ny.PATH) <= concurrency  # several users at once
    assert outputs[8] == outputs[1]
    assert asked[8] == asked[1]
    assert any(kind == "RECORD" and entry == NUOYUN for kind, entry, *_ in outputs[8])
