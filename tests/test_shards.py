"""Shards: one Mudu account split over several tap processes that share one token's budget.

Mudu's document: "本接口每日调用上限为10次，次日0点重置" (10 calls a day per access token). Two
shards (disjoint ``mudu.channel_ids``, one token) started at the same moment must together
make at most 10 calls a provider day, read no page twice, and deliver the whole account over
the days. The count is claimed before each call from a store every process sees: the
machine-local file (same ``$XDG_STATE_HOME``), or PostgreSQL (``call_budget_store``) for
shards on several machines. The sandbox's Mudu enforces its own quota and logs every call.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import subprocess
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from conftest import TAP, TapRun, run_tap
from sandbox import Sandbox
from sandbox import mudu as mudu_sandbox
from tap_livestream_viewers import call_ledger
from tap_livestream_viewers.budget_store import TABLE, PostgresCallLedger

STREAM = "mudu_user_records"
EVENT_DAY = {"start_date": "2026-09-20T00:00:00+08:00", "end_date": "2026-09-21T00:00:00+08:00"}
# 2,000 rows on four channels: 5 + 8 + 4 + 6 = 23 calls of 100 rows, so three provider days.
CHANNELS = {"7001": 450, "7002": 700, "7003": 300, "7004": 550}
SHARDS = (["7001", "7002"], ["7003", "7004"])
PASSWORD = "Sh4rdPassw0rd"


def with_password(url: str) -> str:
    """The fixture's URL with a password (the server trusts loopback, so any password works)."""
    return url.replace("postgresql+psycopg://postgres@", f"postgresql://postgres:{PASSWORD}@")


def run_together(
    tmp_path: Path, configs: list[dict], states: list[dict | None], *, machines: bool = False
) -> list[TapRun]:
    """Start one tap process per shard at the same moment and wait for all of them.

    ``machines``: each shard gets its own ``$XDG_STATE_HOME``, as on separate machines.
    """
    procs = []
    for number, (config, state) in enumerate(zip(configs, states, strict=True)):
        folder = tmp_path / f"shard-{number}"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config))
        args = [TAP, "--config", str(folder / "config.json")]
        if state is not None:
            (folder / "state.json").write_text(json.dumps(state))
            args += ["--state", str(folder / "state.json")]
        env = {**os.environ, **({"XDG_STATE_HOME": str(folder / "xdg-state")} if machines else {})}
        procs.append(
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    runs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        messages = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        runs.append(TapRun(proc.returncode, messages, stderr, stdout))
    return runs


def new_day(box: Sandbox, states: list[dict | None], store_url: str | None) -> list[dict | None]:
    """A day passes: the provider's quota resets and every count of the tap becomes yesterday's.

    The tap reads the real clock; its counts (each shard's state, the local file, the
    PostgreSQL table) are dated one day earlier, which is what a real day does to them.
    """
    box.advance_clock(days=1)
    local = call_ledger.default_path()
    if local.exists():
        entries = json.loads(local.read_text())
        for entry in entries.values():
            entry["day"] = _yesterday(entry["day"])
        local.write_text(json.dumps(entries))
    if store_url:
        with psycopg.connect(store_url, autocommit=True) as connection:
            connection.execute(
                f"DELETE FROM {TABLE} WHERE provider_day < (SELECT max(provider_day) FROM {TABLE})"
            )
            connection.execute(f"UPDATE {TABLE} SET provider_day = provider_day - 1")
    aged = copy.deepcopy(states)
    for state in aged:
        for entry in ((state or {}).get("bookmarks", {}).get(STREAM, {}).get("call_ledger") or {}).values():
            entry["day"] = _yesterday(entry["day"])
    return aged


def _yesterday(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


@pytest.mark.parametrize("store", ["file", "postgres"])
def test_two_shards_started_together_share_ten_calls_a_day_and_read_the_account_once(
    tmp_path: Path, box: Sandbox, store: str, request: pytest.FixtureRequest
) -> None:
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels=dict(CHANNELS)))
    store_url = with_password(request.getfixturevalue("postgres")) if store == "postgres" else None
    base = {
        **EVENT_DAY,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        **({"call_budget_store": store_url} if store_url else {}),
    }
    configs = [
        {**base, "mudu": {**mudu_sandbox.tap_config(data, box.base_url), "channel_ids": ids}}
        for ids in SHARDS
    ]
    expected = {(c, row["record_id"]) for c in CHANNELS for row in data.matching(c)}
    assert len(expected) == sum(CHANNELS.values())

    states: list[dict | None] = [None, None]
    rows: list[tuple[str, int]] = []
    pages: list[tuple[str, int]] = []
    runs_seen: list[TapRun] = []
    for day in range(4):
        box.reset_calls()
        # With the PostgreSQL store the shards share no local file: as on two machines.
        runs = run_together(tmp_path, configs, states, machines=store == "postgres")
        runs_seen += runs
        for run in runs:
            assert run.returncode == 0, run.stderr
        calls = box.calls_to("/userRecords")
        # The sandbox's own count: never above 10 a day, and never a refusal.
        assert len(calls) <= 10, f"day {day + 1}: {len(calls)} calls"
        assert all(call.status == 200 for call in calls), [call.status for call in calls]
        pages += [(call.path.split("/")[-2], call.json()["p"]) for call in calls]
        rows += [(r["channel_id"], r["record_id"]) for run in runs for r in run.records(STREAM)]
        states = [run.last_state for run in runs]
        states = new_day(box, states, store_url)

    # 23 pages in all, each asked once, over the days, by the shard owning its channel.
    assert len(pages) == len(set(pages)) == 23
    assert sorted(used for used in data.usage.values() if used) == [3, 10, 10]
    assert len(rows) == len(set(rows))
    assert set(rows) == expected
    for run in runs_seen:
        assert data.token not in run.stdout + run.stderr
        assert PASSWORD not in run.stdout + run.stderr


def _claim_from_file(path: str, start, results) -> None:
    start.wait()
    results.put(call_ledger.LocalCallLedger(Path(path)).claim("fingerprint", "2026-11-20", 10))


def _claim_from_postgres(url: str, start, results) -> None:
    start.wait()
    results.put(PostgresCallLedger(url).claim("fingerprint", "2026-11-20", 10))


def race(target, where: str) -> list:
    """Twenty processes claim one call each at the same moment; their answers."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=target, args=(where, start, results)) for _ in range(20)]
    for worker in workers:
        worker.start()
    start.set()
    answers = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return answers


def test_twenty_processes_racing_on_the_local_ledger_get_exactly_ten_calls(tmp_path: Path) -> None:
    answers = race(_claim_from_file, str(tmp_path / "call-ledger.json"))
    assert sorted(a for a in answers if a is not None) == list(range(1, 11))
    assert answers.count(None) == 10
    assert json.loads((tmp_path / "call-ledger.json").read_text())["fingerprint"]["calls"] == 10


def test_twenty_processes_racing_on_postgres_get_exactly_ten_calls_and_the_table_is_created(postgres) -> None:
    url = with_password(postgres)
    answers = race(_claim_from_postgres, url)
    assert sorted(a for a in answers if a is not None) == list(range(1, 11))
    assert answers.count(None) == 10
    with psycopg.connect(url) as connection:
        assert connection.execute(f"SELECT calls FROM {TABLE}").fetchall() == [(10,)]


def test_call_budget_store_that_is_not_postgresql_is_one_line_naming_the_setting(
    tmp_path: Path, box: Sandbox
) -> None:
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"7001": 10}))
    config = {
        **EVENT_DAY,
        "call_budget_store": f"mysql://root:{PASSWORD}@db:3306/x",
        "mudu": mudu_sandbox.tap_config(data, box.base_url),
    }
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if "call_budget_store" in line]
    assert len(lines) == 1 and "postgresql://" in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert PASSWORD not in run.stderr + run.stdout
    assert box.calls_to("/userRecords") == []


def test_unreachable_call_budget_store_sends_no_call_and_fails_in_one_line_without_the_password(
    tmp_path: Path, box: Sandbox
) -> None:
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(channels={"7001": 10}))
    config = {
        **EVENT_DAY,
        "call_budget_store": f"postgresql://shard:{PASSWORD}@127.0.0.1:1/budget",
        "mudu": mudu_sandbox.tap_config(data, box.base_url),
    }
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert box.calls_to("/userRecords") == []
    errors = [line for line in run.stderr.splitlines() if "call_budget_store" in line and "ERROR" in line]
    assert errors and all("no call was sent" in line for line in errors), run.stderr
    assert "Traceback" not in run.stderr
    assert PASSWORD not in run.stderr + run.stdout
