"""The settings contract, as `--about` shows it and as meltano.yml declares it."""

from __future__ import annotations

import json
import subprocess

import yaml

from conftest import ROOT, TAP, discover

CONTRACT = {
    "start_date": None,
    "end_date": None,
    "provider_timezone": None,
    "shangzhibo": {"access_token", "base_url", "activity_ids", "agent_id", "user_ids", "page_size"},
    "mudu": {
        "access_token",
        "base_url",
        "channel_ids",
        "page_size",
        "daily_call_limit",
        "filter_watch_time",
        "check_in_test",
    },
    "nuoyun": {"base_url", "headers", "body", "wechat_user_space_ids", "page_size", "max_requests_per_10s"},
    "talkcloud": {"key", "base_url", "serials", "thirdroomids"},
}
SECRETS = {"shangzhibo.access_token", "mudu.access_token", "nuoyun.headers", "nuoyun.body", "talkcloud.key"}
DEFAULTS = {
    "provider_timezone": "Asia/Shanghai",
    "shangzhibo.base_url": "https://shangzhibo.tv",
    "mudu.page_size": 100,
    "mudu.daily_call_limit": 10,
    "mudu.filter_watch_time": True,
    "mudu.check_in_test": False,
    "nuoyun.base_url": "https://gateway.nuoyunapi.com",
    "nuoyun.page_size": 500,
    "nuoyun.max_requests_per_10s": 1000,
    "talkcloud.base_url": "https://global.talk-cloud.net",
}


def about() -> dict:
    out = subprocess.run([TAP, "--about", "--format=json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_about_shows_the_whole_settings_contract():
    settings = about()["settings"]
    assert settings["required"] == ["start_date"]
    properties = settings["properties"]
    assert properties["start_date"]["format"] == "date-time"
    for name, nested in CONTRACT.items():
        assert name in properties
        if nested:
            assert set(properties[name]["properties"]) == nested
    for dotted in SECRETS:
        provider, name = dotted.split(".")
        assert properties[provider]["properties"][name].get("secret") is True, dotted
    for dotted, value in DEFAULTS.items():
        node = properties
        *parents, leaf = dotted.split(".")
        for parent in parents:
            node = node[parent]["properties"]
        assert node[leaf].get("default") == value, dotted


def test_meltano_yml_defines_every_setting_with_secrets_sensitive():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    extractor = project["plugins"]["extractors"][0]
    assert extractor["pip_url"] == "-e ." and extractor["executable"] == "tap-livestream-viewers"
    assert {"state", "catalog", "discover", "about", "stream-maps"} <= set(extractor["capabilities"])
    declared = {s["name"]: s for s in extractor["settings"]}
    for name, nested in CONTRACT.items():
        for leaf in nested or [None]:
            dotted = f"{name}.{leaf}" if leaf else name
            assert dotted in declared, dotted
            assert "kind" in declared[dotted], dotted
    for dotted in SECRETS:
        assert declared[dotted].get("sensitive") is True, dotted
    assert all(loader.get("pip_url") for loader in project["plugins"]["loaders"])
    duckdb_loader = next(x for x in project["plugins"]["loaders"] if x["name"] == "target-duckdb")
    assert "duckdb==1.2.2" in duckdb_loader["pip_url"]


def test_only_configured_providers_have_streams(tmp_path):
    only_mudu = {
        "start_date": "2026-09-01T00:00:00Z",
        "mudu": {"access_token": "t" * 8, "channel_ids": ["1"]},
    }
    names = {s["tap_stream_id"] for s in discover(tmp_path, only_mudu)["streams"]}
    assert names == {"mudu_user_records", "viewer_sessions"}  # viewer_sessions: from any provider
    everything = {
        **only_mudu,
        "shangzhibo": {"access_token": "t" * 8, "activity_ids": ["1"], "agent_id": 1, "user_ids": [2]},
        "nuoyun": {"headers": {"Authorization": "Bearer " + "n" * 8}},
        "talkcloud": {"key": "k" * 8, "serials": ["1"]},
    }
    catalog = discover(tmp_path, everything)
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert set(streams) == {
        "mudu_user_records",
        "shangzhibo_activity_visits",
        "shangzhibo_user_visits",
        "nuoyun_user_durations",
        "talkcloud_login_records",
        "talkcloud_stage_users",
        "viewer_sessions",
    }
    for entry in streams.values():
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        assert root.get("table-key-properties"), entry["tap_stream_id"]
        properties = entry["schema"]["properties"]
        assert all(key in properties for key in root["table-key-properties"])
        for field in properties.values():
            if field.get("format") == "date-time":
                assert "string" in field["type"]
