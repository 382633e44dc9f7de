"""What a scheduler's log shows: a line per window and per partition, one summary, METRIC lines
only when asked for. Runs the real tap CLI against the sandbox."""

from __future__ import annotations

import re

import pytest

from conftest import all_providers_served, run_tap

START, END = "2026-09-01T00:00:00+08:00", "2026-10-01T00:00:00+08:00"
WINDOW_LINE = re.compile(
    r"\| INFO .*: window \S+ \.\. \S+ done: (\d+) rows, (\d+) pages, (\d+) calls; (\d+) window"
)
PARTITION_LINE = re.compile(
    r"\| INFO .*: partition (done|stopped|failed): (\d+) rows, (\d+) pages, (\d+) calls"
)


@pytest.fixture
def box_and_settings():
    with all_providers_served() as served:
        yield served


def lines_of(stderr: str, stream: str, pattern: re.Pattern) -> list[re.Match]:
    return [m for line in stderr.splitlines() if f" {stream} " in line and (m := pattern.search(line))]


def test_a_progress_line_per_window_and_per_partition_and_one_run_summary(tmp_path, box_and_settings):
    box, settings = box_and_settings
    config = {
        "start_date": START,
        "end_date": END,
        "shangzhibo": settings["shangzhibo"],
        "mudu": settings["mudu"],
    }
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr

    # "最多支持查询 7 天范围内的数据": 30 days are 5 windows (4 of 7 days and one of 2).
    windows = lines_of(run.stderr, "shangzhibo_activity_visits", WINDOW_LINE)
    assert len(windows) == 5
    assert [int(m[4]) for m in windows] == [4, 3, 2, 1, 0]  # windows left
    visits = run.records("shangzhibo_activity_visits")
    assert sum(int(m[1]) for m in windows) == len(visits)
    activity_calls = [c for c in box.calls if "/api/activity/" in c.path]
    assert sum(int(m[3]) for m in windows) == len(activity_calls)
    (partition,) = lines_of(run.stderr, "shangzhibo_activity_visits", PARTITION_LINE)
    assert (
        partition[1] == "done"
        and int(partition[2]) == len(visits)
        and int(partition[4]) == len(activity_calls)
    )
    assert len(lines_of(run.stderr, "shangzhibo_user_visits", PARTITION_LINE)) == 1

    # Mudu: one window, and the calls left of its 10 a day ("本接口每日调用上限为10次").
    mudu_calls = len([c for c in box.calls if "/userRecords" in c.path])
    mudu_lines = [
        line for line in run.stderr.splitlines() if "Mudu mudu_user_records" in line and " done: " in line
    ]
    assert len(mudu_lines) == 2  # the window and the partition
    assert all(f"{10 - mudu_calls} of 10 Mudu calls left today" in line for line in mudu_lines)

    (summary,) = [line for line in run.stderr.splitlines() if "Run summary:" in line]
    for stream in ("shangzhibo_activity_visits", "shangzhibo_user_visits", "mudu_user_records"):
        assert f"{stream}: {len(run.records(stream))} rows" in summary
    assert "mudu_user_records: " in summary and f"{mudu_calls} calls" in summary
    assert "partitions 1 done / 0 failed / 0 stopped" in summary


def test_metric_lines_are_off_by_default_and_shown_with_metrics_log_level_info(tmp_path, box_and_settings):
    box, settings = box_and_settings
    config = {"start_date": START, "end_date": END, "shangzhibo": settings["shangzhibo"]}
    quiet = run_tap(tmp_path, config)
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stderr.splitlines()
    assert [line for line in lines if "METRIC" in line] == []
    progress = [line for line in lines if " done: " in line]
    assert len(progress) >= 6  # 5 windows and 2 partitions of Shangzhibo

    calls = len(box.calls)
    box.reset_calls()
    loud = run_tap(tmp_path, {**config, "metrics_log_level": "INFO"})
    assert loud.returncode == 0, loud.stderr
    assert len(box.calls) == calls
    metrics = [line for line in loud.stderr.splitlines() if "METRIC" in line]
    assert len([line for line in metrics if "http_request_duration" in line]) == calls
    # Before this setting existed the METRIC lines were most of a run's log.
    assert len(metrics) > len(loud.stderr.splitlines()) / 2
