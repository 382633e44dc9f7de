"""Every provider through every hostile rule: no row lost, no key empty or colliding, no secret out.

The rules are ``sandbox.hostile.RULES``: one declaration per class of answer a misbehaving
gateway gives (redirects, long ``Retry-After``, a dripping body, HTML or nothing with 200,
``null`` lists, echoed credentials, 5xx bursts, resets, ...). For each rule and each provider
it applies to, the real tap CLI runs against a sandbox with that rule in force, configured
with recognisable secrets (``SECRET-…-XYZ123``). Then, for that run — and, when the run did
not deliver every row, for a second run from its last STATE with the rule removed (the next
day, for Mudu's daily budget) — the test checks:

* **every row arrives**: each row the emulated provider holds is in the first run or the re-run;
* **no primary key is empty, and none is shared by two different rows** (the stream's
  ``key_properties`` from its SCHEMA message, against the row's own identity fields);
* **no secret leaves**: no credential, nor any part of one, in stdout, stderr or the state,
  and no request at all reaches another host (a second sandbox on another port, or the same
  server under another name);
* **what the rule expects** (``Expect``): the exit status, the one line that says what
  happened, every row in the first run.

The runs go three at a time (each is a separate process against its own sandbox), and the
module ends with one line: ``hostile: N rules tried, 0 rows lost, 0 secrets leaked, 0 silent
key collisions``, counted from what was measured; the last test fails if any count is not 0.
"""

from __future__ import annotations

import copy
import json
import re
import typing as t
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import TapRun, run_tap
from sandbox import Sandbox, hostile
from sandbox import mudu as mudu_sandbox
from sandbox import nuoyun as nuoyun_sandbox
from sandbox import shangzhibo as shangzhibo_sandbox
from sandbox import talkcloud as talkcloud_sandbox

UTC = timezone.utc
WORKERS = 3
#: Every secret of the configs below contains both marks; a cut secret still shows one of them.
SECRET_MARKS = re.compile(r"SECRET-|XYZ123")
MUDU_TOKEN = "SECRET-mudu-token-XYZ123"
SHANGZHIBO_TOKEN = "SECRET-szb-token-XYZ123"
NUOYUN_TOKEN = "SECRET-nuoyun-token-XYZ123"
NUOYUN_BODY_SECRET = "SECRET-nuoyun-body-XYZ123"
TALKCLOUD_KEY = "SECRET-talkcloud-key-XYZ123"
#: Fast settings: a 2-second deadline per attempt, 3 attempts, tiny backoff, a 5-second ceiling.
FAST = {
    "request_timeout": 2,
    "max_retries": 2,
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "max_wait_seconds": 5,
}

Identity = tuple


@dataclass
class Setup:
    """One provider's small dataset: the tap settings that read it and the rows it holds."""

    config: dict
    expected: dict[str, set[Identity]]  # stream -> identities of every row the provider holds
    identity: dict[str, t.Callable[[dict], Identity]]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def mudu(box: Sandbox) -> Setup:
    data = mudu_sandbox.register(box, mudu_sandbox.MuduData(token=MUDU_TOKEN, channels={"263218": 150}))
    config = {
        "start_date": "2026-09-20T00:00:00+08:00",
        "end_date": "2026-09-21T00:00:00+08:00",
        "mudu": {**mudu_sandbox.tap_config(data, box.base_url), "page_size": 50},
    }
    rows = {(c, r["record_id"]) for c in data.channels for r in data.matching(c, filter_watch_time=True)}
    return Setup(
        config,
        {"mudu_user_records": rows},
        {"mudu_user_records": lambda r: (r.get("channel_id"), r.get("record_id"))},
    )


def shangzhibo(box: Sandbox) -> Setup:
    data = shangzhibo_sandbox.ShangzhiboData(
        token=SHANGZHIBO_TOKEN,
        activities={"10024069": 200},
        users={},
        period_start=datetime(2026, 9, 1, tzinfo=UTC),
        period_end=datetime(2026, 9, 11, tzinfo=UTC),
    )
    # a visit exactly on the boundary of the first two 7-day windows (inclusive-end rule)
    boundary = dict(
        data.visits["10024069"][0], userId=4242424, anonymousId="", visitAt="2026-09-08T00:00:00.000Z"
    )
    data.visits["10024069"] = sorted([*data.visits["10024069"], boundary], key=lambda row: row["visitAt"])
    shangzhibo_sandbox.register(box, data)
    config = {
        "start_date": "2026-09-01T00:00:00Z",
        "end_date": "2026-09-12T00:00:00Z",
        "shangzhibo": {**shangzhibo_sandbox.tap_config(data, box.base_url), "user_ids": [], "page_size": 50},
    }
    rows = {
        (a, r["userId"], r["anonymousId"] or "", _instant(r["visitAt"]))
        for a, v in data.visits.items()
        for r in v
    }
    return Setup(
        config,
        {"shangzhibo_activity_visits": rows},
        {
            "shangzhibo_activity_visits": lambda r: (
                r.get("activity_id"),
                r.get("userId"),
                r.get("anonymousId") or "",
                _instant(r["visitAt"]) if r.get("visitAt") else None,
            )
        },
    )


def nuoyun(box: Sandbox) -> Setup:
    data = nuoyun_sandbox.register(box, nuoyun_sandbox.NuoyunData(token=NUOYUN_TOKEN, rows=300, rooms=3))
    config = {
        "start_date": "2026-08-31T00:00:00Z",
        "end_date": "2026-11-02T00:00:00Z",
        "nuoyun": {
            "base_url": box.base_url,
            "headers": {"Authorization": f"Bearer {NUOYUN_TOKEN}"},
            "body": {"app_secret": NUOYUN_BODY_SECRET},
            "page_size": 100,
        },
    }
    stream = "nuoyun_user_durations"
    return Setup(
        config,
        {stream: set(data.keys)},
        {stream: lambda r: (r.get("room_id"), r.get("wechat_user_space_id"))},
    )


def talkcloud(box: Sandbox) -> Setup:
    data = talkcloud_sandbox.register(
        box,
        talkcloud_sandbox.TalkcloudData(
            key=TALKCLOUD_KEY, rooms={"864152130": 250}, thirdroomids={}, untidy=False
        ),
    )
    assert data.period_start is not None and data.period_end is not None
    # an entry exactly at the end of the first 28-day window (inclusive-end rule)
    data.add_entry("864152130", data.period_start + timedelta(days=27))
    config = {
        "start_date": (data.period_start - timedelta(days=1)).isoformat(),
        "end_date": (data.period_end + timedelta(minutes=30)).isoformat(),
        "talkcloud": talkcloud_sandbox.tap_config(data, box.base_url),
    }

    def identity(row: dict) -> Identity:
        fields = ("serial", "userid", "entertimestamp", "terminal", "terminal_details")
        return tuple(str(row.get(name)) for name in fields)

    return Setup(
        config,
        {
            "talkcloud_login_records": {identity(r) for rows in data.entries.values() for r in rows},
            "talkcloud_stage_users": {identity(r) for rows in data.stage.values() for r in rows},
        },
        {"talkcloud_login_records": identity, "talkcloud_stage_users": identity},
    )


SETUPS: dict[str, t.Callable[[Sandbox], Setup]] = {
    "mudu": mudu,
    "shangzhibo": shangzhibo,
    "nuoyun": nuoyun,
    "talkcloud": talkcloud,
}
#: Mudu's sandbox keeps a fixed day (its quota day); a re-run happens the next day.
CLOCKS = {"mudu": datetime(2026, 11, 20, 2, 0, tzinfo=UTC)}


# --------------------------------------------------------------------- one trial


@dataclass
class Outcome:
    """What one rule did to one provider's run, measured."""

    rule: hostile.Rule
    provider: str
    runs: list[TapRun]
    rows_lost: dict[str, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    empty_keys: dict[str, int] = field(default_factory=dict)
    collisions: dict[str, int] = field(default_factory=dict)
    duplicates_first_run: int = 0
    foreign_requests: int = 0
    answered: int = 0
    damaged: int = 0  # rows whose identity fields the rule took out

    @property
    def first(self) -> TapRun:
        return self.runs[0]

    @property
    def silent_key_collisions(self) -> int:
        return sum(self.empty_keys.values()) + sum(self.collisions.values())


def _a_day_earlier(node: t.Any) -> None:
    """Every ``{"day", "calls"}`` ledger entry under ``node`` dated one day earlier, in place."""
    if isinstance(node, dict):
        if set(node) == {"day", "calls"}:
            node["day"] = (date.fromisoformat(node["day"]) - timedelta(days=1)).isoformat()
        for value in node.values():
            _a_day_earlier(value)
    elif isinstance(node, list):
        for value in node:
            _a_day_earlier(value)


def next_day(state: dict | None, local_ledger: Path) -> dict | None:
    """A day passes for the tap: the call counts in the state and in the machine-local ledger
    (``$XDG_STATE_HOME``) become yesterday's."""
    if local_ledger.exists():
        entries = json.loads(local_ledger.read_text())
        _a_day_earlier(entries)
        local_ledger.write_text(json.dumps(entries))
    if state is None:
        return None
    aged = copy.deepcopy(state)
    _a_day_earlier(aged)
    return aged


def key_properties(run: TapRun) -> dict[str, list[str]]:
    return {m["stream"]: m.get("key_properties") or [] for m in run.messages if m["type"] == "SCHEMA"}


def trial(rule: hostile.Rule, provider: str, workdir: Path) -> Outcome:
    """Run ``provider`` under ``rule``, then from its state without it if rows are missing."""
    (workdir / "first").mkdir(parents=True, exist_ok=True)
    (workdir / "rerun").mkdir(parents=True, exist_ok=True)
    box = Sandbox(now=CLOCKS.get(provider))
    elsewhere = Sandbox()
    box.start()
    elsewhere.start()
    try:
        setup = SETUPS[provider](box)
        config = {**FAST, **setup.config}
        rules = hostile.install(box, rule, elsewhere=elsewhere.base_url)
        # each trial its own machine-local call ledger, as on a fresh machine
        env = {"XDG_STATE_HOME": str(workdir / "xdg-state")}
        local_ledger = workdir / "xdg-state" / "tap-livestream-viewers" / "call-ledger.json"
        first = run_tap(workdir / "first", config, timeout=180, env=env)
        answered = rules.answered if rules else 0
        damaged = rules.damaged if rules else 0
        hostile.install(box, None)
        runs = [first]
        if _missing(setup, [first]):
            if provider in CLOCKS:
                box.advance_clock(days=1)
            state = next_day(first.last_state, local_ledger)
            runs.append(run_tap(workdir / "rerun", config, state=state, timeout=180, env=env))
        outcome = Outcome(rule, provider, runs, answered=answered, damaged=damaged)
        measure(outcome, setup, elsewhere, box)
        return outcome
    finally:
        box.stop()
        elsewhere.stop()


def _missing(setup: Setup, runs: list[TapRun]) -> dict[str, int]:
    missing = {}
    for stream, expected in setup.expected.items():
        got = {setup.identity[stream](r) for run in runs for r in run.records(stream)}
        missing[stream] = len(expected - got)
    return {stream: count for stream, count in missing.items() if count}


def measure(outcome: Outcome, setup: Setup, elsewhere: Sandbox, box: Sandbox) -> None:
    """Fill in rows lost, leaks, empty or colliding keys, duplicates and foreign requests."""
    runs = outcome.runs
    outcome.rows_lost = _missing(setup, runs)
    for index, run in enumerate(runs):
        label = "first run" if index == 0 else "re-run"
        for place, text in (
            ("stdout", run.stdout),
            ("stderr", run.stderr),
            ("state", json.dumps(run.states)),
        ):
            if SECRET_MARKS.search(text):
                outcome.leaks.append(f"{label} {place}: {SECRET_MARKS.search(text).group(0)!r}")
    foreign = list(elsewhere.calls) + [c for c in box.calls if not c.host.startswith("127.0.0.1")]
    outcome.foreign_requests = len(foreign)
    for call in foreign:
        carried = SECRET_MARKS.search(call.body.decode("utf-8", "replace") + json.dumps(call.query))
        outcome.leaks.append(
            f"request to another host ({call.host or 'elsewhere'} {call.path})"
            + (" with a secret" if carried else "")
        )
    keys = {}
    for run in runs:
        keys.update(key_properties(run))
    for stream, identity in setup.identity.items():
        by_key: dict[tuple, set] = defaultdict(set)
        empty = 0
        for run in runs:
            for record in run.records(stream):
                key = tuple(record.get(name) for name in keys.get(stream, []))
                if not key or any(part in (None, "") for part in key):
                    empty += 1
                by_key[key].add(identity(record))
        outcome.empty_keys[stream] = empty
        outcome.collisions[stream] = sum(len(ids) - 1 for ids in by_key.values() if len(ids) > 1)
        first_ids = [identity(r) for r in runs[0].records(stream)]
        outcome.duplicates_first_run += len(first_ids) - len(set(first_ids))
    if outcome.damaged:
        account_for_damaged_rows(outcome, setup)


def account_for_damaged_rows(outcome: Outcome, setup: Setup) -> None:
    """Rows stripped of their identity cannot be matched by key: each must still be accounted for.

    Either the tap keeps them under distinct keys (they arrive as rows the provider's own data
    does not name), or a warning names the missing field (then they may be left out, and their
    empty or shared keys are said). Anything else is a row lost or a silent key collision.
    """
    fields = hostile.IDENTITY_FIELDS[outcome.provider]
    announced = any(
        "WARNING" in line and any(name in line for name in fields)
        for run in outcome.runs
        for line in run.stderr.splitlines()
    )
    for stream, lost in list(outcome.rows_lost.items()):
        identity = setup.identity[stream]
        extra = {identity(r) for run in outcome.runs for r in run.records(stream)} - setup.expected[stream]
        covered = min(lost, outcome.damaged if announced else len(extra))
        outcome.rows_lost[stream] = lost - covered
    outcome.rows_lost = {stream: count for stream, count in outcome.rows_lost.items() if count}
    if announced:
        outcome.empty_keys = dict.fromkeys(outcome.empty_keys, 0)
        outcome.collisions = dict.fromkeys(outcome.collisions, 0)


# ------------------------------------------------------------------------ tests

COMBOS = [(rule, provider) for rule in hostile.RULES for provider in rule.providers]


def combo_id(combo: tuple[hostile.Rule, str]) -> str:
    rule, provider = combo
    return f"{provider}-" + re.sub(r"[^A-Za-z0-9]+", "_", rule.name).strip("_")


OUTCOMES: dict[str, Outcome] = {}


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, t.Any]:
    """Every selected (rule, provider) trial, run three at a time before the first check."""
    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is request.module and callspec is not None and "combo" in callspec.params:
            wanted.append(callspec.params["combo"])
    wanted = wanted or COMBOS  # the summary alone: every trial
    results: dict[str, t.Any] = {}
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {
            combo_id(combo): pool.submit(trial, *combo, tmp_path_factory.mktemp(combo_id(combo)[:40]))
            for combo in wanted
        }
        for name, future in futures.items():
            try:
                results[name] = OUTCOMES[name] = future.result()
            except Exception as error:  # reported by the combo's own test
                results[name] = error
    yield results
    _print_summary(request)


def totals() -> tuple[int, int, int, int]:
    """(rules tried, rows lost, secrets leaked, silent key collisions) over the trials run."""
    rules = {outcome.rule.name for outcome in OUTCOMES.values()}
    lost = sum(sum(o.rows_lost.values()) for o in OUTCOMES.values())
    leaked = sum(len(o.leaks) for o in OUTCOMES.values())
    collisions = sum(o.silent_key_collisions for o in OUTCOMES.values())
    return len(rules), lost, leaked, collisions


def summary_line() -> str:
    rules, lost, leaked, collisions = totals()
    return (
        f"hostile: {rules} rules tried, {lost} rows lost, {leaked} secrets leaked, "
        f"{collisions} silent key collisions ({len(OUTCOMES)} provider runs)"
    )


def _print_summary(request: pytest.FixtureRequest) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not OUTCOMES:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(summary_line())


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_nothing_lost_nothing_leaked_under_hostile_answers(
    combo: tuple[hostile.Rule, str], outcomes: dict
) -> None:
    """One provider under one hostile rule: every row, no empty or shared key, no secret out, as expected."""
    result = outcomes[combo_id(combo)]
    if isinstance(result, Exception):
        raise result
    outcome: Outcome = result
    rule, provider = combo
    first = outcome.first
    context = f"{provider} under {rule.name!r}: exit {first.returncode}; stderr tail:\n{first.stderr[-1500:]}"
    assert outcome.answered > 0, f"the rule never answered a call ({context})"
    assert not outcome.rows_lost, f"rows lost {outcome.rows_lost} ({context})"
    assert not outcome.leaks, f"secrets out: {outcome.leaks} ({context})"
    assert outcome.foreign_requests == 0, (
        f"{outcome.foreign_requests} request(s) reached another host ({context})"
    )
    assert not any(outcome.empty_keys.values()), f"empty primary keys {outcome.empty_keys} ({context})"
    assert not any(outcome.collisions.values()), (
        f"rows sharing a primary key {outcome.collisions} ({context})"
    )
    expect = rule.expectation(provider)
    if expect.exit_zero is True:
        assert first.returncode == 0, context
    elif expect.exit_zero is False:
        assert first.returncode != 0, context
    if expect.says:
        assert re.search(expect.says, first.stderr), f"stderr does not say /{expect.says}/ ({context})"
    if expect.complete:
        assert len(outcome.runs) == 1, f"rows were missing after the first run ({context})"
    if expect.once:
        assert outcome.duplicates_first_run == 0, f"{outcome.duplicates_first_run} row(s) twice ({context})"


def test_hostile_summary_counts_nothing_lost_leaked_or_colliding(outcomes: dict) -> None:
    """The module's summary line, from what the trials measured: every count but the rules is 0."""
    rules, lost, leaked, collisions = totals()
    assert rules > 0
    assert (lost, leaked, collisions) == (0, 0, 0), summary_line()
