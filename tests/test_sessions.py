"""``viewer_sessions`` and derived streams, through the real tap CLI against the sandbox.

What a user relies on (issue 10): one table for every provider with one row per provider
session row, durations in seconds and times in UTC with their offset; a ``session_key`` that
does not depend on which streams are selected or on the run; and not one provider call more
for it (Mudu allows 10 a day): with only ``viewer_sessions`` selected the provider streams are
read, not emitted, and their state advances as it would have.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import duckdb
import psycopg
import pytest
from test_meltano import meltano_env, meltano_installed, meltano_run  # noqa: F401 (fixtures)

from conftest import ROOT, discover, run_tap, run_tap_until_killed, select_only
from sandbox import mudu as md
from sandbox import nuoyun as ny
from sandbox import shangzhibo as sz
from sandbox import talkcloud as tk
from sandbox.__main__ import build, tap_settings
from scripts import show_landed
from tap_livestream_viewers.providers import sessions
from tap_livestream_viewers.timeutil import hms_to_seconds

UTC = timezone.utc
CHINA = timezone(timedelta(hours=8))
SESSIONS = "viewer_sessions"
START = datetime(2026, 9, 1, tzinfo=UTC)
#: Every provider stream and the provider it reads.
PROVIDER_STREAMS = {
    "shangzhibo_activity_visits": "shangzhibo",
    "shangzhibo_user_visits": "shangzhibo",
    "mudu_user_records": "mudu",
    "nuoyun_user_durations": "nuoyun",
    "talkcloud_login_records": "talkcloud",
}
STAGE = "talkcloud_stage_users"
TIME_FIELDS = ("joined_at", "left_at")
SECONDS_FIELDS = ("watch_seconds", "online_seconds", "live_seconds", "playback_seconds")
README = ROOT / "README.md"
MELTANO_START, MELTANO_END = "2026-09-01T00:00:00+08:00", "2026-10-01T00:00:00+08:00"


def run_end() -> datetime:
    """A fixed end for every run of a test: yesterday, midnight UTC (inside every provider's lag)."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def register_all(box, *, shangzhibo: sz.ShangzhiboData | None = None) -> dict:
    """All four providers on their demo data; Mudu's quota raised so a test may run several times."""
    return {
        "shangzhibo": sz.register(box, shangzhibo),
        "mudu": md.register(box, md.MuduData(daily_quota=100)),
        "nuoyun": ny.register(box),
        "talkcloud": tk.register(box),
    }


def make_config(box, data: dict, end: datetime, **overrides) -> dict:
    config = {
        "start_date": START.isoformat(),
        "end_date": end.isoformat(),
        "backoff_base_seconds": 0.05,
        "shangzhibo": sz.tap_config(data["shangzhibo"], box.base_url),
        "mudu": md.tap_config(data["mudu"], box.base_url),
        "nuoyun": ny.tap_config(data["nuoyun"], box.base_url),
        "talkcloud": tk.tap_config(data["talkcloud"], box.base_url),
    }
    config.update(overrides)
    return config


def calls_of(box) -> list[tuple]:
    """Every call the sandbox saw, as what was asked (method, path, query, body)."""
    return [(c.method, c.path, tuple(sorted(c.query.items())), c.body) for c in box.calls]


def mudu_calls_today(state: dict) -> int:
    """Calls Mudu's call ledger in the state counts for today (one token)."""
    (entry,) = state["bookmarks"]["mudu_user_records"]["call_ledger"].values()
    return entry["calls"]


def without_call_ledger(bookmarks: dict) -> dict:
    """The bookmarks without Mudu's call ledger (a count of the day's calls, not a position)."""
    return {
        stream: {key: value for key, value in tree.items() if key != "call_ledger"}
        for stream, tree in bookmarks.items()
    }


def utc_of(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def china_minutes(text: str) -> str:
    """Mudu's provider-local ``YYYY-MM-DD HH:MM`` as UTC RFC 3339."""
    return utc_of(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=CHINA))


def china_seconds(text: str) -> str:
    """Nuoyun's provider-local ``YYYY-MM-DD HH:MM:SS`` as UTC RFC 3339."""
    return utc_of(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA))


# ------------------------------------------------------------------ one row per session


def test_viewer_sessions_has_one_row_per_provider_row_in_seconds_and_utc(sandbox, tmp_path):
    data = register_all(sandbox)
    end = run_end()
    run = run_tap(tmp_path, make_config(sandbox, data, end))
    assert run.returncode == 0, run.stderr
    rows = run.records(SESSIONS)
    by_key = {row["session_key"]: row for row in rows}
    assert len(by_key) == len(rows)  # no session twice

    # exactly one session per provider row, of that provider and stream
    provider_rows = 0
    for stream, provider in PROVIDER_STREAMS.items():
        records = run.records(stream)
        assert records, stream
        provider_rows += len(records)
        mine = [row for row in rows if row["source_stream"] == stream]
        assert len(mine) == len(records), stream
        assert {row["provider"] for row in mine} == {provider}
    assert len(rows) == provider_rows
    # stage users are entries of the login records: never a session of their own
    assert run.records(STAGE) and not any(row["source_stream"] == STAGE for row in rows)

    for row in rows:
        for field in TIME_FIELDS:
            assert row[field] is None or row[field].endswith("+00:00"), row
        for field in SECONDS_FIELDS:
            assert row[field] is None or (isinstance(row[field], int) and row[field] >= 0), row
        assert row["device_type"] in (None, *sessions.DEVICE_TYPES)
        assert row["grain"] == ("viewer_room_total" if row["provider"] == "nuoyun" else "session")

    # values against what each provider sent, in the units of its document
    activity = next(iter(data["shangzhibo"].activities))
    sent = data["shangzhibo"].visits_between(activity, START, end - timedelta(hours=1))
    assert len(run.records("shangzhibo_activity_visits")) == len(sent)
    for visit in sent:
        viewer = str(visit["userId"]) if visit["userId"] is not None else f"anon:{visit['anonymousId']}"
        joined = utc_of(sz.parse_z(visit["visitAt"]))
        (row,) = [r for r in rows if r["viewer_id"] == viewer and r["joined_at"] == joined]
        assert row["watch_seconds"] == row["online_seconds"] == visit["duration"] * 60  # minutes
        assert row["is_anonymous"] is (visit["userId"] is None)
        assert row["room_id"] == activity

    channel = next(iter(data["mudu"].channels))
    records = data["mudu"].matching(channel, START, end)
    assert len(records) == len(run.records("mudu_user_records"))
    for record in records:
        row = by_key[f"mudu:{channel}:{record['record_id']}"]
        assert row["watch_seconds"] == hms_to_seconds(record["watch_time"])  # HH:MM:SS
        assert row["online_seconds"] == hms_to_seconds(record["online_time"])
        assert row["joined_at"] == china_minutes(record["first_login_time"])
        assert row["left_at"] == china_minutes(record["last_online_time"])
        assert row["device_type"] == {"移动端": "mobile", "电脑端": "pc"}[record["device"]]

    for record in run.records("nuoyun_user_durations"):
        sent_row = data["nuoyun"].by_key[(record["room_id"], record["wechat_user_space_id"])]
        row = by_key[f"nuoyun:{record['room_id']}:{record['wechat_user_space_id']}"]
        assert row["online_seconds"] == sent_row["stay_duration"]  # seconds already
        assert row["live_seconds"] == sent_row["live_duration"]
        assert row["playback_seconds"] == sent_row["playback_duration"]
        assert row["watch_seconds"] == sent_row["live_duration"] + sent_row["playback_duration"]
        assert row["joined_at"] == china_seconds(sent_row["first_visit_time"])
        assert row["ip"] == sent_row["ip"]

    entries = {
        (serial, entry["userid"], int(entry["entertimestamp"])): entry
        for serial, room in data["talkcloud"].entries.items()
        for entry in room
    }
    talkcloud_rows = [row for row in rows if row["provider"] == "talkcloud"]
    for row in talkcloud_rows:
        joined = int(datetime.fromisoformat(row["joined_at"]).timestamp())
        entry = entries[(row["room_id"], row["viewer_id"], joined)]
        assert row["watch_seconds"] == int(entry["duration"])  # a string of seconds
        assert row["left_at"] == utc_of(datetime.fromtimestamp(int(entry["outtimestamp"]), UTC))


# ------------------------------------------------------------------- no extra calls


def test_calls_and_state_are_the_same_with_without_and_with_only_viewer_sessions(sandbox, tmp_path):
    data = register_all(sandbox)
    config = make_config(sandbox, data, run_end())
    catalog = discover(tmp_path, config)
    providers_only = select_only(catalog, *PROVIDER_STREAMS, STAGE)
    runs = {}
    calls = {}
    for name, chosen in (
        ("without", providers_only),
        ("with", select_only(discover(tmp_path, config), *PROVIDER_STREAMS, STAGE, SESSIONS)),
        ("only", select_only(discover(tmp_path, config), SESSIONS)),
    ):
        sandbox.reset_calls()
        runs[name] = run_tap(tmp_path, config, catalog=chosen)
        assert runs[name].returncode == 0, runs[name].stderr
        calls[name] = calls_of(sandbox)

    assert calls["without"], "no provider was called"
    # the same requests (pages in flight together arrive in any order)
    assert sorted(calls["with"]) == sorted(calls["without"])
    assert sorted(calls["only"]) == sorted(calls["without"])
    assert len([c for c in calls["only"] if "/v2/activities/" in c[1]]) <= 10  # Mudu's daily calls

    assert runs["without"].records(SESSIONS) == []
    only = runs["only"]
    emitted = {m["stream"] for m in only.messages if m["type"] in ("RECORD", "SCHEMA")}
    assert emitted == {SESSIONS}  # provider streams read, not emitted
    # the provider streams' state advanced exactly as when they are emitted
    # (Mudu's call ledger counts every call of the day on this machine: 3 calls more per run)
    ledgers = {name: mudu_calls_today(run.last_state) for name, run in runs.items()}
    assert ledgers["with"] - ledgers["without"] == ledgers["only"] - ledgers["with"] == ledgers["without"] > 0
    expected_state = without_call_ledger(runs["without"].last_state["bookmarks"])
    assert without_call_ledger(only.last_state["bookmarks"]) == expected_state
    assert SESSIONS not in only.last_state["bookmarks"]  # a derived stream keeps no state
    keys_with = sorted(r["session_key"] for r in runs["with"].records(SESSIONS))
    assert sorted(r["session_key"] for r in only.records(SESSIONS)) == keys_with

    # and a next run from that state asks nothing the first run read: only Shangzhibo user
    # visits cost their one call (no time filter; the visit at the bookmark comes again, same key)
    sandbox.reset_calls()
    again = run_tap(tmp_path, config, state=only.last_state, catalog=select_only(catalog, SESSIONS))
    assert again.returncode == 0, again.stderr
    assert {c[1] for c in calls_of(sandbox)} == {"/api/v3/agent/105131/user/15460259/stats/visits"}
    assert len(calls_of(sandbox)) == 1
    assert {r["session_key"] for r in again.records(SESSIONS)} <= set(keys_with)


def test_schema_is_written_once_before_the_first_session_and_the_state_after_covers_it(sandbox, tmp_path):
    data = register_all(sandbox)
    run = run_tap(tmp_path, make_config(sandbox, data, run_end()))
    assert run.returncode == 0, run.stderr
    kinds = [m["type"] for m in run.messages if m.get("stream") == SESSIONS]
    assert kinds.count("SCHEMA") == 1 and kinds[0] == "SCHEMA"
    assert run.messages[-1]["type"] == "STATE"  # every session is followed by a STATE
    schema = next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == SESSIONS)
    assert schema["key_properties"] == ["session_key"]
    properties = schema["schema"]["properties"]
    for field in SECONDS_FIELDS:  # so warehouses make BIGINT columns
        assert properties[field]["maximum"] == 2**63 - 1 and properties[field]["minimum"] == -(2**63)
    for field in TIME_FIELDS:
        assert properties[field]["format"] == "date-time"


def test_derived_streams_respect_field_selection_and_stream_maps(sandbox, tmp_path):
    data = register_all(sandbox)
    config = make_config(
        sandbox,
        data,
        run_end(),
        stream_maps={
            STAGE: {"username": "__NULL__"},
            SESSIONS: {"__filter__": "provider == 'talkcloud'", "viewer_id": "md5(viewer_id)"},
        },
    )
    catalog = select_only(discover(tmp_path, config), STAGE, SESSIONS)
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == SESSIONS:
            for item in entry["metadata"]:
                if item["breadcrumb"] == ["properties", "region"]:
                    item["metadata"]["selected"] = False
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    stage = run.records(STAGE)
    assert stage and all("username" not in row for row in stage)
    schemas = {m["stream"]: m["schema"] for m in run.messages if m["type"] == "SCHEMA"}
    assert "username" not in schemas[STAGE]["properties"]
    rows = run.records(SESSIONS)
    assert rows and {row["provider"] for row in rows} == {"talkcloud"}
    assert all("region" not in row and len(row["viewer_id"]) == 32 for row in rows)


def test_a_killed_run_resumed_from_its_last_state_leaves_no_session_out(sandbox, tmp_path):
    data = register_all(sandbox)
    config = make_config(sandbox, data, run_end())
    full = run_tap(tmp_path, config)
    assert full.returncode == 0, full.stderr
    expected = {r["session_key"] for r in full.records(SESSIONS)}
    sandbox.reset_calls()

    killed = run_tap_until_killed(tmp_path, config, lambda states: len(states) >= 12)
    assert killed.returncode != 0
    resumed = run_tap(tmp_path, config, state=killed.states[-1])
    assert resumed.returncode == 0, resumed.stderr
    got = {r["session_key"] for r in killed.records(SESSIONS) + resumed.records(SESSIONS)}
    assert got == expected
    assert len(resumed.records(SESSIONS)) < len(expected)  # it resumed, it did not start over


# ------------------------------------------------------------------------ session_key


def test_session_key_is_the_same_whichever_stream_carried_the_visit_and_across_runs(sandbox, tmp_path):
    """A Shangzhibo visit read as a user visit, then as an activity visit: one key, one row."""
    data = sz.ShangzhiboData(activities={"10024069": 60}, users={15460259: 30})
    visit = data.user_visits[15460259][3]
    shared_activity = visit["activityId"]
    # the same visit as the activity-visits endpoint gives it (plus one more viewer)
    data.visits[shared_activity] = sorted(
        [
            {**data.visits["10024069"][0], "userId": 15460259, "visitAt": visit["visitAt"]},
            data.visits["10024069"][1],
        ],
        key=lambda row: row["visitAt"],
    )
    sz.register(sandbox, data)
    settings = sz.tap_config(data, sandbox.base_url)
    end = run_end()
    base = {"start_date": START.isoformat(), "end_date": end.isoformat(), "backoff_base_seconds": 0.05}

    first = run_tap(tmp_path, {**base, "shangzhibo": settings})
    assert first.returncode == 0, first.stderr
    from_user_visits = {
        r["session_key"]: r for r in first.records(SESSIONS) if r["source_stream"] == "shangzhibo_user_visits"
    }
    assert len(from_user_visits) == len(first.records("shangzhibo_user_visits")) == 30

    both = {**settings, "activity_ids": ["10024069", shared_activity]}
    second = run_tap(tmp_path, {**base, "shangzhibo": both})
    assert second.returncode == 0, second.stderr
    keys = [r["session_key"] for r in second.records(SESSIONS)]
    assert len(keys) == len(set(keys))  # the shared visit is counted once
    in_shared = [r for r in second.records(SESSIONS) if r["room_id"] == shared_activity]
    assert {r["source_stream"] for r in in_shared} == {"shangzhibo_activity_visits"}
    (shared,) = [r for r in in_shared if r["viewer_id"] == "15460259"]
    assert shared["session_key"] in from_user_visits  # same key as when a user visit carried it
    user_visit_rows = len(second.records("shangzhibo_user_visits"))
    in_configured = sum(1 for v in data.user_visits[15460259] if v["activityId"] == shared_activity)
    assert in_configured >= 1
    assert len(keys) == len(second.records("shangzhibo_activity_visits")) + user_visit_rows - in_configured

    # across runs (no state): the same keys
    third = run_tap(tmp_path, {**base, "shangzhibo": both})
    assert sorted(r["session_key"] for r in third.records(SESSIONS)) == sorted(keys)


# ------------------------------------------------------------------ one vocabulary


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("移动端", "mobile"),  # Mudu's document
        ("电脑端", "pc"),
        ("Mac OS", "mac"),  # Shangzhibo's document
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
            "ios",
        ),
        ("iOS", "ios"),  # Nuoyun's example
        ("Android", "android"),
        ("Windows", "pc"),
        ("PlayStation", "other"),
        ("", None),
        ("未知", None),
    ],
)
def test_device_words_map_to_one_small_vocabulary(said, expected):
    assert sessions.device_type(said) == expected


def test_session_rows_have_every_field_and_reject_unknown_ones():
    row = sessions.session(session_key="mudu:1:2", provider="mudu")
    assert list(row) == list(sessions.SCHEMA["properties"])
    with pytest.raises(ValueError, match="not viewer_sessions fields"):
        sessions.session(session_key="x", phone="13000000000")


# ------------------------------------------------------- personal data, through Meltano


@pytest.mark.meltano
@pytest.mark.usefixtures("meltano_installed")
def test_readme_pii_example_hashes_and_drops_personal_data_in_what_landed(tmp_path):
    """``tap-livestream-viewers--pii-hashed`` from meltano.yml, run by Meltano into JSONL files."""
    box, datasets = build()
    base_url = box.start()
    try:
        settings = tap_settings(datasets, base_url)
        plain = run_tap(tmp_path, {"start_date": MELTANO_START, "end_date": MELTANO_END, **settings})
        assert plain.returncode == 0, plain.stderr
        out = tmp_path / "jsonl"
        out.mkdir()
        env = meltano_env(tmp_path, settings, TARGET_JSONL_DESTINATION_PATH=str(out))
        meltano_run(env, "target-jsonl", "tap-livestream-viewers--pii-hashed")
    finally:
        box.stop()

    def landed(stream: str) -> list[dict]:
        return [json.loads(line) for line in (out / f"{stream}.jsonl").read_text().splitlines()]

    salted = "change-this-salt:"  # the salt of the example in meltano.yml

    def hashed(value: str) -> str:
        return hashlib.md5((salted + value).encode()).hexdigest()

    phones = {r["record_id"]: r["phone"] for r in plain.records("mudu_user_records")}
    mudu = landed("mudu_user_records")
    assert len(mudu) == len(phones) and any(phones.values())
    for row in mudu:
        assert row["phone"] == (hashed(phones[row["record_id"]]) if phones[row["record_id"]] else None)

    sent = {(r["room_id"], r["wechat_user_space_id"]): r for r in plain.records("nuoyun_user_durations")}
    nuoyun = landed("nuoyun_user_durations")
    assert len(nuoyun) == len(sent)
    for row in nuoyun:
        original = sent[(row["room_id"], row["wechat_user_space_id"])]
        assert "wechat_user_photo" not in row
        assert row["ip"] == (hashed(original["ip"]) if original["ip"] else None)
        for field in ("openid", "unionid"):
            value = (original.get("third_wechat_info") or {}).get(field)
            assert row["third_wechat_info"].get(field) == (hashed(value) if value else value)
    assert any((r.get("third_wechat_info") or {}).get("openid") for r in sent.values())

    visits = landed("shangzhibo_activity_visits")
    assert visits and all("avatar" not in row for row in visits)

    ips = {r["session_key"]: r["ip"] for r in plain.records(SESSIONS)}
    landed_sessions = landed(SESSIONS)
    assert len(landed_sessions) == len(ips) and any(ips.values())
    for row in landed_sessions:
        original = ips[row["session_key"]]
        assert row["ip"] == (hashed(original) if original else None)


@pytest.mark.meltano
@pytest.mark.usefixtures("meltano_installed")
def test_readme_watch_hours_sql_and_demo_summary_on_what_meltano_landed_in_duckdb(tmp_path, capsys):
    """The README's one-table SQL, as written, against DuckDB: the sums of the tap's own rows."""
    sql = README.read_text().split("Watch hours per room per day", 1)[1].split("```sql", 1)[1].split("```")[0]
    box, datasets = build()
    base_url = box.start()
    try:
        settings = tap_settings(datasets, base_url)
        direct = run_tap(tmp_path, {"start_date": MELTANO_START, "end_date": MELTANO_END, **settings})
        assert direct.returncode == 0, direct.stderr
        database = tmp_path / "warehouse.duckdb"
        env = meltano_env(tmp_path, settings, TARGET_DUCKDB_FILEPATH=str(database))
        meltano_run(env, "target-duckdb")
    finally:
        box.stop()

    rows = {r["session_key"]: r for r in direct.records(SESSIONS)}  # one row per key, as upserted
    expected: dict[tuple, list] = {}
    for row in rows.values():
        day = (datetime.fromisoformat(row["joined_at"]) + timedelta(hours=8)).date()  # China time
        group = expected.setdefault((row["provider"], row["room_id"], day), [set(), 0])
        group[0].add(row["viewer_id"])
        group[1] += row["watch_seconds"] or 0
    connection = duckdb.connect(str(database), read_only=True)
    try:
        landed = {(p, r, d): (v, h) for p, r, d, v, h in connection.execute(sql).fetchall()}
        assert set(landed) == set(expected)
        for key, (viewers, seconds) in expected.items():
            assert landed[key][0] == len(viewers), key
            assert abs(float(landed[key][1]) - seconds / 3600) <= 0.0051, key  # rounded to 2 places
        show_landed.print_sessions_summary(connection, "livestream.viewer_sessions")
    finally:
        connection.close()
    summary = capsys.readouterr().out
    for provider in ("mudu", "nuoyun", "shangzhibo", "talkcloud"):
        mine = [r for r in rows.values() if r["provider"] == provider]
        sessions_count = sum(1 for r in mine if r["grain"] == "session")
        line = next(line.split() for line in summary.splitlines() if line.split()[:1] == [provider])
        assert line[1:4] == [
            str(len({r["viewer_id"] for r in mine})),
            str(sessions_count),
            str(len(mine) - sessions_count),
        ]


@pytest.mark.meltano
def test_readme_watch_hours_sql_runs_as_written_on_postgresql(postgres):
    """The same query on target-postgres' column types (TIMESTAMP in UTC, BIGINT), by China day."""
    sql = README.read_text().split("Watch hours per room per day", 1)[1].split("```sql", 1)[1].split("```")[0]
    with psycopg.connect(postgres.replace("postgresql+psycopg://", "postgresql://")) as connection:
        connection.execute(
            "create schema livestream; create table livestream.viewer_sessions "
            "(provider text, room_id text, viewer_id text, joined_at timestamp, watch_seconds bigint)"
        )
        connection.execute(
            "insert into livestream.viewer_sessions values "
            "('mudu', '1', 'a', '2026-09-20 15:59:00', 3600), "  # 23:59 in China: 20 September
            "('mudu', '1', 'b', '2026-09-20 16:00:00', 1800), "  # 00:00 in China: 21 September
            "('mudu', '1', 'b', '2026-09-20 17:00:00', 1800)"
        )
        rows = connection.execute(sql).fetchall()
    assert [(p, r, str(d), v, float(h)) for p, r, d, v, h in rows] == [
        ("mudu", "1", "2026-09-20", 1, 1.0),
        ("mudu", "1", "2026-09-21", 1, 1.0),
    ]
