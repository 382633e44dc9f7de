"""A partition's state is read and written in one module (``state.py``), in the form users have saved.

Users resume nightly runs from saved states: every form the tap writes must read back and be
written again byte for byte (key order included), a form it cannot use must be refused with
the field named, and no module but ``state.py`` may read or write those keys, so the form has
one owner. Provider extras (Nuoyun's frontier, Shangzhibo's stop_at/high_water) are declared
by the provider module; the shared modules name none of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import ROOT, all_providers_served, run_tap
from sandbox import Sandbox
from tap_livestream_viewers import state
from tap_livestream_viewers.client import LivestreamStream
from tap_livestream_viewers.providers import PROVIDERS
from tap_livestream_viewers.providers.mudu import MuduUserRecordsStream
from tap_livestream_viewers.providers.nuoyun import NuoyunUserDurationsStream
from tap_livestream_viewers.providers.shangzhibo import ShangzhiboUserVisitsStream
from tap_livestream_viewers.providers.talkcloud import TalkcloudLoginRecordsStream
from tap_livestream_viewers.timeutil import zone

SHANGHAI = zone("Asia/Shanghai")
WINDOW = {"window_start": "2026-09-01T00:00:00+08:00", "window_end": "2026-10-01T00:00:00+08:00"}
OWN_KEYS = ("context", "replication_key", "replication_key_value", "progress")


def stream_types() -> dict[str, type[LivestreamStream]]:
    """Every stream class of every provider, by name (the config enables them all)."""
    found: dict[str, type[LivestreamStream]] = {}
    for module in PROVIDERS:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, LivestreamStream)
                and getattr(value, "name", None)
            ):
                found[value.name] = value
    return found


# Each form exactly as the tap wrote it before the state had one module (key order included).
SAVED_FORMS = [
    (
        "window_in_flight",
        MuduUserRecordsStream,
        {
            "context": {"channel_id": "263218"},
            "replication_key": "first_login_time",
            "replication_key_value": "2026-09-01T00:00:00+08:00",
            "progress": {**WINDOW, "next_page": 11, "page_size": 100},
        },
    ),
    (
        "provider_serves_its_own_page_size",
        TalkcloudLoginRecordsStream,
        {
            "context": {"serial": "864152130"},
            "progress": {**WINDOW, "next_page": 2, "page_size": 100, "served_page_size": 26},
        },
    ),
    (
        "nuoyun_frontier_total_unknown",
        NuoyunUserDurationsStream,
        {"progress": {**WINDOW, "next_page": 1, "page_size": 500, "frontier": 0, "total": None}},
    ),
    (
        "nuoyun_frontier_and_gateway_page_size",
        NuoyunUserDurationsStream,
        {
            "replication_key": "update_window_end",
            "replication_key_value": "2026-08-01T00:00:00+08:00",
            "progress": {
                **WINDOW,
                "next_page": 3,
                "page_size": 500,
                "served_page_size": 40,
                "frontier": 80,
                "total": 1277,
                "gateway_page_size": 40,
            },
        },
    ),
    (
        "shangzhibo_newest_first_no_visit_yet",
        ShangzhiboUserVisitsStream,
        {
            "context": {"agent_id": 105131, "user_id": 15460259},
            "progress": {
                "next_page": 2,
                "page_size": 1000,
                "stop_at": "2026-09-01T00:00:00+08:00",
                "high_water": None,
            },
        },
    ),
    (
        "shangzhibo_newest_first_with_high_water",
        ShangzhiboUserVisitsStream,
        {
            "context": {"agent_id": 105131, "user_id": 15460259},
            "replication_key": "visitAt",
            "replication_key_value": "2026-09-01T00:00:00+08:00",
            "progress": {
                "next_page": 5,
                "page_size": 1000,
                "stop_at": "2026-09-01T00:00:00+08:00",
                "high_water": "2026-09-30T22:37:37.736000+00:00",
            },
        },
    ),
    (
        "bookmark_only",
        TalkcloudLoginRecordsStream,
        {
            "context": {"thirdroomid": "r-7"},
            "replication_key": "entertime_utc",
            "replication_key_value": "2026-10-01T00:00:00+08:00",
        },
    ),
]


@pytest.mark.parametrize(("case", "stream", "saved"), SAVED_FORMS, ids=[c[0] for c in SAVED_FORMS])
def test_every_saved_form_reads_back_and_is_written_again_byte_for_byte(
    case: str, stream: type[LivestreamStream], saved: dict
) -> None:
    loaded = state.load(saved, stream.state_shape(), SHANGHAI)
    assert json.dumps(loaded.to_state()) == json.dumps(saved)
    if loaded.progress is not None:  # the writer a run uses after every page
        rewritten: dict = {}
        state.SavedPartition(rewritten, stream.state_shape(), SHANGHAI).save_progress(loaded.progress)
        assert json.dumps(rewritten["progress"]) == json.dumps(saved["progress"])


def test_provider_extras_are_typed_in_the_record() -> None:
    saved = SAVED_FORMS[3][2]
    progress = state.load(saved, NuoyunUserDurationsStream.state_shape()).progress
    assert progress is not None and progress.window.end == datetime(2026, 9, 30, 16, tzinfo=timezone.utc)
    extras = progress.extras
    assert (extras.frontier, extras.total, extras.gateway_page_size) == (80, 1277, 40)  # type: ignore[union-attr]
    users = state.load(SAVED_FORMS[5][2], ShangzhiboUserVisitsStream.state_shape()).progress
    assert users is not None and users.extras is not None
    assert users.extras.high_water == datetime(2026, 9, 30, 22, 37, 37, 736000, tzinfo=timezone.utc)  # type: ignore[attr-defined]


BAD_FORMS = [
    (
        "frontier_negative",
        NuoyunUserDurationsStream,
        {"progress": {**WINDOW, "next_page": 2, "frontier": -1}},
        "progress.frontier is -1",
    ),
    (
        "total_as_text",
        NuoyunUserDurationsStream,
        {"progress": {**WINDOW, "next_page": 2, "total": "9"}},
        "progress.total is '9'",
    ),
    (
        "stop_at_missing",
        ShangzhiboUserVisitsStream,
        {"progress": {"next_page": 2, "high_water": None}},
        "progress.stop_at is None",
    ),
    (
        "high_water_not_a_time",
        ShangzhiboUserVisitsStream,
        {"progress": {"next_page": 2, "stop_at": WINDOW["window_start"], "high_water": "soon"}},
        "progress.high_water is 'soon'",
    ),
    (
        "window_end_missing",
        MuduUserRecordsStream,
        {"progress": {"window_start": WINDOW["window_start"], "next_page": 2}},
        "progress.window_end is None",
    ),
    (
        "next_page_zero",
        TalkcloudLoginRecordsStream,
        {"progress": {**WINDOW, "next_page": 0}},
        "progress.next_page is 0",
    ),
    (
        "bookmark_not_a_time",
        MuduUserRecordsStream,
        {"replication_key_value": 20260901},
        "replication_key_value is 20260901",
    ),
]


@pytest.mark.parametrize(("case", "stream", "saved", "named"), BAD_FORMS, ids=[c[0] for c in BAD_FORMS])
def test_a_form_the_stream_cannot_use_is_refused_naming_the_field(
    case: str, stream: type[LivestreamStream], saved: dict, named: str
) -> None:
    with pytest.raises(state.StateProblem, match=re.escape(named)):
        state.load(saved, stream.state_shape())


def test_a_served_page_size_it_cannot_read_is_ignored_not_refused() -> None:
    # A hint the tap can do without (it learns the size again from the next answer), as before.
    saved = {"progress": {**WINDOW, "next_page": 2, "page_size": 100, "served_page_size": "many"}}
    progress = state.load(saved, MuduUserRecordsStream.state_shape()).progress
    assert progress is not None and progress.served_page_size is None
    assert "served_page_size" not in progress.to_state()


def test_finishing_a_window_moves_the_bookmark_and_keeps_the_saved_order() -> None:
    shape = MuduUserRecordsStream.state_shape()
    saved: dict = {"context": {"channel_id": "1"}, "progress": {**WINDOW, "next_page": 4, "page_size": 100}}
    partition = state.SavedPartition(saved, shape, SHANGHAI)
    end = partition.load().progress.window.end  # type: ignore[union-attr]
    partition.finish("first_login_time", end)
    assert list(saved) == ["context", "replication_key", "replication_key_value"]
    assert saved["replication_key_value"] == "2026-10-01T00:00:00+08:00"
    partition.finish("first_login_time", None)  # nothing newer seen: the bookmark stays
    assert saved["replication_key_value"] == "2026-10-01T00:00:00+08:00"


def test_only_a_window_none_of_whose_pages_was_read_is_dropped() -> None:
    shape = MuduUserRecordsStream.state_shape()
    unstarted = {"progress": {**WINDOW, "next_page": 1, "page_size": 100}}
    assert state.SavedPartition(unstarted, shape).drop_unstarted_window() is None
    assert "progress" not in unstarted
    started = {"progress": {**WINDOW, "next_page": 3, "page_size": 100}}
    kept = state.SavedPartition(started, shape).drop_unstarted_window()
    assert kept is not None and kept.next_page == 3 and started["progress"]["next_page"] == 3


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Sandbox, dict]]:
    with all_providers_served() as served:
        yield served


def test_every_state_a_real_run_emits_reads_back_and_is_written_again_unchanged(
    tmp_path: Path, sandbox: tuple[Sandbox, dict]
) -> None:
    _box, providers = sandbox
    # Small pages: every provider saves windows in flight (and Mudu stops on its budget).
    small = {key: {**value, "page_size": 3} for key, value in providers.items()}
    config = {"start_date": "2026-09-01T00:00:00+08:00", "end_date": "2026-10-01T00:00:00+08:00", **small}
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    types = stream_types()
    seen: set[str] = set()
    for emitted in run.states:
        for name, stream_state in emitted["bookmarks"].items():
            shape = types[name].state_shape()
            for saved in [stream_state, *(stream_state.get("partitions") or [])]:
                if not {"progress", "replication_key_value"} & set(saved):
                    continue
                own = {key: saved[key] for key in saved if key in OWN_KEYS}
                loaded = state.load(saved, shape, SHANGHAI)
                assert loaded.to_state() == own
                if "progress" in saved:
                    assert json.dumps(loaded.progress.to_state()) == json.dumps(saved["progress"])  # type: ignore[union-attr]
                    seen.add(name)
    # Each form was met: windows, Nuoyun's frontier, Shangzhibo's newest-first read.
    assert {
        "mudu_user_records",
        "nuoyun_user_durations",
        "shangzhibo_user_visits",
        "talkcloud_login_records",
    } <= seen


# --------------------------------------------------------------------- one owner

PACKAGE = ROOT / "tap_livestream_viewers"
STATE_KEYS = re.compile(
    r"""["'](progress|replication_key_value|replication_key|window_start|window_end|served_page_size"""
    r"""|frontier|gateway_page_size|stop_at|high_water)["']"""
)


def sources() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_but_state_reads_or_writes_a_partitions_keys() -> None:
    touches = [
        f"{name}:{number}: {line.strip()}"
        for name, text in sources().items()
        if name != "tap_livestream_viewers/state.py"
        for number, line in enumerate(text.splitlines(), 1)
        if STATE_KEYS.search(line)
    ]
    assert touches == []


def test_only_the_base_stream_takes_a_partitions_raw_state() -> None:
    raw_access = re.compile(r"\b(partition_state|get_context_state)\(")
    users = [
        f"{name}: {line.strip()}"
        for name, text in sources().items()
        for line in text.splitlines()
        if raw_access.search(line) and name != "tap_livestream_viewers/client.py"
    ]
    assert users == []


def test_the_shared_state_code_names_no_provider_or_provider_field() -> None:
    shared = sources()
    provider_words = re.compile(
        r"frontier|gateway_page_size|stop_at|high_water|nuoyun|shangzhibo|mudu|talk-?cloud", re.IGNORECASE
    )
    named = [
        f"{name}: {line.strip()}"
        for name in ("tap_livestream_viewers/state.py",)
        for line in shared[name].splitlines()
        if provider_words.search(line)
    ]
    assert named == []
