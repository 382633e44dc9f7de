"""Shangzhibo streams against the sandbox, through the real tap CLI.

What a user relies on (documents 001 and 003): every visit arrives once per key, no query
spans more than 7 days ("最多支持查询 7 天范围内的数据"), no call is spent on an empty page,
a re-run asks only for what is new, and failures are clear and never show the token.
"""

from __future__ import annotations

import json
import math
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import run_tap, run_tap_until_killed
from sandbox import Fault
from sandbox import shangzhibo as szb
from sandbox.bounds import READINGS
from tap_livestream_viewers import tolerant_json
from tap_livestream_viewers.tap import TapLivestreamViewers

UTC = timezone.utc
FIXTURES = Path(__file__).parent / "fixtures"
ACTIVITY = "10024069"
VISITS_PATH = f"/api/activity/{ACTIVITY}/stats/user-visits"


def parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_config(base_url: str, data: szb.ShangzhiboData, **overrides) -> dict:
    config = {
        "start_date": "2026-09-01T00:00:00Z",
        "end_date": "2026-10-01T00:00:00Z",
        "backoff_base_seconds": 0.05,
        "shangzhibo": szb.tap_config(data, base_url),
    }
    config.update(overrides)
    return config


def visit_identity(row: dict) -> tuple:
    """What identifies a visit in the sandbox data, independent of the tap's derived key."""
    return (row["userId"], row["anonymousId"] or None, parse_z(row["visitAt"]))


# ----------------------------------------------------------------- activity visits


def test_every_visit_once_in_windows_of_at_most_7_days_with_no_empty_page(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 1234}, users={}))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr

    records = run.records("shangzhibo_activity_visits")
    keys = [r["visit_key"] for r in records]
    assert len(keys) == len(set(keys)) == 1234
    expected = {visit_identity(r) for r in data.visits[ACTIVITY]}
    assert {visit_identity(r) for r in records} == expected

    calls = sandbox.calls_to(VISITS_PATH)
    for call in calls:
        span = parse_z(call.query["endedAt"]) - parse_z(call.query["startedAt"])
        assert span <= timedelta(days=7)
        assert call.query["startedAt"].endswith("Z")  # GMT, as documented
        assert call.rows, f"empty page requested: {call.query}"
    # exactly the pages the data needs: per 7-day window, ceil(rows / 100)
    windows = {(c.query["startedAt"], c.query["endedAt"]) for c in calls}
    needed = 0
    for started, ended in windows:
        in_window = [
            r for r in data.visits[ACTIVITY] if parse_z(started) <= parse_z(r["visitAt"]) < parse_z(ended)
        ]
        needed += max(1, math.ceil(len(in_window) / 100))
    assert len(calls) == needed


def test_records_carry_rfc3339_times_seconds_and_a_stable_key(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 50}, users={}))
    first = run_tap(tmp_path, make_config(sandbox.base_url, data)).records("shangzhibo_activity_visits")
    again = run_tap(tmp_path, make_config(sandbox.base_url, data)).records("shangzhibo_activity_visits")
    assert [r["visit_key"] for r in first] == [r["visit_key"] for r in again]
    anonymous = [r for r in first if r["userId"] is None]
    assert anonymous, "the sandbox data has anonymous viewers"
    for row in first:
        assert datetime.fromisoformat(row["visitAt"]).utcoffset() == timedelta(0)
        assert row["duration_seconds"] == row["duration"] * 60
        assert row["activity_id"] == ACTIVITY


def test_silently_capped_page_size_is_paged_by_what_the_provider_returns(sandbox, tmp_path):
    data = szb.register(
        sandbox,
        szb.ShangzhiboData(activities={ACTIVITY: 700}, users={}, activity_page_cap=100, echo_page_size=False),
    )
    config = make_config(sandbox.base_url, data)
    config["shangzhibo"]["page_size"] = 500  # the provider answers 100 a page, and does not say so
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert len({r["visit_key"] for r in run.records("shangzhibo_activity_visits")}) == 700
    calls = sandbox.calls_to(VISITS_PATH)
    assert all(call.rows for call in calls)  # no empty page asked for
    # after the first page of a window reveals the cap, pages follow the provider's numbering
    for window in {c.query["startedAt"] for c in calls}:
        pages = [int(c.query["page"]) for c in calls if c.query["startedAt"] == window]
        assert pages == list(range(1, len(pages) + 1))


def test_second_run_asks_only_for_the_new_window(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 900}, users={}))
    first = run_tap(tmp_path, make_config(sandbox.base_url, data, end_date="2026-09-20T00:00:00Z"))
    assert first.returncode == 0, first.stderr
    sandbox.reset_calls()

    second = run_tap(tmp_path, make_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    calls = sandbox.calls_to(VISITS_PATH)
    bookmark = datetime(2026, 9, 20, tzinfo=UTC)
    ranges = sorted({(parse_z(c.query["startedAt"]), parse_z(c.query["endedAt"])) for c in calls})
    # Nothing before the bookmark is asked again but the second each query starts early by.
    assert ranges[0][0] == bookmark - timedelta(seconds=1)
    assert all(end - start <= timedelta(days=7) for start, end in ranges)
    # Exactly the pages the new windows need (the sandbox serves [startedAt, endedAt)).
    assert len(calls) == sum(
        math.ceil(sum(1 for r in data.visits[ACTIVITY] if start <= parse_z(r["visitAt"]) < end) / 100)
        for start, end in ranges
    )
    all_keys = {r["visit_key"] for r in first.records("shangzhibo_activity_visits")} | {
        r["visit_key"] for r in second.records("shangzhibo_activity_visits")
    }
    assert len(all_keys) == 900

    sandbox.reset_calls()
    third = run_tap(tmp_path, make_config(sandbox.base_url, data), state=second.last_state)
    assert third.returncode == 0
    assert sandbox.calls_to(VISITS_PATH) == []  # nothing new to ask for: no call at all
    assert third.records("shangzhibo_activity_visits") == []


def test_killed_run_resumes_at_the_next_page_and_loses_nothing(sandbox, tmp_path):
    """Kill the tap mid-sync; the re-run with its last STATE completes the data."""
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 1500}, users={}))
    sandbox.latency_s = 0.05
    killed = run_tap_until_killed(
        tmp_path, make_config(sandbox.base_url, data), lambda states: len(states) == 6
    )
    assert killed.returncode == -signal.SIGKILL
    emitted = killed.records("shangzhibo_activity_visits")
    last_state = killed.last_state
    progress = last_state["bookmarks"]["shangzhibo_activity_visits"]["partitions"][0]["progress"]
    time.sleep(0.5)  # the killed run's call in flight is logged by now, then forgotten
    calls_before = [(c.query["startedAt"], c.query["page"]) for c in sandbox.calls_to(VISITS_PATH)]
    sandbox.reset_calls()

    sandbox.latency_s = 0
    rerun = run_tap(tmp_path, make_config(sandbox.base_url, data), state=last_state)
    assert rerun.returncode == 0, rerun.stderr
    first_call = sandbox.calls_to(VISITS_PATH)[0]
    # the re-run starts at the page after the last saved one, in the same window
    assert first_call.query["page"] == str(progress["next_page"])
    # the query starts one second before the window (bounds may be exclusive)
    assert parse_z(first_call.query["startedAt"]) == datetime.fromisoformat(
        progress["window_start"]
    ) - timedelta(seconds=1)
    # what the stop cost: at most max_concurrency (4) pages in flight or fetched ahead, asked again
    window_start = first_call.query["startedAt"]
    asked_again = [
        page
        for started, page in calls_before
        if started == window_start and int(page) >= int(progress["next_page"])
    ]
    assert len(asked_again) <= 4
    keys = {r["visit_key"] for r in emitted} | {
        r["visit_key"] for r in rerun.records("shangzhibo_activity_visits")
    }
    assert len(keys) == 1500  # no record lost


# ---------------------------------------------------------------- failures


def test_wrong_token_fails_at_once_with_one_clear_line_and_no_token(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 10}, users={}))
    config = make_config(sandbox.base_url, data)
    config["shangzhibo"]["access_token"] = "wrong-secret-token-123"
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert len(sandbox.calls_to(VISITS_PATH)) == 1  # no retry of a 401
    error_lines = [line for line in run.stderr.splitlines() if "HTTP 401" in line]
    assert error_lines, run.stderr
    line = error_lines[0]
    for part in ("Shangzhibo", "shangzhibo_activity_visits", f"activity_id={ACTIVITY}", "What to do"):
        assert part in line
    assert "shangzhibo.access_token" in line
    everything = run.stderr + json.dumps(run.messages)
    assert "wrong-secret-token-123" not in everything


def test_server_errors_and_resets_are_retried_honouring_retry_after(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 250}, users={}))
    sandbox.add_fault(Fault(path=VISITS_PATH, kind="status", status=503, count=1, retry_after=1, after=1))
    sandbox.add_fault(Fault(path=VISITS_PATH, kind="status", status=429, count=1, after=2))
    sandbox.add_fault(Fault(path=VISITS_PATH, kind="reset", count=1, after=3))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    assert len({r["visit_key"] for r in run.records("shangzhibo_activity_visits")}) == 250
    calls = sandbox.calls_to(VISITS_PATH)
    failed = [c for c in calls if c.fault]
    assert [c.fault for c in failed] == ["status", "status", "reset"]
    # the next call for the same page (pages of other windows are fetched ahead meanwhile)
    retry_of_503 = next(c for c in calls[calls.index(failed[0]) + 1 :] if c.query == failed[0].query)
    assert retry_of_503.at - failed[0].at >= 1.0  # Retry-After: 1 was honoured
    assert "Retry-After" not in run.stderr or "token" not in run.stderr


def test_persistent_failure_gives_up_with_a_clear_line_and_resumable_state(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 400}, users={}))
    sandbox.add_fault(Fault(path=VISITS_PATH, kind="status", status=502, count=100, after=2))
    # One page at a time: the count below is one page's attempts (pages fetched ahead would add theirs).
    config = make_config(sandbox.base_url, data, max_retries=2, max_concurrency=1)
    failed = run_tap(tmp_path, config)
    assert failed.returncode != 0
    line = next(line for line in failed.stderr.splitlines() if "gave up after 3 attempts" in line)
    assert "HTTP 502" in line and "What to do" in line and f"activity_id={ACTIVITY}" in line
    assert len(sandbox.calls_to(VISITS_PATH)) == 2 + 3
    sandbox.faults.clear()
    resumed = run_tap(tmp_path, config, state=failed.last_state)
    assert resumed.returncode == 0, resumed.stderr
    keys = {r["visit_key"] for r in failed.records("shangzhibo_activity_visits")} | {
        r["visit_key"] for r in resumed.records("shangzhibo_activity_visits")
    }
    assert len(keys) == 400


def test_html_error_page_fails_clearly_instead_of_reading_as_empty(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 20}, users={}))
    sandbox.add_fault(Fault(path=VISITS_PATH, kind="garbage", count=1))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode != 0
    assert any("not JSON" in line and "Shangzhibo" in line for line in run.stderr.splitlines())


# -------------------------------------------------------------------- user visits


def user_config(base_url: str, data: szb.ShangzhiboData) -> dict:
    config = make_config(base_url, data, start_date="2026-01-01T00:00:00Z")
    config.pop("end_date")
    config["shangzhibo"].pop("activity_ids")
    return config


def test_user_visits_first_run_then_only_new_visits_with_one_call(sandbox, tmp_path):
    user = 15460259
    data = szb.register(sandbox, szb.ShangzhiboData(activities={}, users={user: 2345}))
    path = f"/api/v3/agent/{data.agent_id}/user/{user}/stats/visits"
    first = run_tap(tmp_path, user_config(sandbox.base_url, data))
    assert first.returncode == 0, first.stderr
    records = first.records("shangzhibo_user_visits")
    assert len({r["visit_key"] for r in records}) == len(records) == 2345
    calls = sandbox.calls_to(path)
    assert len(calls) == 3 and all(c.query["pageSize"] == "1000" for c in calls)
    assert all(c.query["order"] == "visitAt desc" for c in calls)
    assert records[0]["activity"]["name"] and records[0]["duration_seconds"] == records[0]["duration"] * 60

    sandbox.reset_calls()
    newest = max(parse_z(r["visitAt"]) for r in data.user_visits[user])
    for minutes in (5, 10, 15):
        data.add_user_visit(user, newest + timedelta(minutes=minutes))
    second = run_tap(tmp_path, user_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    assert len(sandbox.calls_to(path)) == 1  # the newest page reaches the bookmark
    new_keys = {r["visit_key"] for r in second.records("shangzhibo_user_visits")}
    old_keys = {r["visit_key"] for r in records}
    assert len(new_keys - old_keys) == 3


# ------------------------------------------------------------ document examples


def test_document_examples_parse_and_shape_as_written():
    tap = TapLivestreamViewers(
        config={
            "start_date": "2020-01-01T00:00:00Z",
            "shangzhibo": {
                "access_token": "x" * 8,
                "activity_ids": ["10024069"],
                "agent_id": 105131,
                "user_ids": [15460259],
            },
        },
        validate_config=True,
    )
    visits = tolerant_json.loads((FIXTURES / "shangzhibo_activity_visits_example.json").read_bytes())
    stream = tap.streams["shangzhibo_activity_visits"]
    row = stream.post_process(dict(visits["items"][0]), {"activity_id": "10024069"})
    assert row["visitAt"] == "2020-03-31T08:21:00+00:00"
    assert row["lastOnlineAt"] == "2020-03-31T08:21:03+00:00"
    assert row["duration_seconds"] == 0 and row["userId"] == 2184958

    user_visits = tolerant_json.loads((FIXTURES / "shangzhibo_user_visits_example.json").read_bytes())
    stream = tap.streams["shangzhibo_user_visits"]
    rows = [
        stream.post_process(dict(r), {"agent_id": 105131, "user_id": 15460259}) for r in user_visits["items"]
    ]
    assert [r["duration_seconds"] for r in rows] == [0, 240]
    assert rows[1]["activity"]["startedAt"] == "2020-06-24T00:00:00+00:00"
    assert len({r["visit_key"] for r in rows}) == 2


def test_unknown_activity_fails_alone_and_the_run_says_which(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 120}, users={}))
    config = make_config(sandbox.base_url, data)
    config["shangzhibo"]["activity_ids"] = ["404404", ACTIVITY]
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert len({r["visit_key"] for r in run.records("shangzhibo_activity_visits")}) == 120
    assert len(sandbox.calls_to("/api/activity/404404/")) == 1
    failure = [line for line in run.stderr.splitlines() if "activity_id=404404" in line and "404" in line]
    assert failure and "shangzhibo.activity_ids" in failure[0]
    assert "1 partition(s) failed" in run.stderr


def test_an_undocumented_new_field_is_left_out_and_named_once(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 30}, users={}))
    for row in data.visits[ACTIVITY][:5]:
        row["watchSeconds"] = 42  # a field the document does not list
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = run.records("shangzhibo_activity_visits")
    assert len(records) == 30 and all("watchSeconds" not in r for r in records)
    warnings = [line for line in run.stderr.splitlines() if "'watchSeconds'" in line]
    assert len(warnings) == 1 and "not in the provider document" in warnings[0]


def test_unknown_user_fails_alone_and_the_other_users_are_read(sandbox, tmp_path):
    user = 15460259
    data = szb.register(sandbox, szb.ShangzhiboData(activities={}, users={user: 30}))
    config = user_config(sandbox.base_url, data)
    config["shangzhibo"]["user_ids"] = [999, user]
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert len(run.records("shangzhibo_user_visits")) == 30
    failure = [line for line in run.stderr.splitlines() if "user_id=999" in line and "404" in line]
    assert failure and "What to do" in failure[0]
    assert "1 partition(s) failed" in run.stderr


def test_visits_of_the_last_hour_wait_for_the_next_run(sandbox, tmp_path):
    """A viewer still online has a growing duration: windows end an hour before now."""
    now = datetime.now(UTC)
    data = szb.register(
        sandbox,
        szb.ShangzhiboData(
            activities={ACTIVITY: 400}, users={}, period_start=now - timedelta(days=2), period_end=now
        ),
    )
    config = make_config(sandbox.base_url, data, start_date=(now - timedelta(days=3)).isoformat())
    config.pop("end_date")
    run = run_tap(tmp_path, config)
    finished = datetime.now(UTC)
    assert run.returncode == 0, run.stderr
    state = run.last_state["bookmarks"]["shangzhibo_activity_visits"]["partitions"][0]
    window_end = datetime.fromisoformat(state["replication_key_value"])
    assert now.replace(microsecond=0) - timedelta(hours=1) <= window_end <= finished - timedelta(hours=1)
    records = run.records("shangzhibo_activity_visits")
    assert {visit_identity(r) for r in records} == {
        visit_identity(r) for r in data.visits[ACTIVITY] if parse_z(r["visitAt"]) < window_end
    }
    assert len(records) < 400  # the last hour's visits are left for the next run


# ------------------------------------------------------- when the provider misbehaves

ACTIVITY_STREAM = "shangzhibo_activity_visits"
START = datetime(2026, 9, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)


def warnings_about(stderr: str, *words: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line and all(w in line for w in words)]


@pytest.mark.parametrize(
    "body",
    [
        {"pager": {"page": 1, "pageSize": 100, "total": 300}},
        {"pager": {"page": 1, "pageSize": 100, "total": 300}, "items": None},
        {"pager": {"page": 1, "pageSize": 100, "total": 300}, "items": {"0": {}}},
    ],
    ids=["items-absent", "items-null", "items-not-a-list"],
)
def test_shangzhibo_answer_without_items_is_retried_then_fails_and_keeps_the_window(sandbox, tmp_path, body):
    """A 200 without its row list is no empty page: retried, then one line, exit 1, the page resumes."""
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 600}, users={}))
    sandbox.add_fault(Fault(path=VISITS_PATH, kind="status", status=200, body=body, count=3, after=3))
    # one page at a time: the faults hit the fourth call three times (fetched ahead, they would be
    # spread over several pages, each retried successfully; see test_concurrency.py)
    config = make_config(sandbox.base_url, data, max_retries=2, max_concurrency=1)
    failed = run_tap(tmp_path, config)
    assert failed.returncode != 0
    line = next(line for line in failed.stderr.splitlines() if "gave up after 3 attempts" in line)
    assert "without an items list" in line and f"activity_id={ACTIVITY}" in line
    assert "state resumes at this page" in line and data.token not in failed.stderr
    calls = sandbox.calls_to(VISITS_PATH)
    assert len(calls) == 3 + 3  # three good pages, then the malformed one asked three times
    stuck = calls[3]
    partition = failed.last_state["bookmarks"][ACTIVITY_STREAM]["partitions"][0]
    bookmark = partition.get("replication_key_value")
    # the bookmark has not moved past the window of the malformed page
    assert bookmark is None or datetime.fromisoformat(bookmark) <= parse_z(stuck.query["endedAt"])

    sandbox.reset_calls()
    resumed = run_tap(tmp_path, config, state=failed.last_state)
    assert resumed.returncode == 0, resumed.stderr
    got = {visit_identity(r) for r in failed.records(ACTIVITY_STREAM) + resumed.records(ACTIVITY_STREAM)}
    assert got == {visit_identity(r) for r in data.visits[ACTIVITY]}


def test_shangzhibo_a_passing_answer_without_items_is_retried_and_nothing_is_lost(sandbox, tmp_path):
    data = szb.register(sandbox, szb.ShangzhiboData(activities={ACTIVITY: 300}, users={}))
    sandbox.add_fault(
        Fault(path=VISITS_PATH, kind="status", status=200, body={"pager": {}}, count=1, after=1)
    )
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    assert {visit_identity(r) for r in run.records(ACTIVITY_STREAM)} == {
        visit_identity(r) for r in data.visits[ACTIVITY]
    }


def test_shangzhibo_pages_larger_than_asked_are_followed_without_an_extra_call(sandbox, tmp_path):
    """A provider that serves 300 rows for pageSize 100, and does not say so, pages by 300."""
    data = szb.register(
        sandbox,
        szb.ShangzhiboData(activities={ACTIVITY: 2000}, users={}, echo_page_size=False, serve_page_size=300),
    )
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = run.records(ACTIVITY_STREAM)
    assert len(records) == len({r["visit_key"] for r in records}) == 2000
    calls = sandbox.calls_to(VISITS_PATH)
    assert all(call.rows for call in calls)  # no empty page asked for
    windows = {(c.query["startedAt"], c.query["endedAt"]) for c in calls}
    needed = sum(
        max(
            1,
            math.ceil(
                sum(1 for r in data.visits[ACTIVITY] if parse_z(s) <= parse_z(r["visitAt"]) < parse_z(e))
                / 300
            ),
        )
        for s, e in windows
    )
    assert len(calls) == needed


def boundary_moments(step: timedelta) -> list[datetime]:
    """Whole days, and every multiple of ``step`` from START, each with its neighbouring instants."""
    anchors = {START + timedelta(days=d) for d in range(31)}
    anchors |= {START + k * step for k in range(6)}
    anchors.add(datetime(2026, 9, 15, 12, tzinfo=UTC))  # the split between the two runs below
    offsets = (timedelta(seconds=-1), timedelta(milliseconds=-1), timedelta(0), timedelta(milliseconds=1))
    return sorted(a + o for a in anchors for o in offsets if START <= a + o < END)


@pytest.mark.parametrize("bounds", READINGS)
def test_shangzhibo_visits_on_window_boundaries_arrive_once_under_every_bounds_reading(
    sandbox, tmp_path, bounds
):
    """Whether startedAt/endedAt are inclusive is not documented: each visit comes exactly once."""
    data = szb.ShangzhiboData(activities={ACTIVITY: 300}, users={}, bounds=bounds)
    for index, moment in enumerate(boundary_moments(timedelta(days=7) - timedelta(seconds=1))):
        data.add_visit(ACTIVITY, moment, user_id=9_000_000 + index)
    szb.register(sandbox, data)
    split = datetime(2026, 9, 15, 12, tzinfo=UTC)
    first = run_tap(tmp_path, make_config(sandbox.base_url, data, end_date=split.isoformat()))
    assert first.returncode == 0, first.stderr
    second = run_tap(tmp_path, make_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    got = [visit_identity(r) for r in first.records(ACTIVITY_STREAM) + second.records(ACTIVITY_STREAM)]
    expected = [visit_identity(r) for r in data.visits[ACTIVITY]]
    assert sorted(got, key=repr) == sorted(expected, key=repr)  # every visit, each exactly once


def test_shangzhibo_visits_without_identity_are_kept_under_distinct_stable_keys_with_one_warning(
    sandbox, tmp_path
):
    data = szb.ShangzhiboData(activities={ACTIVITY: 200}, users={})
    rows = data.visits[ACTIVITY]
    for row in rows[10:14]:  # no viewer at all
        row.update(userId=None, anonymousId="")
    for row in rows[20:22]:  # the same viewer and start twice, other content
        row.update(userId=4242, anonymousId="", visitAt=rows[20]["visitAt"])
    rows[21]["duration"] = rows[20]["duration"] + 7
    szb.register(sandbox, data)
    config = make_config(sandbox.base_url, data)
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    keys = [r["visit_key"] for r in run.records(ACTIVITY_STREAM)]
    assert len(keys) == len(set(keys)) == 200  # every visit kept, no key empty or shared
    assert all(keys)
    (missing,) = warnings_about(run.stderr, "without userId and anonymousId")
    assert "4 row(s)" in missing and f"activity_id={ACTIVITY}" in missing and "content:" in missing
    (collision,) = warnings_about(run.stderr, "key of a different row")
    assert "1 row(s)" in collision
    again = run_tap(tmp_path, config)
    assert sorted(r["visit_key"] for r in again.records(ACTIVITY_STREAM)) == sorted(keys)  # stable


def test_shangzhibo_malformed_values_keep_the_row_with_nulls_and_one_warning_per_field(sandbox, tmp_path):
    data = szb.ShangzhiboData(activities={ACTIVITY: 100}, users={})
    rows = data.visits[ACTIVITY]
    for index, row in enumerate(rows):
        row["referer"] = f"row-{index}"  # to find each row again
    rows[3]["duration"] = "ten"
    rows[4]["duration"] = "eleven"
    as_ms = parse_z(rows[5]["visitAt"])
    rows[5]["visitAt"] = int(as_ms.timestamp() * 1000)  # a number: epoch milliseconds
    as_s = parse_z(rows[6]["visitAt"])
    rows[6]["visitAt"] = int(as_s.timestamp())  # epoch seconds
    rows[7]["visitAt"] = "yesterday evening"
    rows[8]["userId"] = "not-a-number"
    rows[9]["province"] = {"name": "浙江"}
    szb.register(sandbox, data)
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = run.records(ACTIVITY_STREAM)
    by_row = {r["referer"]: r for r in records}
    assert len(by_row) == 100  # every row kept, each once
    assert by_row["row-3"]["duration"] is None and by_row["row-3"]["duration_seconds"] is None
    assert datetime.fromisoformat(by_row["row-5"]["visitAt"]) == as_ms
    assert datetime.fromisoformat(by_row["row-6"]["visitAt"]) == as_s
    assert by_row["row-7"]["visitAt"] is None
    assert by_row["row-8"]["userId"] is None
    assert by_row["row-9"]["province"] is None
    for record in records:  # no value of the wrong type reaches a target
        assert record["userId"] is None or type(record["userId"]) is int
        assert record["duration"] is None or type(record["duration"]) is int
        assert record["province"] is None or isinstance(record["province"], str)
    (duration,) = warnings_about(run.stderr, "unreadable duration")
    assert "2 row(s)" in duration and "'ten'" in duration and "visit_key=" in duration
    assert len(warnings_about(run.stderr, "unreadable visitAt")) == 1
    assert len(warnings_about(run.stderr, "unreadable userId")) == 1
    assert len(warnings_about(run.stderr, "unreadable province")) == 1
    # the row without a readable visitAt is kept, under a content key
    assert len({r["visit_key"] for r in records}) == 100


def test_shangzhibo_user_visits_with_a_numeric_or_unreadable_visit_at_are_kept(sandbox, tmp_path):
    user = 15460259
    data = szb.ShangzhiboData(activities={}, users={user: 30})
    rows = data.user_visits[user]
    as_ms = parse_z(rows[10]["visitAt"])
    rows[10]["visitAt"] = int(as_ms.timestamp() * 1000)
    rows[11]["visitAt"] = "not a time"
    rows[12]["activityId"] = None
    szb.register(sandbox, data)
    run = run_tap(tmp_path, user_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = run.records("shangzhibo_user_visits")
    keys = [r["visit_key"] for r in records]
    assert len(keys) == len(set(keys)) == 30  # every visit, no key empty or shared
    assert any(r["visitAt"] and datetime.fromisoformat(r["visitAt"]) == as_ms for r in records)
    assert len(warnings_about(run.stderr, "unreadable visitAt")) == 1
    assert len(warnings_about(run.stderr, "without activityId")) == 1
