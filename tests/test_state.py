"""A saved state the tap cannot use is rejected before any call (issue 8 item 11).

Through the real CLI with every provider on the sandbox: a defect in one stream's state
stops the run before any provider is called (on Mudu: not one of its 10 calls spent), in
one line naming the stream and partition and saying how to reset it; the failing run emits
no STATE, so the bad state is not saved again as if it were fine.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_tap
from sandbox import Sandbox
from sandbox.__main__ import build, tap_settings
from tap_livestream_viewers import state as saved_state
from tap_livestream_viewers.providers.nuoyun import NuoyunUserDurationsStream

START, END = "2026-09-01T00:00:00+08:00", "2026-10-01T00:00:00+08:00"
WINDOW = {"window_start": "2026-09-01T00:00:00+08:00", "window_end": "2026-09-08T00:00:00+08:00"}


@pytest.fixture(scope="module")
def everything() -> Iterator[tuple[Sandbox, dict]]:
    box, datasets = build()
    base_url = box.start()
    try:
        yield box, {"start_date": START, "end_date": END, **tap_settings(datasets, base_url)}
    finally:
        box.stop()


def partition(stream: str, context: dict, **values: object) -> dict:
    return {"bookmarks": {stream: {"partitions": [{"context": context, **values}]}}}


MUDU = ("mudu_user_records", {"channel_id": "263218"})
SZB_USERS = ("shangzhibo_user_visits", {"agent_id": 105131, "user_id": 15460259})
TALKCLOUD = ("talkcloud_login_records", {"serial": "864152130"})

BAD_STATES = [
    (
        "next_page_negative",
        partition(*MUDU, progress={**WINDOW, "next_page": -3, "page_size": 100}),
        "mudu_user_records channel_id=263218: progress.next_page is -3",
    ),
    (
        "next_page_not_an_int",
        partition(*MUDU, progress={**WINDOW, "next_page": "2", "page_size": 100}),
        "mudu_user_records channel_id=263218: progress.next_page is '2'",
    ),
    (
        "next_page_missing",
        partition(*MUDU, progress={**WINDOW, "page_size": 100}),
        "mudu_user_records channel_id=263218: progress.next_page is None",
    ),
    (
        "page_size_zero",
        partition(*TALKCLOUD, progress={**WINDOW, "next_page": 2, "page_size": 0}),
        "talkcloud_login_records serial=864152130: progress.page_size is 0",
    ),
    (
        "window_end_before_start",
        partition(
            *MUDU,
            progress={
                "window_start": WINDOW["window_end"],
                "window_end": WINDOW["window_start"],
                "next_page": 2,
            },
        ),
        "mudu_user_records channel_id=263218: progress window ends",
    ),
    (
        "window_bound_missing",
        partition(*TALKCLOUD, progress={"window_start": WINDOW["window_start"], "next_page": 2}),
        "talkcloud_login_records serial=864152130: progress.window_end is None",
    ),
    (
        "bookmark_not_a_datetime",
        partition(*MUDU, replication_key="first_login_time", replication_key_value="last tuesday"),
        "mudu_user_records channel_id=263218: replication_key_value is 'last tuesday'",
    ),
    (
        "stop_at_missing",
        partition(*SZB_USERS, progress={"next_page": 2, "page_size": 1000, "high_water": None}),
        "shangzhibo_user_visits agent_id=105131 user_id=15460259: progress.stop_at is None",
    ),
    (
        "frontier_wrong_type",
        {"bookmarks": {"nuoyun_user_durations": {"progress": {**WINDOW, "next_page": 2, "frontier": "x"}}}},
        "nuoyun_user_durations: progress.frontier is 'x'",
    ),
    (
        "progress_not_an_object",
        partition(*MUDU, progress=[1, 2]),
        "mudu_user_records channel_id=263218: progress is [1, 2]",
    ),
    (
        "call_ledger_bad_day",
        {
            "bookmarks": {
                "mudu_user_records": {"call_ledger": {"0123456789abcdef": {"day": "today", "calls": 3}}}
            }
        },
        "mudu_user_records: call_ledger['0123456789abcdef'].day is 'today'",
    ),
    (
        "call_ledger_negative_calls",
        {
            "bookmarks": {
                "mudu_user_records": {"call_ledger": {"0123456789abcdef": {"day": "2026-09-01", "calls": -1}}}
            }
        },
        "mudu_user_records: call_ledger['0123456789abcdef'].calls is -1",
    ),
    ("bookmarks_null", {"bookmarks": None}, "state: bookmarks is None"),
    ("partitions_not_a_list", {"bookmarks": {"mudu_user_records": {"partitions": {}}}}, "partitions is {}"),
]


@pytest.mark.parametrize(("case", "state", "expected"), BAD_STATES, ids=[c[0] for c in BAD_STATES])
def test_bad_saved_state_is_rejected_before_any_call_naming_stream_partition_and_reset(
    tmp_path: Path, everything: tuple[Sandbox, dict], case: str, state: dict, expected: str
) -> None:
    box, config = everything
    box.reset_calls()
    run = run_tap(tmp_path, config, state=copy.deepcopy(state))
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert expected in errors[0]
    assert "meltano state" in errors[0] and "delete" in errors[0]  # how to reset it
    assert "Traceback" not in run.stderr
    assert box.calls_to("") == []  # no provider called; Mudu spent none of its 10 calls
    assert run.states == []  # the bad state is not emitted again as if it were fine


def test_a_state_the_tap_saved_is_accepted_and_resumes(
    tmp_path: Path, everything: tuple[Sandbox, dict]
) -> None:
    box, config = everything
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr
    box.reset_calls()
    (tmp_path / "again").mkdir()
    again = run_tap(tmp_path / "again", config, state=first.last_state)
    assert again.returncode == 0, again.stderr
    assert box.calls_to("/userRecords") == []  # Mudu's window is done: nothing asked again


def test_a_bad_state_of_a_stream_that_does_not_run_is_left_alone(
    tmp_path: Path, everything: tuple[Sandbox, dict]
) -> None:
    _box, config = everything
    only_talkcloud = {
        key: value for key, value in config.items() if key not in ("mudu", "shangzhibo", "nuoyun")
    }
    state = partition(*MUDU, progress={**WINDOW, "next_page": -3})
    run = run_tap(tmp_path, only_talkcloud, state=state)
    assert run.returncode == 0, run.stderr
    assert run.last_state["bookmarks"]["mudu_user_records"] == state["bookmarks"]["mudu_user_records"]


def test_a_partition_state_reads_back_as_it_was_saved() -> None:
    saved = {
        "context": {"wechat_user_space_id": 7},
        "replication_key_value": "2026-09-01T00:00:00+08:00",
        "progress": {**WINDOW, "next_page": 4, "page_size": 100, "frontier": 300, "total": 950},
    }
    parsed = saved_state.parse_partition(saved, NuoyunUserDurationsStream.state_shape())
    assert parsed.progress is not None and parsed.progress.next_page == 4
    assert parsed.to_state() == saved
