"""How each attempt travels (issue 8 items 4, 5, 6, 7, 10): the real tap CLI against the sandbox.

* Credentials go to the configured host only: a redirect elsewhere is refused, naming both
  hosts, and the other host receives nothing; a redirect within the host is followed with
  the same method and body.
* A ``Retry-After`` beyond ``max_wait_seconds`` stops that partition at once (state kept,
  the other partitions read, exit non-zero); jitter never pushes a wait past
  ``backoff_max_seconds``.
* An answer that drips is cut at ``request_timeout`` per attempt, retried, then one line.
* Secret parts (the token of ``Bearer <token>``, a Basic password) are masked too.
* ``batch_config`` is refused before any call.
"""

from __future__ import annotations

import base64
import random
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import run_tap
from sandbox import Sandbox, hostile
from sandbox import nuoyun as nuoyun_sandbox
from sandbox import shangzhibo as shangzhibo_sandbox

UTC = timezone.utc
TOKEN = "SECRET-szb-token-XYZ123"
FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "max_retries": 2}
WINDOW = {"start_date": "2026-09-01T00:00:00Z", "end_date": "2026-09-11T00:00:00Z"}


def shangzhibo_config(
    box: Sandbox, activities: dict[str, int]
) -> tuple[dict, shangzhibo_sandbox.ShangzhiboData]:
    data = shangzhibo_sandbox.ShangzhiboData(
        token=TOKEN,
        activities=activities,
        users={},
        period_start=datetime(2026, 9, 1, tzinfo=UTC),
        period_end=datetime(2026, 9, 11, tzinfo=UTC),
    )
    shangzhibo_sandbox.register(box, data)
    settings = {**shangzhibo_sandbox.tap_config(data, box.base_url), "user_ids": [], "page_size": 50}
    return {**WINDOW, **FAST, "shangzhibo": settings}, data


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or "Error" in line]


# ---------------------------------------------------------------------- proxies


def proxy_env(proxy: str, no_proxy: str = "") -> dict[str, str]:
    """A user's proxy variables, in both spellings ``requests`` reads."""
    names = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": no_proxy}
    return {**names, **{name.lower(): value for name, value in names.items()}}


def test_requests_go_through_the_proxy_the_environment_names_unless_no_proxy_lists_the_host(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Behind a company proxy, every call goes through it (the sandbox stands in for the proxy:
    it reads the absolute URL a proxy receives); ``NO_PROXY`` hosts are called directly."""
    config, _data = shangzhibo_config(sandbox, {"10024069": 120})
    through_proxy = {
        **config,
        "shangzhibo": {**config["shangzhibo"], "base_url": "http://szb.example.invalid"},
    }
    run = run_tap(tmp_path, through_proxy, env=proxy_env(sandbox.base_url))
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records("shangzhibo_activity_visits")) == 120
    assert sandbox.calls and {call.host for call in sandbox.calls} == {"szb.example.invalid"}
    sandbox.reset_calls()
    direct = run_tap(tmp_path, config, env=proxy_env("http://127.0.0.1:9", no_proxy="127.0.0.1"))
    assert direct.returncode == 0, direct.stderr[-2000:]  # port 9 refuses: the proxy was not used
    assert len(direct.records("shangzhibo_activity_visits")) == 120


# ---------------------------------------------------------------------- redirects


def test_redirect_to_another_host_is_refused_naming_both_hosts_and_that_host_receives_nothing(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config, _data = shangzhibo_config(sandbox, {"10024069": 120})
    with Sandbox() as elsewhere:
        other = elsewhere.base_url
        rule = hostile.Rule("elsewhere", hostile.redirect(307, "elsewhere"), calls=hostile.nth(2))
        hostile.install(sandbox, rule, elsewhere=elsewhere.base_url)
        run = run_tap(tmp_path, config)
        assert elsewhere.calls == []  # not one request, so no token, no body went there
    assert run.returncode != 0
    line = f"redirect from {sandbox.base_url} to another host, {other}, refused"
    assert line in run.stderr
    assert "check shangzhibo.access_token" not in run.stderr  # not the misleading hint
    assert TOKEN not in run.stderr + run.stdout
    # the state kept after page 1 resumes at page 2 once the provider answers again
    hostile.install(sandbox, None)
    rerun = run_tap(tmp_path, config, state=run.last_state)
    assert rerun.returncode == 0, rerun.stderr
    got = {
        r["visit_key"]
        for r in run.records("shangzhibo_activity_visits") + rerun.records("shangzhibo_activity_visits")
    }
    assert len(got) == 120
    assert rerun.records("shangzhibo_activity_visits")  # the rest came in the re-run


def test_redirect_within_the_host_is_followed_with_the_same_method_body_and_credentials(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    data = nuoyun_sandbox.register(sandbox, nuoyun_sandbox.NuoyunData(token=TOKEN, rows=250, rooms=2))
    config = {
        "start_date": "2026-08-31T00:00:00Z",
        "end_date": "2026-11-02T00:00:00Z",
        **FAST,
        "nuoyun": {
            "base_url": sandbox.base_url,
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "page_size": 100,
        },
    }
    hostile.install(sandbox, hostile.Rule("moved", hostile.redirect(301, "same"), calls=hostile.nth(2)))
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert {
        (r["room_id"], r["wechat_user_space_id"]) for r in run.records("nuoyun_user_durations")
    } == data.keys
    # pages are in flight together (max_concurrency): the hop is the next call with the same body
    at = next(index for index, call in enumerate(sandbox.calls) if call.status == 301)
    redirected = sandbox.calls[at]
    followed = next(call for call in sandbox.calls[at + 1 :] if call.body == redirected.body)
    assert followed.method == "POST" and followed.status == 200


# -------------------------------------------------------------------------- waits


def test_retry_after_beyond_max_wait_stops_that_partition_at_once_and_the_others_are_read(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config, _data = shangzhibo_config(sandbox, {"111": 80, "222": 80})
    config["max_wait_seconds"] = 30
    sandbox_rule = hostile.Rule(
        "throttled", hostile.status(429, retry_after="3600"), calls=hostile.nth(1)
    )  # the first call: activity 111's first page
    hostile.install(sandbox, sandbox_rule)
    started = time.monotonic()
    run = run_tap(tmp_path, config)
    assert time.monotonic() - started < 30  # not an hour, nor 5 × an hour
    assert run.returncode != 0
    assert re.search(
        r"Shangzhibo shangzhibo_activity_visits activity_id=111: HTTP 429: the provider asks to wait "
        r"3600s \(Retry-After\) before the next call, more than max_wait_seconds=30\. What to do: "
        r"run again after about 1 h",
        run.stderr,
    ), run.stderr
    read = {r["activity_id"] for r in run.records("shangzhibo_activity_visits")}
    assert read == {"222"}  # the other partition went on
    hostile.install(sandbox, None)
    rerun = run_tap(tmp_path, config, state=run.last_state)
    assert rerun.returncode == 0, rerun.stderr
    assert {r["activity_id"] for r in rerun.records("shangzhibo_activity_visits")} == {"111"}
    assert len(rerun.records("shangzhibo_activity_visits")) == 80


def test_jitter_never_pushes_a_wait_past_backoff_max_unless_honouring_a_retry_after() -> None:
    from tap_livestream_viewers.transport import retry_wait

    rng = random.Random(7)
    for attempt in range(12):
        for _ in range(200):
            assert retry_wait(attempt, base=1.0, cap=60.0, rng=rng) <= 60.0
            honoured = retry_wait(attempt, base=1.0, cap=60.0, retry_after=120.0, rng=rng)
            assert 120.0 <= honoured <= 132.0


def test_a_retry_after_within_max_wait_is_waited_out(tmp_path: Path, sandbox: Sandbox) -> None:
    config, _data = shangzhibo_config(sandbox, {"111": 30})
    hostile.install(sandbox, hostile.Rule("brief", hostile.status(503, retry_after="2")))
    started = time.monotonic()
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr
    first, second = sandbox.calls[0], sandbox.calls[1]
    assert second.at - first.at >= 2.0  # the provider's wait, though backoff_max_seconds is 0.05
    assert time.monotonic() - started < 20


# ------------------------------------------------------------------------ deadline


def test_an_answer_that_drips_is_cut_at_request_timeout_retried_then_one_line(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config, _data = shangzhibo_config(sandbox, {"111": 60})
    config.update(request_timeout=1, max_retries=1)
    hostile.install(sandbox, hostile.Rule("drip", hostile.drip(0.3), calls=hostile.every))
    started = time.monotonic()
    run = run_tap(tmp_path, config)
    elapsed = time.monotonic() - started
    # a page of some 20 kB at a byte every 0.3 s would take hours; two attempts of 1 s each
    assert elapsed < 15, elapsed
    assert run.returncode != 0
    assert len(sandbox.calls) == 2
    assert re.search(
        r"the answer did not arrive in full within request_timeout=1s \(gave up after 2 attempts\)",
        run.stderr,
    ), run.stderr


# ----------------------------------------------------------------------- masking


def test_the_bare_token_of_a_bearer_header_is_masked_when_a_gateway_echoes_it(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    nuoyun_sandbox.register(sandbox, nuoyun_sandbox.NuoyunData(token=TOKEN, rows=50, rooms=1))
    config = {
        "start_date": "2026-08-31T00:00:00Z",
        "end_date": "2026-11-02T00:00:00Z",
        **FAST,
        "nuoyun": {"base_url": sandbox.base_url, "headers": {"Authorization": f"Bearer {TOKEN}"}},
    }
    hostile.install(sandbox, hostile.Rule("echo", hostile.echo(503, "token {} expired"), calls=hostile.every))
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert "token *** expired" in run.stderr  # the message stays readable
    assert "XYZ123" not in run.stderr + run.stdout + str(run.states)


@pytest.mark.parametrize(
    ("configured", "echoed", "kept"),
    [
        ("Bearer SECRET-token-XYZ123", "SECRET-token-XYZ123", "Bearer"),
        ("Basic " + base64.b64encode(b"ops:pa55word-XYZ").decode(), "pa55word-XYZ", "Basic"),
        ("Basic " + base64.b64encode(b"ops:pa55word-XYZ").decode(), "ops:pa55word-XYZ", "Basic"),
        ("ops:pa55word-XYZ", "pa55word-XYZ", "ops"),
        (
            'Digest username="ops", response="6629fae49393a05397450978507c4ef1"',
            "6629fae49393a05397450978507c4ef1",
            "Digest",
        ),
        ("SECRET token/XYZ+123", "token%2FXYZ%2B123", ""),
    ],
)
def test_secret_parts_are_masked_and_scheme_words_are_not(configured: str, echoed: str, kept: str) -> None:
    from tap_livestream_viewers.redaction import mask, ordered, secret_forms

    secrets = ordered(secret_forms(configured))
    line = mask(f"gateway said: {echoed} is not valid ({kept})", secrets)
    assert echoed not in line and "***" in line
    assert kept in line


# ------------------------------------------------------------------------- batches


def test_batch_config_is_refused_before_any_call(tmp_path: Path, sandbox: Sandbox) -> None:
    config, _data = shangzhibo_config(sandbox, {"111": 30})
    config["batch_config"] = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}/batches"},
    }
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    assert sandbox.calls == []
    assert not [m for m in run.messages if m["type"] in ("RECORD", "BATCH")]
    assert "batch_config is not supported by tap-livestream-viewers" in run.stderr
    assert "remove batch_config" in run.stderr
