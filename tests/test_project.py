"""What a user gets from the package and the repository: licence, metadata, described settings,
secrets kept out of git, and a README settings table that matches the tap."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile

import tomllib
import yaml

from conftest import ROOT, TAP, discover
from sandbox.__main__ import build
from sandbox.__main__ import tap_settings as sandbox_settings

SECRET_FILES = (
    ".env",
    "config.json",
    "prod.config.json",
    "tap-config.json",
    "config.prod.json",
    "state.json",
    "prod.state.json",
    "mudu-state.json",
    "output/sandbox-config.json",
)
#: What .gitignore covered before secrets were added to it: still ignored.
ALREADY_IGNORED = (".venv/", ".meltano/", "output/x.duckdb", "build/", "dist/", "run.log", "x.duckdb.wal")


def about() -> dict:
    out = subprocess.run([TAP, "--about", "--format=json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def tap_settings(properties: dict, prefix: str = "") -> dict[str, dict]:
    """Every setting of the tap's own schema, nested ones by dotted name (SDK built-ins left out)."""
    found = {}
    for name, prop in properties.items():
        found[prefix + name] = prop
        if prop.get("properties"):
            found.update(tap_settings(prop["properties"], f"{prefix}{name}."))
    return found


def test_every_setting_has_a_description_in_the_schema_and_in_meltano_yml():
    from tap_livestream_viewers.tap import SETTINGS

    ours = tap_settings(SETTINGS.to_dict()["properties"])
    undescribed = [name for name, prop in ours.items() if not prop.get("description")]
    assert undescribed == []
    extractor = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["extractors"][0]
    declared = {item["name"]: item for item in extractor["settings"]}
    leaves = [name for name, prop in ours.items() if not prop.get("properties")]  # provider objects aside
    assert sorted(set(leaves) - set(declared)) == []
    missing = [
        name for name, item in declared.items() if not item.get("description") or not item.get("label")
    ]
    assert missing == []
    assert "structured-logging" in extractor["capabilities"]


def test_readme_settings_table_is_the_one_about_prints():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "settings_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("mudu.daily_call_limit", "nuoyun.headers", "talkcloud.thirdroomids", "metrics_log_level"):
        assert f"| {name} |" in readme


def test_secret_files_are_ignored_by_git_and_earlier_ignores_kept():
    paths = [*SECRET_FILES, *ALREADY_IGNORED]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"],
        cwd=ROOT,
        input="\n".join(paths) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    not_ignored = [line.split("\t")[-1] for line in proc.stdout.splitlines() if line.startswith("::")]
    assert not_ignored == []


def test_package_declares_apache_2_with_its_licence_text_and_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert project["urls"] and all(url.startswith("https://") for url in project["urls"].values())
    assert any(c.startswith("Programming Language :: Python :: 3") for c in project["classifiers"])
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert "setuptools>=77" in build  # the first setuptools that reads an SPDX license string


def test_python_dash_m_runs_the_same_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "tap_livestream_viewers", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout)["name"] == about()["name"] == "tap-livestream-viewers"


def test_every_integer_in_the_catalog_declares_a_64_bit_range(tmp_path):
    """target-duckdb makes HUGEINT of an integer without ``maximum``; with the int64 range, BIGINT."""
    _box, datasets = build()  # only its settings: discovery makes no call
    config = {"start_date": "2026-09-01T00:00:00+08:00", **sandbox_settings(datasets, "http://127.0.0.1:9")}
    catalog = discover(tmp_path, config)
    unsized = []

    def walk(schema: dict, path: str) -> None:
        types = schema.get("type")
        is_integer = types == "integer" or (isinstance(types, list) and "integer" in types)
        if is_integer and (schema.get("minimum"), schema.get("maximum")) != (-(2**63), 2**63 - 1):
            unsized.append(path)
        for name, sub in (schema.get("properties") or {}).items():
            walk(sub, f"{path}.{name}")

    integers = 0
    for entry in catalog["streams"]:
        walk(entry["schema"], entry["tap_stream_id"])
        integers += json.dumps(entry["schema"]).count('"integer"')
    assert integers > 20
    assert unsized == []


def test_building_the_package_warns_about_nothing_and_ships_the_licence(tmp_path):
    """The old ``license = {text = …}`` form warned on every install; the SPDX form does not."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(tmp_path), "-v"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    warnings = [
        line
        for line in log.splitlines()
        if re.search(r"Warning|!!", line) and "is ignored: it is neither a file nor a directory" not in line
    ]
    assert warnings == []
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert {name.split("/")[0] for name in names} == {
        "tap_livestream_viewers",
        "tap_livestream_viewers-0.1.0.dist-info",
    }
