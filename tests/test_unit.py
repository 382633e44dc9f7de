"""Unit tests of the small pure pieces every provider relies on."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tap_livestream_viewers import tolerant_json
from tap_livestream_viewers.guards import (
    CallBudgetExhausted,
    DailyCallBudget,
    SlidingWindowRateLimiter,
    credential_fingerprint,
)
from tap_livestream_viewers.timeutil import (
    hms_to_seconds,
    local_to_rfc3339,
    minutes_to_seconds,
    next_local_midnight,
    parse_datetime,
    to_local_text,
    to_utc_z,
    unix_to_rfc3339,
    zone,
)
from tap_livestream_viewers.windows import Window, time_windows

SHANGHAI = zone("Asia/Shanghai")
UTC = timezone.utc


# ------------------------------------------------------------------------ windows


def test_windows_never_exceed_the_maximum_and_cover_the_range_exactly():
    start = datetime(2026, 9, 1, tzinfo=UTC)
    end = datetime(2026, 10, 3, 5, tzinfo=UTC)
    windows = list(time_windows(start, end, timedelta(days=7)))
    assert all(w.span <= timedelta(days=7) for w in windows)
    assert windows[0].start == start and windows[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))  # no gap, no overlap
    assert len(windows) == 5  # 32 days 5 hours in 7-day steps


def test_no_window_when_there_is_nothing_new():
    moment = datetime(2026, 9, 1, tzinfo=UTC)
    assert list(time_windows(moment, moment, timedelta(days=7))) == []
    assert list(time_windows(moment + timedelta(1), moment, None)) == []


def test_unlimited_provider_gets_one_window():
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert list(time_windows(start, end, None)) == [Window(start, end)]


# --------------------------------------------------------------------------- time


def test_naive_times_are_read_in_the_provider_zone():
    # Mudu writes "2018-03-15 15:33" in China time: that is 07:33 UTC.
    assert local_to_rfc3339("2018-03-15 15:33", SHANGHAI) == "2018-03-15T15:33:00+08:00"
    assert parse_datetime("2025-09-16 15:06:06", SHANGHAI).astimezone(UTC).hour == 7


def test_utc_z_times_keep_their_offset():
    parsed = parse_datetime("2020-03-31T08:21:00.000Z", SHANGHAI)
    assert parsed.utcoffset() == timedelta(0)
    assert to_utc_z(parsed) == "2020-03-31T08:21:00.000Z"
    assert to_utc_z(datetime(2019, 6, 21, 9, 52, 12, 736000, tzinfo=SHANGHAI)) == "2019-06-21T01:52:12.736Z"


def test_local_text_and_unix_conversions():
    moment = datetime(2016, 12, 28, 11, 0, tzinfo=UTC)
    assert to_local_text(moment, SHANGHAI) == "2016-12-28 19:00:00"
    assert unix_to_rfc3339(1598665727, SHANGHAI) == "2020-08-29T09:48:47+08:00"
    assert unix_to_rfc3339(0, SHANGHAI) is None
    assert local_to_rfc3339("", SHANGHAI) is None


def test_durations():
    assert hms_to_seconds("00:02:00") == 120
    assert hms_to_seconds("26:01:05") == 26 * 3600 + 65
    assert hms_to_seconds(None) is None
    with pytest.raises(ValueError):
        hms_to_seconds("2 minutes")
    assert minutes_to_seconds(4) == 240
    assert minutes_to_seconds(0) == 0


def test_next_midnight_in_china_time():
    moment = datetime(2026, 11, 22, 17, 30, tzinfo=UTC)  # 01:30 on the 23rd in Shanghai
    assert next_local_midnight(moment, SHANGHAI).isoformat() == "2026-11-24T00:00:00+08:00"


# ------------------------------------------------------------------ tolerant JSON


def test_trailing_and_missing_commas_are_repaired_not_dropped():
    # The Talk-cloud example: a trailing comma in an object and a missing comma before a key
    # and before the next array member.
    text = '{"a":[{"x":"1","y":2,}]\n "b":[{"v":"320*240"\n "w":"2",}]}'
    assert tolerant_json.loads(text) == {"a": [{"x": "1", "y": 2}], "b": [{"v": "320*240", "w": "2"}]}


def test_repair_leaves_strings_alone():
    text = '{"note": "a, } ] \\" b",}'
    assert tolerant_json.loads(text) == {"note": 'a, } ] " b'}


def test_hopeless_json_raises():
    with pytest.raises(ValueError):
        tolerant_json.loads(b"<html>502 Bad Gateway</html>")


# ------------------------------------------------------------------------ guards


def test_daily_budget_counts_per_credential_per_local_day_and_resets_at_midnight():
    ledger: dict = {}
    now = [datetime(2026, 11, 22, 15, 0, tzinfo=UTC)]  # 23:00 in Shanghai
    budget = DailyCallBudget(ledger, "token-a", 2, SHANGHAI, lambda: now[0])
    budget.before_call()
    budget.before_call()
    with pytest.raises(CallBudgetExhausted) as stop:
        budget.before_call()
    assert stop.value.calls_made == 2
    assert stop.value.resets_at.isoformat() == "2026-11-23T00:00:00+08:00"
    # the other token has its own budget, and the ledger never holds a token
    DailyCallBudget(ledger, "token-b", 2, SHANGHAI, lambda: now[0]).before_call()
    assert "token-a" not in str(ledger) and credential_fingerprint("token-a") in ledger
    now[0] += timedelta(hours=1, minutes=1)  # 00:01 next day in Shanghai
    assert budget.remaining == 2


def test_rate_limiter_never_allows_more_than_max_calls_in_any_period():
    clock = [0.0]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = SlidingWindowRateLimiter(3, 10.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(10):
        limiter.before_call()
        sent.append(clock[0])
        clock[0] += 0.5
    for index in range(len(sent)):
        in_span = [t for t in sent if sent[index] <= t < sent[index] + 10.0]
        assert len(in_span) <= 3


# ------------------------------------------------------------------------ secrets


def _tap(config: dict):
    from tap_livestream_viewers.tap import TapLivestreamViewers

    return TapLivestreamViewers(config={"start_date": "2026-09-01T00:00:00Z", **config}, validate_config=True)


def test_secrets_are_what_the_settings_schema_marks_secret_including_nested_values():
    from tap_livestream_viewers.client import secret_values
    from tap_livestream_viewers.tap import TapLivestreamViewers

    config = {
        "mudu": {"access_token": "tok-123456", "channel_ids": ["263218"]},
        "nuoyun": {"body": {"auth": {"secret": "deep-secret-1"}, "app_id": "1000"}, "page_size": 500},
    }
    found = set(secret_values(config, TapLivestreamViewers.config_jsonschema))
    assert found == {"tok-123456", "deep-secret-1"}  # not the channel id, not a 4-digit app id


def test_a_message_is_masked_before_it_is_cut():
    tap = _tap({"mudu": {"access_token": "tok-ABCDEFGHIJKLMNOP", "channel_ids": ["1"]}})
    stream = tap.streams["mudu_user_records"]
    text = "x" * 590 + " tok-ABCDEFGHIJKLMNOP and more"  # the secret straddles the 600-character cut
    line = stream.one_line(text)
    assert "tok-ABC" not in line and "***" in line


def test_retry_after_in_seconds_or_as_an_http_date():
    from email.utils import format_datetime

    import requests

    from tap_livestream_viewers.client import retry_after_seconds

    response = requests.Response()
    response.headers["Retry-After"] = "7"
    assert retry_after_seconds(response) == 7.0
    response.headers["Retry-After"] = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after_seconds(response) <= 31
    assert retry_after_seconds(None) is None


# ------------------------------------------------------------------------ paging


def _page(body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    return response


def _activity_stream(page_size: int):
    tap = _tap(
        {"shangzhibo": {"access_token": "t" * 8, "activity_ids": ["1"], "page_size": page_size}},
    )
    stream = tap.streams["shangzhibo_activity_visits"]
    stream._page_size_in_use = stream.page_size
    return stream


def test_paging_stops_from_the_providers_total_never_on_an_empty_page():
    stream = _activity_stream(100)
    items = [{"visitAt": "2026-09-01T00:00:00.000Z"}]
    full = {"pager": {"page": 1, "pageSize": 100, "total": 250}, "items": items * 100}
    assert stream.has_more_pages(_page(full), 1) is True
    assert stream.has_more_pages(_page({**full, "pager": {**full["pager"], "page": 2}}), 2) is True
    last = {"pager": {"page": 3, "pageSize": 100, "total": 250}, "items": items * 50}
    assert stream.has_more_pages(_page(last), 3) is False
    exact = {"pager": {"page": 2, "pageSize": 100, "total": 200}, "items": items * 100}
    assert stream.has_more_pages(_page(exact), 2) is False  # a full last page: no extra call


def test_paging_follows_the_echoed_page_size_and_a_silent_cap():
    stream = _activity_stream(500)
    items = [{"visitAt": "2026-09-01T00:00:00.000Z"}]
    echoed = {"pager": {"page": 1, "pageSize": 100, "total": 250}, "items": items * 100}
    assert stream.has_more_pages(_page(echoed), 1) is True  # 100 of 250, by the echoed size
    silent = {"pager": {"page": 1, "total": 250}, "items": items * 100}
    assert stream.has_more_pages(_page(silent), 1) is True  # asked 500, got 100: a cap
    assert stream.has_more_pages(_page({"pager": {"total": 250}, "items": items * 100}), 2) is True
    assert stream.has_more_pages(_page({"pager": {"total": 250}, "items": items * 50}), 3) is False


def test_without_a_total_a_short_page_is_the_last():
    tap = _tap({"mudu": {"access_token": "t" * 8, "channel_ids": ["1"]}})
    stream = tap.streams["mudu_user_records"]
    stream._page_size_in_use = 100
    assert stream.has_more_pages(_page([{"record_id": i} for i in range(100)]), 1) is True
    assert stream.has_more_pages(_page([{"record_id": i} for i in range(99)]), 2) is False
    assert stream.has_more_pages(_page([]), 3) is False


# -------------------------------------------------------------------------- keys


def test_visit_keys_are_stable_and_tell_viewers_apart():
    from tap_livestream_viewers.providers.shangzhibo import visit_key

    at = "2026-09-01T08:00:00+00:00"
    assert visit_key("A", 7, "", at) == visit_key("A", 7, "", at)
    assert len({visit_key("A", 7, "", at), visit_key("A", 8, "", at), visit_key("B", 7, "", at)}) == 3
    # anonymous viewers (userId null) are told apart by their session id prefix
    assert visit_key("A", None, "1a2b3c4d", at) != visit_key("A", None, "5e6f7a8b", at)
    assert visit_key("A", None, "1a2b3c4d", at) != visit_key("A", 1, "", at)


def test_an_empty_base_url_falls_back_to_each_providers_documented_host():
    tap = _tap(
        {
            "shangzhibo": {"access_token": "t" * 8, "activity_ids": ["1"], "base_url": ""},
            "mudu": {"access_token": "t" * 8, "channel_ids": ["1"], "base_url": ""},
            "nuoyun": {"headers": {"X-Key": "n" * 8}, "base_url": ""},
            "talkcloud": {"key": "k" * 8, "serials": ["1"], "base_url": ""},
        }
    )
    hosts = {name: stream.url_base for name, stream in tap.streams.items() if hasattr(stream, "url_base")}
    assert hosts["shangzhibo_activity_visits"] == "https://shangzhibo.tv"
    assert hosts["nuoyun_user_durations"] == "https://gateway.nuoyunapi.com"  # the document's 接口地址
    assert hosts["talkcloud_login_records"] == "https://global.talk-cloud.net"  # the document's URL
    assert hosts["mudu_user_records"] == "https://mudu.tv/api"


def test_content_keys_are_stable_distinct_and_never_a_provider_id():
    from tap_livestream_viewers.rowcheck import content_key, raw_bytes

    one, other = {"nick": "小鱼", "record_id": None}, {"record_id": None, "nick": "阿飞"}
    assert raw_bytes(one) == raw_bytes({"record_id": None, "nick": "小鱼"})  # key order does not matter
    assert content_key(raw_bytes(one), "integer") == content_key(raw_bytes(dict(one)), "integer")
    assert content_key(raw_bytes(one), "integer") != content_key(raw_bytes(other), "integer")
    assert -(2**60) <= content_key(raw_bytes(one), "integer") < 0  # fits BIGINT, no id is negative
    text = content_key(raw_bytes(one), "string")
    assert text.startswith("content:") and len(text) == len("content:") + 24


def test_values_of_the_wrong_type_are_converted_when_lossless_else_null():
    from tap_livestream_viewers.rowcheck import coerce_value

    assert coerce_value("42", "integer") == (42, True)
    assert coerce_value(3.0, "integer") == (3, True)
    assert coerce_value("", "integer") == (None, True)  # "no value", as providers send it
    assert coerce_value("ten", "integer") == (None, False)
    assert coerce_value(True, "integer") == (None, False)
    assert coerce_value(7, "string") == ("7", True)
    assert coerce_value({"a": 1}, "string") == (None, False)
    assert coerce_value("2026-09-20T20:30:00+08:00", "date-time")[1]
    assert coerce_value("2026-09-20 20:30", "date-time") == (None, False)  # no offset: not RFC 3339
    assert coerce_value([], "object") == ({}, True)


def test_numbers_are_epoch_seconds_or_milliseconds_only_when_plausible():
    from tap_livestream_viewers.timeutil import epoch_to_datetime

    moment = datetime(2026, 9, 20, 12, 30, tzinfo=timezone.utc)
    assert epoch_to_datetime(int(moment.timestamp())) == moment
    assert epoch_to_datetime(int(moment.timestamp() * 1000)) == moment
    assert epoch_to_datetime("1789993800") == datetime.fromtimestamp(1789993800, timezone.utc)
    assert epoch_to_datetime(42) is None and epoch_to_datetime(True) is None
    assert epoch_to_datetime("ten") is None


def test_local_times_fast_path_equals_the_full_parse_on_every_minute_of_transition_days():
    """The per-hour offset caches give exactly what parsing each value gives, DST changes included."""
    from datetime import date, datetime, timedelta

    import pytest

    from tap_livestream_viewers.timeutil import (
        local_column,
        local_to_rfc3339,
        parse_datetime,
        to_rfc3339,
        zone,
    )

    days = {
        "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),
        "Australia/Lord_Howe": (date(2026, 4, 5), date(2026, 10, 4)),  # 30-minute shifts
        "Europe/London": (date(2026, 3, 29), date(2026, 10, 25)),
        "Asia/Shanghai": (date(1991, 4, 14), date(2026, 9, 16)),  # China's last DST change, today
    }
    for name, transition_days in days.items():
        tz = zone(name)
        for day in transition_days:
            moment = datetime(day.year, day.month, day.day)
            column = []
            for _ in range(24 * 60):
                for text in (moment.strftime("%Y-%m-%d %H:%M:%S"), moment.strftime("%Y-%m-%d %H:%M")):
                    assert local_to_rfc3339(text, tz) == to_rfc3339(parse_datetime(text, tz)), (name, text)
                    column.append(text)
                moment += timedelta(minutes=1)
            # a page's column at once (the page path): value for value the same, twice (cached)
            column += ["", None, "0000-00-00 00:00:00", " 2026-09-16 15:06:06", "2026-09-16T15:06:06Z"]
            for _ in range(2):
                assert local_column(column, tz) == [local_to_rfc3339(text, tz) for text in column], name
    for bad in ("2026-13-01 10:00:00", "2026-02-30 10:00", "2026-01-01 24:00:00", "2026-01-01 10:61"):
        with pytest.raises(ValueError):
            local_to_rfc3339(bad, zone("Asia/Shanghai"))
        with pytest.raises(ValueError):
            local_column(["2026-01-01 10:00:00", bad], zone("Asia/Shanghai"))


_HEAPS_AFTER_THREADS = """
import ctypes, sys, tempfile, threading
if sys.argv[1] == "tuned":
    from tap_livestream_viewers.__main__ import tune_allocator
    tune_allocator()
def read_pages():
    pages = [bytearray(300_000) for _ in range(20)]  # page bodies, as the workers hold them
    del pages
threads = [threading.Thread(target=read_pages) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile("r", suffix=".xml") as report:
    handle = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    print(report.read().count("<heap nr="))
"""


def test_the_cli_keeps_one_allocator_arena_for_its_page_threads():
    """glibc gives each thread its own heap unless told (``__main__.tune_allocator``); the tap's
    entry point makes it one, which keeps the peak RSS flat as rows are read."""

    def heaps(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _HEAPS_AFTER_THREADS, mode],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin"},  # no MALLOC_* variable of the user's
        )
        return int(done.stdout)

    assert heaps("tuned") == 1
    assert heaps("plain") > 1  # the default this replaces: the test can tell them apart
