"""Settings checked before any call, the start-up line, one-line failures, --test, no-state runs.

Every test runs the real CLI against the sandbox. What a user relies on (issue 9): a bad
setting stops the run before any provider is called, in one line that names the setting and
what to write instead, with no traceback unless the log level is DEBUG; a config that would
extract nothing fails loudly; ``--test`` spends no Mudu call unless asked; and a run given no
state (``meltano run --full-refresh``) still knows the day's Mudu calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import ROOT, TAP, run_tap
from sandbox import Sandbox
from sandbox import mudu as mudu_sandbox
from sandbox import shangzhibo as szb
from sandbox import talkcloud as talkcloud_sandbox
from sandbox.__main__ import build, tap_settings

START, END = "2026-09-01T00:00:00+08:00", "2026-10-01T00:00:00+08:00"
MUDU_STREAM = "mudu_user_records"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| WARNING" in line]


def two_providers(box: Sandbox, **top: object) -> dict:
    """Shangzhibo and Mudu on the sandbox: a bad setting must stop both before any call."""
    szb_data = szb.register(box, szb.ShangzhiboData(activities={"7001": 30}, users={}))
    mudu_data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"5005": 20}))
    return {
        "start_date": "2026-09-20T00:00:00+08:00",
        "end_date": "2026-09-21T00:00:00+08:00",
        "backoff_base_seconds": 0.01,
        "shangzhibo": szb.tap_config(szb_data, box.base_url),
        "mudu": mudu_sandbox.tap_config(mudu_data, box.base_url),
        **top,
    }


# ------------------------------------------------------------- settings before any call

BAD_SETTINGS = [
    ("start_date", {"start_date": "yesterday"}, None, "start_date: 'yesterday' is not a date-time"),
    ("provider_timezone_region", {"provider_timezone": "Asia"}, None, "provider_timezone: 'Asia' is not"),
    ("provider_timezone", {"provider_timezone": "Mars/Olympus"}, None, "provider_timezone: 'Mars/Olympus'"),
    ("request_timeout_negative", {"request_timeout": -1}, None, "request_timeout: -1 is below the minimum 1"),
    ("request_timeout_zero", {"request_timeout": 0}, None, "request_timeout: 0 is below the minimum 1"),
    ("max_retries", {"max_retries": -1}, None, "max_retries: -1 is below the minimum 0"),
    (
        "end_before_start",
        {"end_date": "2026-09-19T00:00:00+08:00"},
        None,
        "end_date: '2026-09-19T00:00:00+08:00'",
    ),
    ("page_size_negative", {}, ("mudu", "page_size", -5), "mudu.page_size: -5 is below the minimum 1"),
    ("page_size_zero", {}, ("shangzhibo", "page_size", 0), "shangzhibo.page_size: 0 is below the minimum 1"),
    ("page_size_text", {}, ("mudu", "page_size", "many"), "mudu.page_size: 'many' is not of type integer"),
    ("base_url_no_scheme", {}, ("mudu", "base_url", "mudu.tv/api"), "mudu.base_url: 'mudu.tv/api'"),
    (
        "channel_ids_text",
        {},
        ("mudu", "channel_ids", "5005"),
        "mudu.channel_ids: '5005' is not of type array",
    ),
]


@pytest.mark.parametrize(
    ("case", "top", "nested", "expected"), BAD_SETTINGS, ids=[c[0] for c in BAD_SETTINGS]
)
def test_bad_setting_stops_before_any_call_with_one_line_naming_it(
    tmp_path: Path, sandbox: Sandbox, case: str, top: dict, nested: tuple | None, expected: str
) -> None:
    config = two_providers(sandbox, **top)
    if nested:
        provider, name, value = nested
        config[provider][name] = value
    run = run_tap(tmp_path, config, state={"bookmarks": {}})
    assert run.returncode != 0
    errors = error_lines(run.stderr)
    assert len(errors) == 1, run.stderr
    assert expected in errors[0]
    assert "write" in errors[0]  # what to write instead
    assert "Traceback" not in run.stderr
    assert "attempts" not in run.stderr  # nothing was tried, so nothing "gave up"
    assert sandbox.calls_to("") == []  # no provider was called, not even the valid one
    assert [m for m in run.messages if m["type"] in ("STATE", "RECORD")] == []  # no bookmark moved


def test_all_bad_settings_are_reported_together_one_line_each(tmp_path: Path, sandbox: Sandbox) -> None:
    config = two_providers(sandbox, start_date="yesterday", request_timeout=0)
    config["mudu"]["page_size"] = -5
    run = run_tap(tmp_path, config)
    errors = error_lines(run.stderr)
    assert run.returncode != 0 and len(errors) == 3, run.stderr
    assert {e.split("| ")[-1].split(":")[0] for e in errors} == {
        "start_date",
        "request_timeout",
        "mudu.page_size",
    }


def test_secret_of_wrong_type_is_named_without_its_value(tmp_path: Path, sandbox: Sandbox) -> None:
    config = two_providers(sandbox)
    config["mudu"]["access_token"] = 12345678901
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert any("mudu.access_token: (hidden) is not of type string" in e for e in error_lines(run.stderr))
    assert "12345678901" not in run.stderr


def test_config_file_that_is_not_json_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"start_date": "2026-09-01",')
    proc = subprocess.run([TAP, "--config", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert error_lines(proc.stderr) == [x for x in proc.stderr.splitlines() if str(bad) in x]
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_state_file_that_is_not_json_is_one_line_and_calls_nothing(tmp_path: Path, sandbox: Sandbox) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(two_providers(sandbox)))
    state_path = tmp_path / "state.json"
    state_path.write_text("{'bookmarks': {}}")
    proc = subprocess.run(
        [TAP, "--config", str(config_path), "--state", str(state_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and f"--state {state_path}: not valid JSON" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert sandbox.calls_to("") == [] and proc.stdout == ""


def test_page_size_above_the_maximum_is_clamped_with_a_warning(tmp_path: Path, sandbox: Sandbox) -> None:
    config = two_providers(sandbox)
    config["mudu"]["page_size"] = 500
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert any(
        "mudu.page_size: 500 is above the maximum of mudu_user_records (100)" in w
        for w in warning_lines(run.stderr)
    )
    assert {c.json()["perPage"] for c in sandbox.calls_to("/userRecords")} == {100}


# -------------------------------------------------------------------- activation


def test_startup_line_names_the_streams_that_run_and_why_the_others_do_not(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = two_providers(sandbox)
    rooms = talkcloud_sandbox.register(sandbox, talkcloud_sandbox.TalkcloudData(rooms={}, thirdroomids={}))
    config["talkcloud"] = {"key": rooms.key, "base_url": sandbox.base_url}  # no room: the list is read
    config["shangzhibo"].pop("agent_id")
    config["shangzhibo"].pop("user_ids")
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    line = next(x for x in run.stderr.splitlines() if "Providers active:" in x)
    assert "| INFO" in line
    assert "shangzhibo (shangzhibo_activity_visits)" in line and "mudu (mudu_user_records)" in line
    assert "nuoyun: not configured" in line
    assert "talkcloud (talkcloud_rooms, talkcloud_login_records of the rooms talkcloud_rooms lists)" in line
    assert "shangzhibo_user_visits: agent_id/user_ids not set" in line  # activity ids alone
    assert rooms.key not in run.stderr


def test_ids_without_credentials_warn_that_the_provider_is_not_read(tmp_path: Path, sandbox: Sandbox) -> None:
    config = two_providers(sandbox)
    config["talkcloud"] = {"serials": ["123"]}
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert any(
        "talkcloud: talkcloud.serials set but no credentials" in w and "talkcloud.key" in w
        for w in warning_lines(run.stderr)
    ), run.stderr


def test_unknown_keys_warn_with_the_nearest_setting(tmp_path: Path, sandbox: Sandbox) -> None:
    config = two_providers(sandbox)
    config["mudo"] = {"access_token": "z" * 10}
    config["shangzhibo"]["activity_id"] = ["1"]
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    warnings = warning_lines(run.stderr)
    assert any("unknown setting 'mudo' is ignored; did you mean 'mudu'?" in w for w in warnings), run.stderr
    assert any(
        "unknown setting 'shangzhibo.activity_id' is ignored; did you mean 'shangzhibo.activity_ids'?" in w
        for w in warnings
    )
    assert "z" * 10 not in run.stderr


@pytest.mark.parametrize(
    "config",
    [
        {"start_date": START},
        # Empty ids are no longer "nothing": the provider's room list is read (issue 12).
        {"start_date": START, "mudu": {"access_token": "", "channel_ids": ["1"]}},
        {"start_date": START, "mudo": {"access_token": "t" * 10, "channel_ids": ["1"]}},
    ],
    ids=["only_start_date", "ids_without_credentials", "typo_in_provider_key"],
)
def test_config_that_runs_nothing_fails_with_one_line_but_discover_and_about_work(
    tmp_path: Path, config: dict
) -> None:
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    errors = error_lines(run.stderr)
    assert len(errors) == 1 and "nothing to extract" in errors[0] and "mudu.access_token" in errors[0]
    assert "Traceback" not in run.stderr
    config_path = tmp_path / "config.json"
    discovered = subprocess.run(
        [TAP, "--config", str(config_path), "--discover"], capture_output=True, text=True
    )
    assert discovered.returncode == 0 and json.loads(discovered.stdout) == {"streams": []}
    about = subprocess.run([TAP, "--config", str(config_path), "--about"], capture_output=True, text=True)
    assert about.returncode == 0 and "start_date" in about.stdout


# ----------------------------------------------------------------- provider failure


def test_provider_failure_is_one_line_by_default_and_a_traceback_at_debug(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = two_providers(sandbox)
    config["shangzhibo"]["access_token"] = "wrong-token-123"
    quiet = run_tap(tmp_path, config)
    assert quiet.returncode != 0
    errors = error_lines(quiet.stderr)
    assert len(errors) == 1 and "HTTP 401" in errors[0] and "shangzhibo.access_token" in errors[0], (
        quiet.stderr
    )
    assert "Traceback" not in quiet.stderr and "An unhandled error" not in quiet.stderr
    assert "wrong-token-123" not in quiet.stderr

    (tmp_path / "debug").mkdir()
    loud = run_tap(tmp_path / "debug", config, env={"TAP_LIVESTREAM_VIEWERS_LOGLEVEL": "DEBUG"})
    assert loud.returncode != 0
    assert "Traceback" in loud.stderr and "HTTP 401" in loud.stderr


# -------------------------------------------------------------------------- --test


def test_test_checks_each_provider_with_one_call_and_skips_mudu_by_default(tmp_path: Path) -> None:
    box, datasets = build()
    base_url = box.start()
    try:
        config = {"start_date": START, "end_date": END, **tap_settings(datasets, base_url)}
        run = run_tap(tmp_path, config, extra_args=["--test"])
        assert run.returncode == 0, run.stderr
        assert box.calls_to("/userRecords") == []  # Mudu: not one of its 10 calls spent
        assert any(
            "mudu_user_records: not checked" in w and "mudu.check_in_test" in w
            for w in warning_lines(run.stderr)
        )
        checked = {"shangzhibo_activity_visits", "nuoyun_user_durations", "talkcloud_login_records"}
        assert checked <= {m["stream"] for m in run.messages if m["type"] == "RECORD"}
        # One cheap call per stream checked: Shangzhibo's two, Nuoyun's one, Talk-cloud's two.
        assert len(box.calls_to("/user-visits")) + len(box.calls_to("/stats/visits")) <= 2
        assert len(box.calls_to("")) <= 5
    finally:
        box.stop()


def test_test_checks_mudu_when_asked_and_the_next_run_counts_that_call(
    tmp_path: Path, sandbox: Sandbox, private_call_ledger: Path
) -> None:
    data = mudu_sandbox.register(sandbox, mudu_sandbox.MuduData(channels={"5005": 250}, daily_quota=3))
    config = {
        "start_date": "2026-09-20T00:00:00+08:00",
        "end_date": "2026-09-21T00:00:00+08:00",
        "mudu": {
            **mudu_sandbox.tap_config(data, sandbox.base_url),
            "daily_call_limit": 3,
            "check_in_test": True,
        },
    }
    checked = run_tap(tmp_path, config, extra_args=["--test"])
    assert checked.returncode == 0, checked.stderr
    assert len(sandbox.calls_to("/userRecords")) == 1 and checked.records(MUDU_STREAM)
    assert private_call_ledger.exists()

    sandbox.reset_calls()
    (tmp_path / "run").mkdir()
    run = run_tap(tmp_path / "run", config)  # a first run: no state, yet the test's call is counted
    assert len(sandbox.calls_to("/userRecords")) == 2  # 3 a day, 1 spent by --test
    ledger = next(iter(run.last_state["bookmarks"][MUDU_STREAM]["call_ledger"].values()))
    assert ledger["calls"] == 3
    assert any("daily call budget spent: 3 of 3" in w for w in warning_lines(run.stderr)), run.stderr


# --------------------------------------------------------- a run given no state


def test_run_without_state_keeps_the_days_mudu_call_count(tmp_path: Path, sandbox: Sandbox) -> None:
    data = mudu_sandbox.register(sandbox, mudu_sandbox.MuduData(channels={"5005": 950}))
    config = {
        "start_date": "2026-09-20T00:00:00+08:00",
        "end_date": "2026-09-21T00:00:00+08:00",
        "mudu": {**mudu_sandbox.tap_config(data, sandbox.base_url), "daily_call_limit": 10},
    }
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr
    assert len(sandbox.calls_to("/userRecords")) == 10  # 1000 rows a day at 100 a call: 10 calls, the budget

    sandbox.reset_calls()
    (tmp_path / "full-refresh").mkdir()
    again = run_tap(tmp_path / "full-refresh", config)  # `meltano run --full-refresh`: no --state
    assert sandbox.calls_to("/userRecords") == []
    assert any("daily call budget spent: 10 of 10" in w for w in warning_lines(again.stderr)), again.stderr
    today = datetime.now(timezone.utc).astimezone(mudu_sandbox.CHINA).date().isoformat()
    ledger = next(iter(again.last_state["bookmarks"][MUDU_STREAM]["call_ledger"].values()))
    assert ledger == {"day": today, "calls": 10}


# ---------------------------------------------------------------------- Meltano

MELTANO = str(Path(sys.executable).with_name("meltano"))


@pytest.fixture(scope="module")
def tap_installed() -> None:
    subprocess.run(
        [MELTANO, "install", "extractor", "tap-livestream-viewers"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )


def meltano_run(tmp_path: Path, settings: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    """``meltano run`` into JSONL with the tap's settings only from environment variables."""
    env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "TARGET_JSONL_DESTINATION_PATH": str(tmp_path),
        **{f"TAP_LIVESTREAM_VIEWERS_{name}": value for name, value in settings.items()},
    }
    return subprocess.run(
        [MELTANO, "run", *flags, "tap-livestream-viewers", "target-jsonl"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def mudu_env(box: Sandbox, data: mudu_sandbox.MuduData, **more: str) -> dict[str, str]:
    return {
        "START_DATE": "2026-09-20T00:00:00+08:00",
        "END_DATE": "2026-09-21T00:00:00+08:00",
        "MUDU_ACCESS_TOKEN": data.token,
        "MUDU_BASE_URL": f"{box.base_url}/api",
        "MUDU_CHANNEL_IDS": json.dumps(list(data.channels)),
        **more,
    }


@pytest.mark.meltano
def test_meltano_run_with_a_bad_setting_from_the_environment_fails_with_one_line(
    tmp_path: Path, sandbox: Sandbox, tap_installed: None
) -> None:
    data = mudu_sandbox.register(sandbox, mudu_sandbox.MuduData(channels={"5005": 20}))
    # (not start_date "yesterday": Meltano turns it into a date-time, it is a date_iso8601 setting)
    result = meltano_run(tmp_path, mudu_env(sandbox, data, PROVIDER_TIMEZONE="Mars/Olympus"))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-5000:]
    assert "provider_timezone: 'Mars/Olympus' is not an IANA time zone" in output, output[-3000:]
    assert "Traceback" not in output
    assert sandbox.calls_to("") == []
    assert data.token not in output


@pytest.mark.meltano
def test_meltano_full_refresh_keeps_the_days_mudu_call_count(
    tmp_path: Path, sandbox: Sandbox, tap_installed: None
) -> None:
    data = mudu_sandbox.register(sandbox, mudu_sandbox.MuduData(channels={"5005": 250}))
    settings = mudu_env(sandbox, data, MUDU_DAILY_CALL_LIMIT="2")
    first = meltano_run(tmp_path, settings)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(sandbox.calls_to("/userRecords")) == 2  # the day's budget (here 2) is spent

    sandbox.reset_calls()
    again = meltano_run(tmp_path, settings, "--full-refresh")  # Meltano passes no state
    assert again.returncode == 0, again.stderr[-3000:]
    assert sandbox.calls_to("/userRecords") == []
    assert "daily call budget spent: 2 of 2" in again.stderr
