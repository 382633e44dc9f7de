"""The per-row path: records written straight to the output, keys remembered in flat memory.

What a user relies on: every RECORD line is a Singer message with its stream, record and
``time_extracted`` whatever path wrote it; stream maps and field selection still apply to a
provider stream's records; a window of any size tells the same row read twice from two
different rows under one key (README "When a provider misbehaves"), in memory and past it;
a page written at once (the page path) gives exactly the records of the row-by-row path, and a
page decoded into row structs (Nuoyun's typed pages) exactly the lines of one decoded as JSON.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from conftest import discover, run_tap
from sandbox import nuoyun as ny
from sandbox.hostile import Rule, edit, every, install, malformed_value, nth, rows_become
from tap_livestream_viewers.providers import nuoyun as nuoyun_module
from tap_livestream_viewers.rowcheck import SPILL_BATCH, KeyRegistry, SchemaCoercer, has_any, raw_bytes
from tap_livestream_viewers.typed_rows import as_record, has_any_field

STREAM = "nuoyun_user_durations"
WINDOW = {"start_date": "2026-08-01T00:00:00Z", "end_date": "2026-11-05T00:00:00Z"}
FIXTURES = Path(__file__).parent / "fixtures"


def nuoyun_config(sandbox, rows: int = 1200, **extra) -> tuple[dict, ny.NuoyunData]:
    data = ny.register(sandbox, ny.NuoyunData(rows=rows))
    return {**WINDOW, "nuoyun": ny.tap_config(data, sandbox.base_url), **extra}, data


def test_record_lines_are_singer_records_with_time_extracted(sandbox, tmp_path):
    config, data = nuoyun_config(sandbox)
    before = datetime.now(timezone.utc)
    run = run_tap(tmp_path, config)
    after = datetime.now(timezone.utc)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    records = [m for m in lines if m["type"] == "RECORD" and m["stream"] == STREAM]
    assert {(m["record"]["room_id"], m["record"]["wechat_user_space_id"]) for m in records} == data.keys
    for message in records:
        extracted = datetime.fromisoformat(message["time_extracted"].replace("Z", "+00:00"))
        assert before <= extracted <= after
        assert set(message) <= {"type", "stream", "record", "version", "time_extracted"}
    # every record before the STATE that covers it (the output is flushed at each STATE)
    assert lines[-1]["type"] == "STATE"


def test_stream_maps_and_field_selection_apply_to_a_provider_stream(sandbox, tmp_path):
    config, data = nuoyun_config(
        sandbox,
        stream_maps={STREAM: {"ip": "__NULL__", "viewer": "wechat_user_space_id * 10"}},
    )
    catalog = discover(tmp_path, config)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] == STREAM
            if entry["tap_stream_id"] == STREAM and item["breadcrumb"] == ["properties", "area"]:
                item["metadata"]["selected"] = False
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    records = run.records(STREAM)
    assert len(records) == len(data.keys)
    assert all("ip" not in r and "area" not in r for r in records)
    assert all(r["viewer"] == r["wechat_user_space_id"] * 10 for r in records)


def test_key_registry_past_its_memory_tells_repeats_from_collisions():
    registry = KeyRegistry(memory_keys=100)
    keys = [(1000 + i % 7, 20_000 + i) for i in range(3 * SPILL_BATCH)]
    rows = {key: raw_bytes({"room": key[0], "user": key[1], "stay": key[1] % 13}) for key in keys}
    assert not any(registry.collides(key, hash(rows[key])) for key in keys)
    assert len(registry) == len(keys)
    # the same rows again (paging overlap): no collision, in memory, in the file, in the batch
    assert not any(registry.collides(key, hash(rows[key])) for key in keys[::97])
    # another row under a key seen before: a collision wherever that key is kept
    for key in (keys[0], keys[150], keys[SPILL_BATCH + 5], keys[-1]):
        assert registry.collides(key, hash(raw_bytes({"room": key[0], "user": key[1], "stay": -1})))
    registry.clear()
    assert len(registry) == 0
    assert not registry.collides(keys[-1], hash(b"other row, next window"))


def test_key_registry_takes_keys_exactly():
    registry = KeyRegistry(memory_keys=1)
    for key in [(1,), ("1",), (1.5,), (None,), ("",), (True,)]:
        assert not registry.collides(key, hash(repr(key).encode()))


def test_schema_coercer_nulls_what_does_not_fit_at_any_depth_and_keeps_what_does():
    schema = {
        "properties": {
            "id": {"type": ["integer", "null"]},
            "at": {"type": ["string", "null"], "format": "date-time"},
            "note": {"type": ["string", "null"]},
            "inner": {
                "type": ["object", "null"],
                "properties": {"seen": {"type": ["string", "null"], "format": "date-time"}},
            },
        }
    }
    coercer = SchemaCoercer(schema)
    fitting = {
        "id": 7,
        "at": "2026-09-10T11:22:33+08:00",
        "note": "x",
        "inner": {"seen": "2026-09-10T03:22:33Z"},
    }
    record = json.loads(json.dumps(fitting))
    problems: list[tuple[str, object]] = []
    coercer.coerce(record, lambda name, value: problems.append((name, value)))
    assert record == fitting and problems == []
    # a fitting type, yet no offset: nulled and named, at the top and inside an object
    record = {**fitting, "at": "2026-09-10 11:22:33", "inner": {"seen": "yesterday"}}
    coercer.coerce(record, lambda name, value: problems.append((name, value)))
    assert record["at"] is None and record["inner"]["seen"] is None and record["id"] == 7
    assert problems == [("at", "2026-09-10 11:22:33"), ("inner.seen", "yesterday")]
    # an offset written without its colon: not RFC 3339 (msgspec refuses it), still ISO 8601
    # with an offset: kept as sent, not nulled
    problems.clear()
    record = {**fitting, "at": "2026-09-10T11:22:33+0800"}
    coercer.coerce(record, lambda name, value: problems.append((name, value)))
    assert record["at"] == "2026-09-10T11:22:33+0800" and problems == []
    # a lossless conversion silently, a wrong type nulled
    record = {**fitting, "id": "42", "note": True}
    coercer.coerce(record, lambda name, value: problems.append((name, value)))
    assert record["id"] == 42 and record["note"] == "true" and problems == []
    record = {**fitting, "id": "ten"}
    coercer.coerce(record, lambda name, value: problems.append((name, value)))
    assert record["id"] is None and problems == [("id", "ten")]
    # a page at once: true only when every record would be left as it is
    assert coercer.fits_all([fitting, json.loads(json.dumps(fitting))])
    assert not coercer.fits_all([fitting, {**fitting, "id": "42"}])
    assert not coercer.fits_all([{**fitting, "inner": {"seen": "2026-09-10 03:22:33"}}, fitting])
    # a field beyond the schema's: not plainly fine (the row path names it); inside an
    # object, a field the schema does not list is the object's own (kept, as coerce keeps it)
    assert not coercer.fits_all([fitting, {**fitting, "extra": 1}])
    assert coercer.fits_all([{**fitting, "inner": {"seen": "2026-09-10T03:22:33Z", "more": 1}}])


def test_key_registry_takes_a_page_only_when_every_key_is_new():
    registry = KeyRegistry(memory_keys=10)
    page = [(1, 10), (1, 11), (2, 10)]
    assert registry.add_new(page, [hash(str(key)) for key in page])
    assert len(registry) == 3
    # held as ``collides`` holds them: the same row again is a repeat, another row a collision
    assert not registry.collides((1, 11), hash(str((1, 11))))
    assert registry.collides((1, 11), hash("another row"))
    # a key seen before, or twice in the page: the page is not taken, nothing of it is held
    assert not registry.add_new([(3, 1), (1, 10)], [1, 2])
    assert not registry.add_new([(4, 1), (4, 1)], [1, 1])
    assert len(registry) == 3 and not registry.collides((3, 1), 5) and len(registry) == 4
    # past the keys kept in memory: the rest go to the file, and are found there
    assert registry.add_new([(9, n) for n in range(7)], list(range(7)))
    assert len(registry) == 11
    assert not registry.add_new([(8, 1), (9, 6)], [1, 2]) and len(registry) == 11
    assert not registry.collides((9, 6), 6) and registry.collides((9, 6), 7)
    assert registry.add_new([(8, 1), (8, 2)], [1, 2]) and len(registry) == 13
    assert not registry.collides((8, 2), 2) and registry.collides((8, 1), 2)


def test_a_page_read_row_by_row_gives_the_records_of_the_page_path(sandbox, tmp_path):
    """One unreadable value sends its page through the row path: each other row of that page is
    the record a clean run writes for it (page path), and only that value is nulled."""
    # one page in flight, so the sandbox's second call is page 2 of 3
    config, data = nuoyun_config(sandbox, rows=1200, max_concurrency=1)
    (tmp_path / "clean").mkdir()
    clean = run_tap(tmp_path / "clean", config)
    assert clean.returncode == 0, clean.stderr
    install(sandbox, Rule("one malformed value on page 2", malformed_value, calls=nth(2)))
    (tmp_path / "damaged").mkdir()
    damaged = run_tap(tmp_path / "damaged", config)
    assert damaged.returncode == 0, damaged.stderr
    assert "1 row(s) with an unreadable first_visit_time (first: 'yesterday')" in damaged.stderr

    def by_key(run) -> dict:
        return {(r["room_id"], r["wechat_user_space_id"]): r for r in run.records(STREAM)}

    expected, got = by_key(clean), by_key(damaged)
    assert set(got) == set(expected) == data.keys
    differing = [key for key in expected if got[key] != expected[key]]
    assert len(differing) == 1
    (key,) = differing
    assert got[key] == {**expected[key], "first_visit_time": None}
    # and in the same order, the damaged row where it was on page 2
    order = [(r["room_id"], r["wechat_user_space_id"]) for r in damaged.records(STREAM)]
    assert order == [(r["room_id"], r["wechat_user_space_id"]) for r in clean.records(STREAM)]
    assert order.index(key) == 500


# ------------------------------------------------------------------ typed pages


def undocumented_envelope_field(body, exchange):
    """The answer with one field the document's ``{code, msg, data}`` does not have."""
    return {**body, "request_id": "r-1"}


def record_lines(run, stream: str = "") -> list[str]:
    """Each RECORD line as written (of ``stream``, or every one), less its ``time_extracted`` (the clock)."""
    start = f'{{"type":"RECORD","stream":"{stream}' if stream else '{"type":"RECORD"'
    lines = [line for line in run.stdout.splitlines() if line.startswith(start)]
    return [line.split(',"time_extracted":')[0] for line in lines]


def test_a_page_decoded_as_json_writes_the_lines_of_a_typed_page(sandbox, tmp_path):
    """Nuoyun's usual pages are decoded into row structs (``typed_rows``); an answer the struct
    refuses (here: a field beyond the document's envelope) is decoded as JSON. Either way every
    RECORD line is the same, byte for byte: same values, fields in the same order."""
    config, data = nuoyun_config(sandbox, rows=1200)
    (tmp_path / "typed").mkdir()
    typed = run_tap(tmp_path / "typed", config)
    assert typed.returncode == 0, typed.stderr
    install(sandbox, Rule("an undocumented envelope field", edit(undocumented_envelope_field), calls=every))
    (tmp_path / "json").mkdir()
    decoded = run_tap(tmp_path / "json", config)
    assert decoded.returncode == 0, decoded.stderr
    assert len(record_lines(typed, STREAM)) == len(data.keys)
    assert record_lines(decoded) == record_lines(typed)  # and the viewer_sessions they feed
    first = json.loads(record_lines(typed, STREAM)[0] + "}")["record"]
    # the schema's order, whatever order the provider sends (the sandbox sends device before area)
    assert list(first) == list(nuoyun_module.SCHEMA["properties"])


def every_other(call: int) -> bool:
    return call % 2 == 0


def test_rows_read_again_from_typed_and_json_pages_are_the_same_rows_not_collisions(sandbox, tmp_path):
    """Viewers come back while the window is read, so rows are read again; every other answer is
    decoded as JSON. A row read once from each kind of page is the same row (same fingerprint):
    written again (at least once), never as a collision under a content key."""
    data = ny.register(sandbox, ny.NuoyunData(rows=6000, churn_growth=15, churn_from_page=4))
    config = {**WINDOW, "nuoyun": ny.tap_config(data, sandbox.base_url)}
    install(
        sandbox, Rule("an undocumented envelope field", edit(undocumented_envelope_field), calls=every_other)
    )
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "key of a different row" not in run.stderr
    keys = [(r["room_id"], r["wechat_user_space_id"]) for r in run.records(STREAM)]
    assert all(user > 0 for _, user in keys)  # a content key is negative
    assert len(keys) > len(set(keys))  # rows were read again
    assert data.keys - set(data.moved) <= set(keys) <= data.keys
    assert len(sandbox.calls_to(ny.PATH)) > math.ceil(6000 / 500)  # pages were asked again


def test_row_struct_takes_the_documented_row_and_refuses_any_other():
    """A typed row is the document's row and nothing else: every field present (null allowed),
    each of its type, no field beyond them; the fields the tap adds are not in it until set."""
    row = json.loads((FIXTURES / "nuoyun_example.json").read_text())["data"]["list"][0]
    decode = msgspec.json.Decoder(nuoyun_module.NuoyunRow).decode
    typed = decode(json.dumps(row))
    assert as_record(typed) == row
    assert raw_bytes(as_record(typed)) == raw_bytes(row)  # the same content keys either way
    assert as_record(decode(json.dumps({**row, "ip": None}))) == {**row, "ip": None}
    refused = [
        {**row, "new_field": 1},  # not in the document
        {k: v for k, v in row.items() if k != "ip"},  # missing
        {**row, "stay_duration": "3215"},  # a number as text
        {**row, "stay_duration": 32.5},
        {**row, "room_id": True},
        {**row, "channel_info": []},  # PHP's empty object
        {**row, "device": 1.0},
    ]
    for case in refused:
        with pytest.raises(msgspec.ValidationError):
            decode(json.dumps(case))


def test_a_nested_value_of_the_wrong_type_in_a_typed_page_is_nulled_as_on_the_json_path(sandbox, tmp_path):
    """A typed row takes ``channel_info`` as an object (it may hold fields the document lacks);
    its documented fields are still checked: one ``channel_id`` that is not a number sends its
    page row by row, where it is nulled and counted, and every other row is the clean record.
    A field the document lacks inside the object is kept, on either path."""
    config, _ = nuoyun_config(sandbox, rows=1200, max_concurrency=1)
    (tmp_path / "clean").mkdir()
    clean = run_tap(tmp_path / "clean", config)
    assert clean.returncode == 0, clean.stderr

    def odd_channels(rows: list) -> list:
        first = {**rows[0], "channel_info": {**rows[0]["channel_info"], "channel_id": "store nine"}}
        second = {**rows[1], "channel_info": {**rows[1]["channel_info"], "region": "east"}}
        return [first, second, *rows[2:]]

    install(sandbox, Rule("nested values", rows_become(odd_channels), calls=nth(2)))
    (tmp_path / "odd").mkdir()
    odd = run_tap(tmp_path / "odd", config)
    assert odd.returncode == 0, odd.stderr
    assert "1 row(s) with an unreadable channel_info.channel_id (first: 'store nine')" in odd.stderr
    records = odd.records(STREAM)
    expected = clean.records(STREAM)
    assert records[500]["channel_info"] == {**expected[500]["channel_info"], "channel_id": None}
    assert records[501]["channel_info"] == {**expected[501]["channel_info"], "region": "east"}
    assert records[502:] == expected[502:] and records[:500] == expected[:500]


def test_a_typed_row_has_an_identity_field_exactly_when_its_dict_has_one():
    """The identity check of a typed page decides as the dict path's does: null, blank text and a
    field the tap has not set yet count as absent; zero and any text do not."""
    row_type = msgspec.defstruct("Row", [("a", object, None), ("b", object, msgspec.UNSET)], kw_only=True)
    cases = [
        (None, msgspec.UNSET),
        ("  ", msgspec.UNSET),
        ("x", msgspec.UNSET),
        (None, "y"),
        (0, msgspec.UNSET),
    ]
    for a, b in [*cases, (None, ""), (None, None), ("", " \t")]:
        as_dict = {name: value for name, value in (("a", a), ("b", b)) if value is not msgspec.UNSET}
        assert has_any_field(row_type(a=a, b=b), ("a", "b")) == has_any(as_dict, ("a", "b")), (a, b)
    assert [has_any_field(row_type(a=a, b=b), ("a", "b")) for a, b in cases] == [
        False,
        False,
        True,
        True,
        True,
    ]
