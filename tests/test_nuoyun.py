"""Nuoyun user durations against the sandbox, through the real tap CLI.

What a user relies on (document 002 and issue 4): every row of the account arrives once per
key at ceil(rows / 500) calls; rows updated while we page are never lost (they come in this
run or in the next window); the gateway never sees more than ``max_requests_per_10s`` calls
in any 10 seconds ("频率限制:10秒1000次"); ``code`` other than 200 is a clear one-line error
that never shows a credential.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from conftest import run_tap, run_tap_until_killed
from sandbox import Fault, Sandbox
from sandbox import nuoyun as ny
from tap_livestream_viewers import tolerant_json
from tap_livestream_viewers.guards import SlidingWindowRateLimiter
from tap_livestream_viewers.providers import nuoyun as nuoyun_module
from tap_livestream_viewers.providers.nuoyun import STALL_PAGES, Frontier, best_page, device_label
from tap_livestream_viewers.tap import TapLivestreamViewers

UTC = timezone.utc
FIXTURES = Path(__file__).parent / "fixtures"
STREAM = "nuoyun_user_durations"
START = "2026-08-01T00:00:00Z"
END = "2026-11-05T00:00:00Z"  # after every generated update time, before "now"


def make_config(base_url: str, data: ny.NuoyunData, **overrides) -> dict:
    config = {
        "start_date": START,
        "end_date": END,
        "backoff_base_seconds": 0.05,
        "nuoyun": ny.tap_config(data, base_url),
    }
    config.update(overrides)
    return config


def keys_of(records: list[dict]) -> list[tuple[int, int]]:
    return [(r["room_id"], r["wechat_user_space_id"]) for r in records]


def ordered_keys(data: ny.NuoyunData) -> list[tuple[int, int]]:
    """The rows in the sandbox's ascending order (update time, room, user)."""
    return [k for k, _ in sorted(data.update_time.items(), key=lambda item: (item[1], *item[0]))]


#: The gateway's clock in the moving-rows tests: after END, and well before the tap's "now less
#: its lag", so a follow-up run without end_date reads the window the moved rows went to.
GATEWAY_NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def gateway() -> Iterator[Sandbox]:
    """A sandbox whose clock (the update time moved rows get) is GATEWAY_NOW."""
    with Sandbox(now=GATEWAY_NOW) as box:
        yield box


def follow_up_config(base_url: str, data: ny.NuoyunData) -> dict:
    """No end_date: the window runs from the bookmark to now less the lag."""
    config = make_config(base_url, data)
    config.pop("end_date")
    return config


def max_calls_in_any_span(times: list[float], span: float) -> int:
    times = sorted(times)
    return max((sum(1 for t in times if start <= t <= start + span) for start in times), default=0)


# ------------------------------------------------------------------------- volume


def test_200k_rows_arrive_exactly_once_each_in_400_calls(tmp_path):
    with Sandbox() as box:
        data = ny.register(box, ny.NuoyunData(rows=200_000))
        run = run_tap(tmp_path, make_config(box.base_url, data), timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        keys = keys_of(run.records(STREAM))
        assert len(keys) == 200_000
        assert set(keys) == data.keys  # each row once, none missing
        calls = box.calls_to(ny.PATH)
        assert len(calls) == 400
        bodies = [call.json() for call in calls]
        # each page asked once; up to max_concurrency are in flight, so they arrive in any order
        assert sorted(b["page"] for b in bodies) == list(range(1, 401))
        assert all(b["page_size"] == 500 and b["sort"] in ("asc", "desc") for b in bodies)
        assert {(b["update_time_start"], b["update_time_end"]) for b in bodies} == {
            (  # from a second early: the document does not say whether the bounds are inclusive
                int(datetime.fromisoformat(START).timestamp()) - 1,
                int(datetime.fromisoformat(END).timestamp()),
            )
        }
        assert data.max_calls_in_period <= 1000 and data.rate_limited == 0
        bookmark = run.last_state["bookmarks"][STREAM]
        assert bookmark["replication_key_value"] == "2026-11-05T00:00:00+00:00"
        assert "progress" not in bookmark


#: Loaded by Python at start-up (``sitecustomize``): counts the cyclic collector's runs.
_COUNT_COLLECTIONS = """
import atexit, gc, sys
runs = [0]
gc.callbacks.append(lambda phase, info: runs.__setitem__(0, runs[0] + (phase == "start")))
atexit.register(lambda: print(f"collector runs: {runs[0]}", file=sys.stderr))
"""


def test_the_cli_runs_the_cyclic_collector_a_few_times_not_once_per_page(sandbox, tmp_path):
    """A decoded page is about 1,500 container objects: at Python's default young threshold (700)
    the collector ran 94 times for these 20,000 rows, walking pages about to be freed. The CLI
    (``__main__``) raises the threshold; nothing else about the run changes."""
    data = ny.register(sandbox, ny.NuoyunData(rows=20_000))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_COUNT_COLLECTIONS)
    python_path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data), env={"PYTHONPATH": python_path})
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.records(STREAM)) == 20_000
    collector_runs = int(run.stderr.rsplit("collector runs: ", 1)[1].split()[0])
    assert collector_runs <= 10, collector_runs


# ------------------------------------------------------------------- record shape


def test_records_carry_every_documented_field_labels_and_rfc3339_times(sandbox, tmp_path):
    data = ny.register(sandbox, ny.NuoyunData(rows=1200))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = run.records(STREAM)
    assert len(records) == 1200
    labels = {"0": "PC", "1": "Android", "2": "other", "3": "iOS", "iOS": "iOS", "Android": "Android"}
    seen_raw = set()
    for record in records:
        source = data.by_key[(record["room_id"], record["wechat_user_space_id"])]
        for field in ("wechat_user_name", "stay_duration", "ip", "third_uuid", "live_duration"):
            assert record[field] == source[field]
        assert record["channel_info"] == source["channel_info"]
        assert record["third_wechat_info"] == source["third_wechat_info"]
        raw = source["device"]
        assert record["device"] == str(raw)  # the raw value, always a string
        seen_raw.add(record["device"])
        assert record["device_label"] == (labels[str(raw)] if raw != "" else None)
        first = datetime.fromisoformat(record["first_visit_time"])
        assert first.utcoffset() == timedelta(hours=8)  # provider-local China time, with offset
        assert record["first_visit_time"][:19].replace("T", " ") == source["first_visit_time"]
        assert record["update_window_end"] == "2026-11-05T00:00:00+00:00"
    assert {"0", "1", "2", "3", "iOS", "Android", ""} <= seen_raw
    schema = next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == STREAM)
    assert schema["key_properties"] == ["room_id", "wechat_user_space_id"]
    properties = schema["schema"]["properties"]
    for field in ("first_visit_time", "last_visit_time", "update_window_end"):
        assert properties[field].get("format") == "date-time"
    assert set(properties["channel_info"]["properties"]) == {"channel_id", "channel_name", "store_id"}
    assert set(properties["third_wechat_info"]["properties"]) == {"authorizer_appid", "openid", "unionid"}


def test_document_example_parses_and_shapes_as_written():
    tap = TapLivestreamViewers(
        config={"start_date": START, "nuoyun": {"body": {"app_key": "n" * 8}}}, validate_config=True
    )
    stream = tap.streams[STREAM]
    body = tolerant_json.loads((FIXTURES / "nuoyun_example.json").read_bytes())
    assert body["code"] == 200 and body["data"]["total"] == 21451
    rows = [stream.post_process(dict(r), None) for r in body["data"]["list"]]
    assert len(rows) == 10
    first = rows[0]
    assert first["first_visit_time"] == "2025-09-16T15:06:06+08:00"
    assert first["last_visit_time"] == "2025-09-16T15:06:06+08:00"
    assert first["device"] == "iOS" and first["device_label"] == "iOS"
    assert first["channel_info"] == {"channel_id": 3128527, "channel_name": "袁", "store_id": ""}
    assert first["third_wechat_info"] == {}
    assert rows[7]["device"] == "Android" and rows[7]["device_label"] == "Android"
    assert rows[5]["device"] == "" and rows[5]["device_label"] is None
    assert rows[5]["channel_info"] == {}
    # the same viewer in two rooms: two rows, two keys
    keys = keys_of(rows)
    assert keys.count((384545650, 20401797)) == 1 and keys.count((1151766938, 20401797)) == 1
    assert len(set(keys)) == 10


# ------------------------------------------------------------------ moving rows


def test_rows_updated_mid_sync_are_never_lost(gateway, tmp_path):
    """After page 3, 40 rows already served are updated: naive paging would skip 40 rows."""
    data = ny.register(gateway, ny.NuoyunData(rows=5000, move_after_page=3, move_count=40))
    first = run_tap(tmp_path, make_config(gateway.base_url, data))
    assert first.returncode == 0, first.stderr
    moved = set(data.moved)
    assert len(moved) == 40
    got = set(keys_of(first.records(STREAM)))
    assert data.keys - moved <= got  # every row that stayed in the window arrived in this run
    assert "data.total fell from 5000 to 4960" in first.stderr
    # a plain walk would have asked 10 pages; the recovery re-read the shifted rows
    assert len(gateway.calls_to(ny.PATH)) > 10

    second = run_tap(tmp_path, follow_up_config(gateway.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    again = set(keys_of(second.records(STREAM)))
    assert moved <= again  # the moved rows come in the window they moved to
    assert got | again == data.keys


def test_moving_mode_makes_naive_paging_skip_rows(gateway):
    """The hazard is real: walking page numbers 1..10 through the same mode loses rows that stayed."""
    data = ny.register(gateway, ny.NuoyunData(rows=5000, move_after_page=3, move_count=40))
    seen: set[tuple[int, int]] = set()
    window = {
        "update_time_start": int(datetime.fromisoformat(START).timestamp()),
        "update_time_end": int(datetime.fromisoformat(END).timestamp()),
    }
    for page in range(1, 11):
        body = {"access_token": data.token, "page": page, "page_size": 500, "sort": "asc", **window}
        answer = requests.post(gateway.base_url + ny.PATH, json=body, timeout=10).json()
        seen |= set(keys_of(answer["data"]["list"]))
    skipped = data.keys - set(data.moved) - seen
    assert len(skipped) == 40  # rows that never moved, silently skipped by naive paging


def test_rows_updated_after_every_page_are_never_lost(gateway, tmp_path):
    """Constant churn: 60 served rows updated after every page; paging still ends, nothing lost."""
    data = ny.register(gateway, ny.NuoyunData(rows=10_000, churn_per_page=60))
    first = run_tap(tmp_path, make_config(gateway.base_url, data))
    assert first.returncode == 0, first.stderr
    got = set(keys_of(first.records(STREAM)))
    moved_in_first = set(data.moved)
    assert data.keys - moved_in_first <= got
    calls = len(gateway.calls_to(ny.PATH))
    assert calls <= 2 * math.ceil(10_000 / 500)  # progress every page, not a loop

    data.churn_per_page = 0
    second = run_tap(tmp_path, follow_up_config(gateway.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    assert got | set(keys_of(second.records(STREAM))) == data.keys


def test_killed_run_resumes_with_its_frontier_even_after_rows_moved_meanwhile(gateway, tmp_path):
    data = ny.register(gateway, ny.NuoyunData(rows=3000))
    gateway.latency_s = 0.05
    config = make_config(gateway.base_url, data)
    killed = run_tap_until_killed(tmp_path, config, lambda states: len(states) == 3)
    emitted = killed.records(STREAM)
    states = killed.states
    progress = states[-1]["bookmarks"][STREAM]["progress"]
    assert progress["next_page"] == 4 and progress["frontier"] == 1500 and progress["total"] == 3000

    # between the runs, 25 viewers of the pages already read come back
    now = gateway.now()
    served = ordered_keys(data)[:1500]
    for key in served[::60]:
        data.touch(key, now)
    moved = set(data.moved)
    time.sleep(0.5)  # the killed run's call in flight is logged by now, then forgotten
    gateway.latency_s = 0
    gateway.reset_calls()
    rerun = run_tap(tmp_path, config, state=states[-1])
    assert rerun.returncode == 0, rerun.stderr
    assert gateway.calls_to(ny.PATH)[0].json()["page"] == 4  # resumes, not from page 1
    got = set(keys_of(emitted)) | set(keys_of(rerun.records(STREAM)))
    assert data.keys - moved <= got
    assert "data.total fell from 3000 to 2975" in rerun.stderr  # seen against the saved total
    follow_up = run_tap(tmp_path, follow_up_config(gateway.base_url, data), state=rerun.last_state)
    assert got | set(keys_of(follow_up.records(STREAM))) == data.keys


@pytest.mark.parametrize(
    ("rows", "extra", "pages"),
    [
        # a short page (50 of 100) may be a page-size cap: one page of 50 at row 250 tells
        (250, 50, [(1, 100), (2, 100), (3, 100), (6, 50)]),
        # an empty page at the frontier tells at once
        (200, 100, [(1, 100), (2, 100), (3, 100)]),
    ],
)
def test_total_that_overstates_the_rows_served_finishes_the_window_with_one_warning(
    sandbox, tmp_path, rows, extra, pages
):
    """data.total says more rows than the gateway serves: every row it has, then the window ends."""
    data = ny.register(sandbox, ny.NuoyunData(rows=rows, total_extra=extra))
    config = make_config(sandbox.base_url, data)
    config["nuoyun"]["page_size"] = 100
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert "Loop detected" not in run.stderr
    keys = keys_of(run.records(STREAM))
    assert len(keys) == rows and set(keys) == data.keys
    calls = [call.json() for call in sandbox.calls_to(ny.PATH)]
    # each page once; pages fetched ahead arrive in any order
    assert sorted((c["page"], c["page_size"]) for c in calls) == sorted(pages)
    lines = [line for line in run.stderr.splitlines() if f"data.total says {rows + extra}" in line]
    assert len(lines) == 1, run.stderr
    for part in ("WARNING", "Nuoyun", STREAM, f"rows end at {rows}", "What to do"):
        assert part in lines[0]
    bookmark = run.last_state["bookmarks"][STREAM]
    assert "progress" not in bookmark  # the window is finished: the next run does not loop into it
    assert bookmark["replication_key_value"] == "2026-11-05T00:00:00+00:00"


def test_the_same_page_twice_is_progress_while_rows_drain_from_the_window(gateway, tmp_path):
    """Ever more viewers come back after each page, until page 1 is asked again and again as the
    window drains: each repeat is progress (rows left), not a loop; nothing is lost."""
    data = ny.register(gateway, ny.NuoyunData(rows=10_000, churn_growth=15, churn_from_page=12))
    first = run_tap(tmp_path, make_config(gateway.base_url, data))
    assert first.returncode == 0, first.stderr[-3000:]
    pages = [(c.json()["page"], c.json()["page_size"]) for c in gateway.calls_to(ny.PATH)]
    assert len(pages) == 48
    assert sum(1 for a, b in itertools.pairwise(pages) if a == b) >= 5  # the SDK's loop check would stop here
    got = set(keys_of(first.records(STREAM)))
    assert data.keys - set(data.moved) <= got

    data.churn_growth = 0
    second = run_tap(tmp_path, follow_up_config(gateway.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert got | set(keys_of(second.records(STREAM))) == data.keys


def test_rows_updated_faster_than_pages_advance_stop_after_25_pages_with_one_clear_line(gateway, tmp_path):
    """From page 80 on, 20 more viewers come back after each page than after the one before: every
    page starts past what is still known read. A clear line after 25 such pages; the state resumes."""
    data = ny.register(gateway, ny.NuoyunData(rows=10_000, churn_growth=20, churn_from_page=80))
    # one page at a time: the sandbox moves the rows of the page it served last, so the order of
    # the calls decides the churn (fetched ahead, these pages drain the window instead of stalling)
    config = make_config(gateway.base_url, data, max_concurrency=1)
    config["nuoyun"]["page_size"] = 100
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert "Loop detected" not in run.stderr
    assert len(gateway.calls_to(ny.PATH)) == 80 + STALL_PAGES
    lines = [line for line in run.stderr.splitlines() if "pages without progress" in line]
    assert lines, run.stderr[-3000:]
    for part in ("Nuoyun", STREAM, f"{STALL_PAGES} pages without progress", "What to do"):
        assert part in lines[0]
    progress = run.last_state["bookmarks"][STREAM]["progress"]  # the window resumes next run
    assert progress["window_end"] == "2026-11-05T00:00:00+00:00"


# -------------------------------------------------------------------- increments


def test_second_run_starts_at_the_bookmark_and_boundary_rows_are_kept(sandbox, tmp_path):
    data = ny.register(sandbox, ny.NuoyunData(rows=2000))
    # end the first run exactly on a row's update time: that row must not fall between windows
    boundary = sorted(data.update_time.values())[1000]
    end_1 = datetime.fromtimestamp(boundary, UTC).isoformat()
    first = run_tap(tmp_path, make_config(sandbox.base_url, data, end_date=end_1))
    assert first.returncode == 0, first.stderr
    assert first.last_state["bookmarks"][STREAM]["replication_key_value"] == end_1
    sandbox.reset_calls()
    second = run_tap(tmp_path, follow_up_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    bodies = [call.json() for call in sandbox.calls_to(ny.PATH)]
    assert {b["update_time_start"] for b in bodies} == {boundary - 1}  # a second early
    # no end_date: the window ends a little in the past (rows still being written come next time)
    end_2 = bodies[0]["update_time_end"]
    assert time.time() - 10 * 60 < end_2 < time.time() - 60
    got = set(keys_of(first.records(STREAM))) | set(keys_of(second.records(STREAM)))
    assert got == data.keys


def test_one_partition_per_configured_user(sandbox, tmp_path):
    data = ny.register(sandbox, ny.NuoyunData(rows=800))
    users = data.user_ids()[3:6]
    config = make_config(sandbox.base_url, data)
    config["nuoyun"]["wechat_user_space_ids"] = users
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    expected = {k for k in data.keys if k[1] in users}
    assert set(keys_of(run.records(STREAM))) == expected
    assert sorted(call.json()["wechat_user_space_id"] for call in sandbox.calls_to(ny.PATH)) == users
    partitions = run.last_state["bookmarks"][STREAM]["partitions"]
    assert sorted(p["context"]["wechat_user_space_id"] for p in partitions) == users


# --------------------------------------------------------------------- rate limit


def test_never_more_than_max_requests_in_any_10_seconds(sandbox, tmp_path):
    data = ny.register(sandbox, ny.NuoyunData(rows=4000, rate_limit=4))  # 8 pages
    config = make_config(sandbox.base_url, data)
    config["nuoyun"]["max_requests_per_10s"] = 4
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert len(set(keys_of(run.records(STREAM)))) == 4000
    calls = sandbox.calls_to(ny.PATH)
    assert len(calls) == 8
    assert data.rate_limited == 0  # the client waited; the gateway never had to refuse
    assert data.max_calls_in_period <= 4
    assert max_calls_in_any_span([c.at for c in calls], 10.0) <= 4
    assert calls[4].at - calls[0].at >= 10.0


def test_rate_limit_code_and_http_429_back_off_and_retry(sandbox, tmp_path):
    data = ny.register(sandbox, ny.NuoyunData(rows=1500))
    limited = {"code": 429, "msg": "请求过于频繁，10秒最多1000次", "data": None}
    sandbox.add_fault(Fault(path=ny.PATH, kind="status", status=200, body=limited, count=1, after=1))
    sandbox.add_fault(Fault(path=ny.PATH, kind="status", status=429, body=limited, count=1, after=2))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    assert set(keys_of(run.records(STREAM))) == data.keys
    calls = sandbox.calls_to(ny.PATH)
    assert [c.fault for c in calls] == [None, "status", "status", None, None]
    assert "retrying" in run.stderr


def test_sandbox_refuses_calls_over_its_limit(sandbox, tmp_path):
    """The emulation enforces the documented limit: the tap set above it still gets every row."""
    data = ny.register(sandbox, ny.NuoyunData(rows=1500, rate_limit=2, rate_period=1.0))
    config = make_config(sandbox.base_url, data, backoff_base_seconds=0.5)
    config["nuoyun"]["max_requests_per_10s"] = 100
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert data.rate_limited >= 1
    assert set(keys_of(run.records(STREAM))) == data.keys


# ----------------------------------------------------------------- credentials


def test_credentials_work_as_a_header_or_as_a_body_field(sandbox, tmp_path):
    data = ny.register(sandbox, ny.NuoyunData(rows=600))
    as_header = make_config(sandbox.base_url, data)
    assert run_tap(tmp_path, as_header).returncode == 0
    as_body = make_config(sandbox.base_url, data)
    as_body["nuoyun"].pop("headers")
    as_body["nuoyun"]["body"] = {"access_token": data.token}
    run = run_tap(tmp_path, as_body)
    assert run.returncode == 0, run.stderr
    assert len(run.records(STREAM)) == 600
    assert sandbox.calls_to(ny.PATH)[-1].json()["access_token"] == data.token


def test_wrong_credentials_fail_at_once_with_one_clear_line_and_no_secret(sandbox, tmp_path):
    data = ny.register(sandbox, ny.NuoyunData(rows=100))
    config = make_config(sandbox.base_url, data)
    config["nuoyun"]["headers"] = {"Authorization": "Bearer wrong-header-secret-42"}
    config["nuoyun"]["body"] = {"access_token": "wrong-body-secret-43"}
    config["nuoyun"]["wechat_user_space_ids"] = [data.user_ids()[0]]
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert len(sandbox.calls_to(ny.PATH)) == 1  # code 400 is not retried
    lines = [line for line in run.stderr.splitlines() if "code 400" in line]
    assert lines, run.stderr
    line = lines[0]
    for part in (
        "Nuoyun",
        STREAM,
        f"wechat_user_space_id={data.user_ids()[0]}",
        "鉴权失败",
        "What to do",
        "nuoyun.headers",
    ):
        assert part in line
    everything = run.stderr + json.dumps(run.messages, ensure_ascii=False)
    assert "wrong-header-secret-42" not in everything and "wrong-body-secret-43" not in everything


# -------------------------------------------------------------------- unit level


def test_device_codes_and_labels():
    assert [device_label(c) for c in ("0", "1", "2", "3")] == ["PC", "Android", "other", "iOS"]
    assert device_label("iOS") == "iOS" and device_label("android") == "Android"
    assert device_label("") is None and device_label(None) is None
    assert device_label("7") is None  # an unknown code is not guessed
    assert device_label("HarmonyOS") == "HarmonyOS"  # an unknown label is kept as sent
    # the one-lookup table of the common case agrees with device_label, for codes as numbers too
    for sent, (kept, label) in nuoyun_module._DEVICES.items():
        assert kept == str(sent) and label == device_label(str(sent))


def test_best_page_is_the_plain_next_page_without_moves_and_never_skips_after_them():
    assert best_page(0, 500) == (1, 500)
    assert best_page(1500, 500) == (4, 500)
    for target in (1, 499, 1460, 1499, 12345, 199_999):
        page, size = best_page(target, 500)
        assert (page - 1) * size <= target < page * size  # starts at or before the first unread row
        assert page * size - target >= 400  # and still reads well ahead


def test_frontier_shrinks_by_rows_that_left_and_stops_only_when_all_read():
    frontier = Frontier()
    frontier.absorb(0, 500, 5000)
    frontier.absorb(500, 500, 5000)
    assert frontier.rows == 1000
    # 40 rows before the frontier left: page 3 (rows 1000..1499 now) starts after the unread 960..999
    assert frontier.absorb(1000, 500, 4960) == 40
    assert frontier.rows == 960 and not frontier.done()
    frontier.absorb(950, 500, 4960)
    assert frontier.rows == 1450
    frontier.absorb(4500, 460, 4960)  # a page after a gap does not move the frontier
    assert frontier.rows == 1450 and not frontier.done()


def test_rate_limiter_holds_bursts_and_retries_to_the_limit():
    clock = [0.0]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = SlidingWindowRateLimiter(4, 10.25, clock=lambda: clock[0], sleep=sleep)
    for _ in range(13):  # a burst, as a fast gateway and retries would produce
        limiter.before_call()
        sent.append(clock[0])
        clock[0] += 0.01
    assert max_calls_in_any_span(sent, 10.0) <= 4
    assert sent[4] - sent[0] >= 10.0 and sent[12] - sent[8] >= 10.0


def test_sandbox_says_when_calls_fit_in_its_rate_window():
    """The benchmark waits this long between runs: long enough that no call is refused, no longer."""
    data = ny.NuoyunData(rows=10, rate_limit=3, rate_period=0.4)
    first = time.monotonic()
    for _ in range(3):
        assert data.admit()
        time.sleep(0.05)
    assert data.seconds_until_room_for(0) == 0.0
    wait = data.seconds_until_room_for(1)
    assert 0.0 < wait <= first + 0.4 - time.monotonic() + 0.01  # only the oldest call has to leave
    time.sleep(wait + 0.005)
    assert data.admit()  # the fourth call fits
    assert data.seconds_until_room_for(3) > data.seconds_until_room_for(2) > 0.0


# ------------------------------------------------------- when the provider misbehaves


def warnings_about(stderr: str, *words: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line and all(w in line for w in words)]


@pytest.mark.parametrize(
    "data_field",
    [{"total": 1500}, {"total": 1500, "list": None}, {"total": 1500, "list": {"0": {}}}],
    ids=["list-absent", "list-null", "list-not-a-list"],
)
def test_nuoyun_code_200_without_data_list_fails_after_retries_and_keeps_the_page(
    sandbox, tmp_path, data_field
):
    data = ny.register(sandbox, ny.NuoyunData(rows=1500))
    body = {"code": 200, "msg": "Success", "data": data_field}
    sandbox.add_fault(Fault(path=ny.PATH, kind="status", status=200, body=body, count=3, after=1))
    # one page at a time: the faults hit page 2 three times (fetched ahead, they would be spread
    # over pages 2 and 3, each retried successfully; see test_concurrency.py)
    config = make_config(sandbox.base_url, data, max_retries=2, max_concurrency=1)
    failed = run_tap(tmp_path, config)
    assert failed.returncode != 0
    line = next(line for line in failed.stderr.splitlines() if "gave up after 3 attempts" in line)
    assert "without a data.list" in line and "What to do" in line and data.token not in failed.stderr
    progress = failed.last_state["bookmarks"][STREAM]["progress"]
    assert progress["next_page"] == 2  # the bookmark has not moved; the page resumes
    resumed = run_tap(tmp_path, config, state=failed.last_state)
    assert resumed.returncode == 0, resumed.stderr
    assert set(keys_of(failed.records(STREAM))) | set(keys_of(resumed.records(STREAM))) == data.keys


def test_nuoyun_pages_larger_than_asked_are_paged_by_the_gateways_size_and_nothing_is_lost(sandbox, tmp_path):
    """1,000 rows served for page_size 500, total right: page 2 holds rows 1000..1499, none lost."""
    data = ny.register(sandbox, ny.NuoyunData(rows=1500, serve_page_size=1000))
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    keys = keys_of(run.records(STREAM))
    assert len(keys) == len(set(keys)) == 1500 and set(keys) == data.keys
    assert [c.json()["page"] for c in sandbox.calls_to(ny.PATH)] == [1, 2]
    assert "rows end at" not in run.stderr


def test_nuoyun_a_run_stopped_mid_window_resumes_with_the_gateways_page_size(tmp_path):
    with Sandbox() as box:
        data = ny.register(box, ny.NuoyunData(rows=3500, serve_page_size=1000))
        box.latency_s = 0.05
        config = make_config(box.base_url, data)
        killed = run_tap_until_killed(
            tmp_path,
            config,
            lambda states: bool(states[-1]["bookmarks"].get(STREAM, {}).get("progress", {}).get("frontier")),
        )
        progress = killed.last_state["bookmarks"][STREAM]["progress"]
        assert progress["gateway_page_size"] == 1000
        box.latency_s = 0
        rerun = run_tap(tmp_path, config, state=killed.last_state)
        assert rerun.returncode == 0, rerun.stderr
        assert set(keys_of(killed.records(STREAM))) | set(keys_of(rerun.records(STREAM))) == data.keys


@pytest.mark.parametrize("bounds", ["[]", "[)", "(]", "()"])
def test_nuoyun_rows_updated_on_a_window_boundary_are_never_lost_under_any_bounds_reading(
    sandbox, tmp_path, bounds
):
    """Rows carry no update time: a boundary row may come twice (same key, an upsert), never not at all."""
    data = ny.NuoyunData(rows=1200, bounds=bounds)
    split = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    planted = {}
    for key, offset in zip(sorted(data.keys), (-2, -1, -1, 0, 0, 0, 1, 1, 2), strict=False):
        data.set_update_time(key, split + offset)
        planted[key] = offset
    ny.register(sandbox, data)
    end_1 = datetime.fromtimestamp(split, UTC).isoformat()
    first = run_tap(tmp_path, make_config(sandbox.base_url, data, end_date=end_1))
    assert first.returncode == 0, first.stderr
    second = run_tap(tmp_path, make_config(sandbox.base_url, data), state=first.last_state)
    assert second.returncode == 0, second.stderr
    got = keys_of(first.records(STREAM)) + keys_of(second.records(STREAM))
    assert set(got) == data.keys  # none lost
    twice = {key for key in got if got.count(key) > 1}
    # only rows updated in the second the next query starts early by, or on the boundary, come twice
    assert all(planted.get(key) in (-1, 0) for key in twice)


def test_nuoyun_rows_without_room_id_or_viewer_are_kept_under_distinct_stable_keys_with_one_warning(
    sandbox, tmp_path
):
    data = ny.NuoyunData(rows=600)
    keys = sorted(data.keys)
    for key in keys[:5]:
        data.by_key[key]["room_id"] = None
    for key in keys[5:8]:
        data.by_key[key]["wechat_user_space_id"] = ""
    ny.register(sandbox, data)
    config = make_config(sandbox.base_url, data)
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    got = keys_of(run.records(STREAM))
    assert len(got) == len(set(got)) == 600
    assert all(room is not None and viewer is not None for room, viewer in got)
    (rooms,) = warnings_about(run.stderr, "without room_id")
    assert "5 row(s)" in rooms and "room_id=-" in rooms
    (viewers,) = warnings_about(run.stderr, "without wechat_user_space_id")
    assert "3 row(s)" in viewers
    again = run_tap(tmp_path, config)
    assert sorted(got) == sorted(keys_of(again.records(STREAM)))  # the same keys every run


def test_nuoyun_malformed_values_keep_the_row_with_nulls_and_one_warning_per_field(sandbox, tmp_path):
    data = ny.NuoyunData(rows=300)
    keys = sorted(data.keys)
    data.by_key[keys[1]]["first_visit_time"] = "not a time"
    data.by_key[keys[2]]["last_visit_time"] = 1758000000
    data.by_key[keys[3]]["stay_duration"] = "ten"
    data.by_key[keys[4]]["live_duration"] = {"s": 5}
    data.by_key[keys[5]]["channel_info"] = "none"
    ny.register(sandbox, data)
    run = run_tap(tmp_path, make_config(sandbox.base_url, data))
    assert run.returncode == 0, run.stderr
    records = {(r["room_id"], r["wechat_user_space_id"]): r for r in run.records(STREAM)}
    assert set(records) == data.keys  # every row kept
    assert records[keys[1]]["first_visit_time"] is None
    assert records[keys[3]]["stay_duration"] is None
    assert records[keys[4]]["live_duration"] is None
    assert records[keys[5]]["channel_info"] is None
    for record in records.values():  # no value of the wrong type reaches a target
        assert record["stay_duration"] is None or type(record["stay_duration"]) is int
    (first,) = warnings_about(run.stderr, "unreadable first_visit_time")
    assert "'not a time'" in first and f"room_id={keys[1][0]}" in first
    for field in ("last_visit_time", "stay_duration", "live_duration", "channel_info"):
        assert len(warnings_about(run.stderr, f"unreadable {field}")) == 1, field
