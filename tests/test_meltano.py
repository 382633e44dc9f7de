"""The tap as users run it: `meltano run` into real DuckDB and PostgreSQL databases.

Each test runs every provider the sandbox emulates, checks the rows that landed (never only
the exit code: target-duckdb can exit 0 having loaded nothing), and that a second run with
Meltano's saved state asks the providers only for what is new.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import psycopg
import pytest

from conftest import ROOT, TapRun, run_tap
from sandbox import Sandbox
from sandbox import mudu as mudu_sandbox
from sandbox.__main__ import build, tap_settings
from scripts.sandbox_env import PREFIX

pytestmark = pytest.mark.meltano

MELTANO = str(Path(sys.executable).with_name("meltano"))
START, END = "2026-09-01T00:00:00+08:00", "2026-10-01T00:00:00+08:00"


@pytest.fixture(scope="module")
def meltano_installed() -> None:
    """``meltano install`` from PyPI alone (every plugin is defined in full in meltano.yml)."""
    subprocess.run(
        [MELTANO, "install"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )


def meltano_env(tmp_path: Path, settings: dict, **extra: str) -> dict[str, str]:
    """Environment that points the tap at the sandbox and Meltano at a private system DB."""
    env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        f"{PREFIX}START_DATE": START,
        f"{PREFIX}END_DATE": END,
        f"{PREFIX}BACKOFF_BASE_SECONDS": "0.05",
    }
    for provider, values in settings.items():
        for name, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"{PREFIX}{provider.upper()}_{name.upper()}"] = text
    env.update(extra)
    return env


def meltano_run(
    env: dict[str, str], target: str, extractor: str = "tap-livestream-viewers"
) -> subprocess.CompletedProcess:
    """``meltano run <extractor> <target>`` in the project; it must succeed."""
    result = subprocess.run(
        [MELTANO, "run", extractor, target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def direct_run(tmp_path: Path, settings: dict) -> TapRun:
    """The tap run directly (no Meltano) on the same settings: what Meltano should land."""
    config = {"start_date": START, "end_date": END, "backoff_base_seconds": 0.05, **settings}
    direct = run_tap(tmp_path, config)
    assert direct.returncode == 0, direct.stderr
    return direct


def expected_rows(tmp_path: Path, settings: dict, direct: TapRun | None = None) -> dict[str, int]:
    """Distinct primary keys per stream, from a direct run of the tap on the same data."""
    direct = direct or direct_run(tmp_path, settings)
    schemas = {m["stream"]: m["key_properties"] for m in direct.messages if m["type"] == "SCHEMA"}
    return {
        stream: len({tuple(r[k] for k in keys) for r in direct.records(stream)})
        for stream, keys in schemas.items()
    }


@dataclass
class DuckDBLoad:
    """One ``meltano run tap-livestream-viewers target-duckdb`` of every sandbox provider."""

    box: Sandbox
    env: dict[str, str]
    database: Path
    direct: TapRun
    expected: dict[str, int]

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        connection = duckdb.connect(str(self.database), read_only=True)
        try:
            result = connection.execute(sql)
            return [d[0] for d in result.description], result.fetchall()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def duckdb_load(meltano_installed, tmp_path_factory) -> Iterator[DuckDBLoad]:
    """Loaded once for the DuckDB tests; the file is named like the demo's (warehouse.duckdb)."""
    tmp_path = tmp_path_factory.mktemp("duckdb")
    box, datasets = build()
    base_url = box.start()
    # a machine-local call ledger of its own, as the per-test one in conftest.py (module scope
    # comes first): Mudu calls counted today by other runs on this machine must not count here
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
        try:
            settings = tap_settings(datasets, base_url)
            direct = direct_run(tmp_path, settings)
            expected = expected_rows(tmp_path, settings, direct)
            assert expected.get("shangzhibo_activity_visits")
            box.reset_calls()
            database = tmp_path / "warehouse.duckdb"
            env = meltano_env(tmp_path, settings, TARGET_DUCKDB_FILEPATH=str(database))
            meltano_run(env, "target-duckdb")
            yield DuckDBLoad(box, env, database, direct, expected)
        finally:
            box.stop()


def test_meltano_run_into_duckdb_lands_every_row_and_resumes_from_state(duckdb_load):
    load = duckdb_load
    _, tables = load.query(
        "select table_name from information_schema.tables where table_schema = 'livestream'"
    )
    # `livestream.<table>` names the schema without ambiguity: the file is not named livestream.
    landed = {table: load.query(f'select count(*) from livestream."{table}"')[1][0][0] for (table,) in tables}
    assert landed == load.expected

    load.box.reset_calls()
    meltano_run(load.env, "target-duckdb")  # state saved by Meltano: the window is done
    assert load.box.calls_to("/stats/user-visits") == []
    _, again = load.query('select count(*) from livestream."shangzhibo_activity_visits"')
    assert again[0][0] == load.expected["shangzhibo_activity_visits"]


def readme_queries() -> list[str]:
    """The SQL blocks of the README's "The warehouse" section, as a user would paste them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The warehouse", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)


def test_readme_watch_hours_queries_answer_from_the_loaded_duckdb(duckdb_load):
    queries = readme_queries()
    tables = {re.search(r"from livestream\.(\w+)", q)[1] for q in queries}
    # one per provider table of viewers (stage users are who went on stage, not who watched;
    # viewer_sessions' one-table query is in its own section, see tests/test_sessions.py)
    assert tables == set(duckdb_load.expected) - {"talkcloud_stage_users", "viewer_sessions"}
    for sql in queries:
        columns, rows = duckdb_load.query(sql)
        assert rows, sql
        assert {"room", "day_china", "watch_hours"} <= set(columns)
        hours = [row[columns.index("watch_hours")] for row in rows]
        assert sum(hours) > 0 and min(hours) >= 0, sql


def test_duckdb_holds_utc_times_bigint_integers_and_lowercased_names(duckdb_load):
    """What the README's "The warehouse" says about times, integer sizes and column names."""
    record = min(duckdb_load.direct.records("mudu_user_records"), key=lambda r: r["record_id"])
    sent = datetime.fromisoformat(record["first_login_time"])  # e.g. 2026-09-20T19:01:00+08:00
    assert sent.utcoffset() == timedelta(hours=8)
    _, rows = duckdb_load.query(
        f"select first_login_time from livestream.mudu_user_records where record_id = {record['record_id']}"
    )
    assert rows[0][0] == sent.astimezone(timezone.utc).replace(tzinfo=None)

    _, types = duckdb_load.query(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'livestream' and data_type in ('HUGEINT', 'BIGINT')"
    )
    assert [t for t in types if t[2] == "HUGEINT"] == []
    assert ("shangzhibo_activity_visits", "duration_seconds", "BIGINT") in types

    columns, _ = duckdb_load.query("select * from livestream.shangzhibo_user_visits limit 0")
    assert {"visitat", "userid", "user_id", "activityid", "lastonlineat"} <= set(columns)


# ------------------------------------------------------------------- PostgreSQL


def test_meltano_run_into_postgres_lands_every_row_once(meltano_installed, postgres, tmp_path):
    box, datasets = build()
    base_url = box.start()
    try:
        settings = tap_settings(datasets, base_url)
        expected = expected_rows(tmp_path, settings)
        env = meltano_env(tmp_path, settings, TARGET_POSTGRES_SQLALCHEMY_URL=postgres)
        meltano_run(env, "target-postgres")
        # a full refresh re-sends everything: upserts on the primary keys keep one row each
        subprocess.run(
            [MELTANO, "run", "--full-refresh", "tap-livestream-viewers", "target-postgres"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        url = postgres.replace("postgresql+psycopg://", "postgresql://")
        deadline = time.time() + 10
        while True:
            try:
                connection = psycopg.connect(url)
                break
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        with connection:
            tables = connection.execute(
                "select table_name from information_schema.tables where table_schema = 'livestream'"
            ).fetchall()
            landed = {
                name: connection.execute(f'select count(*) from livestream."{name}"').fetchone()[0]
                for (name,) in tables
            }
            offsets = connection.execute(
                'select count(*) from livestream."shangzhibo_activity_visits" where "visitAt" is null'
            ).fetchone()[0]
        assert landed == expected
        assert offsets == 0
    finally:
        box.stop()


# ------------------------------------------------------- one provider configured

#: Path fragments of each provider's endpoints in the sandbox.
PROVIDER_PATHS = {
    "shangzhibo": ("/api/activity/", "/api/v3/agent/"),
    "mudu": ("/api/v2/activities/",),
    "nuoyun": ("/Api/RoomRounds/",),
    "talkcloud": ("/WebAPI/",),
}
PROVIDER_STREAMS = {
    "shangzhibo": {"shangzhibo_activity_visits", "shangzhibo_user_visits"},
    "mudu": {"mudu_user_records"},
    "nuoyun": {"nuoyun_user_durations"},
    "talkcloud": {"talkcloud_login_records", "talkcloud_stage_users"},
}


def landed_jsonl(directory: Path) -> dict[str, int]:
    """Distinct lines per stream file that target-jsonl wrote."""
    return {path.stem: len(set(path.read_text().splitlines())) for path in directory.glob("*.jsonl")}


def run_only(tmp_path: Path, providers: tuple[str, ...]) -> None:
    """``meltano run`` with only ``providers``' environment variables: their rows, no other call."""
    box, datasets = build()
    base_url = box.start()
    try:
        settings = {provider: tap_settings(datasets, base_url)[provider] for provider in providers}
        expected = expected_rows(tmp_path, settings)
        assert set(expected) == set().union(*(PROVIDER_STREAMS[p] for p in providers), {"viewer_sessions"})
        box.reset_calls()
        out = tmp_path / "jsonl"
        out.mkdir()
        env = meltano_env(tmp_path, settings, TARGET_JSONL_DESTINATION_PATH=str(out))
        result = meltano_run(env, "target-jsonl")
        assert landed_jsonl(out) == expected
        assert all(expected.values()), expected
        mine = [fragment for provider in providers for fragment in PROVIDER_PATHS[provider]]
        others = [call.path for call in box.calls if not any(fragment in call.path for fragment in mine)]
        assert others == [], others
        for provider in providers:
            assert any(f in call.path for call in box.calls for f in PROVIDER_PATHS[provider]), provider
        assert "Traceback" not in result.stderr
    finally:
        box.stop()


@pytest.mark.parametrize("provider", sorted(PROVIDER_PATHS))
def test_meltano_run_with_one_providers_environment_lands_only_that_provider(
    meltano_installed, tmp_path, provider
):
    """Settings only from environment variables, one provider's alone: its rows, no other call."""
    run_only(tmp_path, (provider,))


def test_meltano_run_with_shangzhibo_and_mudu_environment_lands_exactly_that_pair(
    meltano_installed, tmp_path
):
    """The README's production example: two providers configured, the other two never called."""
    run_only(tmp_path, ("shangzhibo", "mudu"))


def test_meltano_run_shows_a_spent_mudu_budget_as_a_warning_and_lands_what_was_read(
    meltano_installed, tmp_path
):
    """A day's Mudu calls run out mid-channel: a WARNING line in Meltano's log, exit 0, rows landed."""
    box = Sandbox()
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"880002": 450}, daily_quota=3))
    base_url = box.start()
    try:
        settings = {"mudu": mudu_sandbox.tap_config(data, base_url)}  # daily_call_limit 3
        out = tmp_path / "jsonl"
        out.mkdir()
        env = meltano_env(tmp_path, settings, TARGET_JSONL_DESTINATION_PATH=str(out))
        result = meltano_run(env, "target-jsonl")  # asserts exit 0
        # 3 calls of perPage 100 ("最大100"): the first 300 of the channel's 450 watchers
        assert len(box.calls) == 3
        assert landed_jsonl(out) == {"mudu_user_records": 300, "viewer_sessions": 300}  # same 3 calls
        spent = [line for line in result.stderr.splitlines() if "daily call budget spent" in line]
        assert len(spent) == 1
        assert re.search(r"\[warning\s*\]", spent[0]), spent[0]
        progress = [line for line in result.stderr.splitlines() if "partition stopped" in line]
        assert len(progress) == 1 and "0 of 3 Mudu calls left today" in progress[0]
        assert re.search(r"\[info\s*\]", progress[0]), progress[0]
        assert "Traceback" not in result.stderr
        assert data.token not in result.stderr
    finally:
        box.stop()
