"""The tap as users run it: `meltano run` into real DuckDB and PostgreSQL databases.

Each test runs every provider the sandbox emulates, checks the rows that landed (never only
the exit code: target-duckdb can exit 0 having loaded nothing), and that a second run with
Meltano's saved state asks the providers only for what is new.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from conftest import ROOT, run_tap
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


def meltano_run(env: dict[str, str], target: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [MELTANO, "run", "tap-livestream-viewers", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def expected_rows(tmp_path: Path, settings: dict) -> dict[str, int]:
    """Distinct primary keys per stream, from a direct run of the tap on the same data."""
    config = {"start_date": START, "end_date": END, "backoff_base_seconds": 0.05, **settings}
    direct = run_tap(tmp_path, config)
    assert direct.returncode == 0, direct.stderr
    schemas = {m["stream"]: m["key_properties"] for m in direct.messages if m["type"] == "SCHEMA"}
    return {
        stream: len({tuple(r[k] for k in keys) for r in direct.records(stream)})
        for stream, keys in schemas.items()
    }


def test_meltano_run_into_duckdb_lands_every_row_and_resumes_from_state(meltano_installed, tmp_path):
    box, datasets = build()
    base_url = box.start()
    try:
        settings = tap_settings(datasets, base_url)
        expected = expected_rows(tmp_path, settings)
        assert expected.get("shangzhibo_activity_visits")
        box.reset_calls()

        database = tmp_path / "warehouse.duckdb"
        env = meltano_env(tmp_path, settings, TARGET_DUCKDB_FILEPATH=str(database))
        meltano_run(env, "target-duckdb")
        connection = duckdb.connect(str(database), read_only=True)
        landed = {
            table: connection.execute(f'select count(*) from "{catalog}".livestream."{table}"').fetchone()[0]
            for catalog, table in connection.execute(
                "select table_catalog, table_name from information_schema.tables "
                "where table_schema = 'livestream'"
            ).fetchall()
        }
        connection.close()
        assert landed == expected

        box.reset_calls()
        meltano_run(env, "target-duckdb")  # state saved by Meltano: the window is done
        assert box.calls_to("/stats/user-visits") == []
        connection = duckdb.connect(str(database), read_only=True)
        again = connection.execute('select count(*) from warehouse.livestream."shangzhibo_activity_visits"')
        assert again.fetchone()[0] == expected["shangzhibo_activity_visits"]
        connection.close()
    finally:
        box.stop()


# ------------------------------------------------------------------- PostgreSQL


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    assert found, f"{name} not found: install the PostgreSQL server (scripts/ensure_postgres.sh does)"
    return str(found)


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback; yields its SQLAlchemy URL."""
    # pytest's tmp_path is private to root; the server runs as ``postgres`` when we are root
    # (initdb refuses root), so it gets a directory of its own.
    home = Path(tempfile.mkdtemp(prefix="tap-livestream-pg-"))
    home.chmod(0o755)
    data_dir = home / "data"
    socket_dir = home / "sock"
    data_dir.mkdir()
    socket_dir.mkdir()
    port = _free_port()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres")
        shutil.chown(socket_dir, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, _pg_binary("initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1"
    # The server outlives pg_ctl: its output goes to a log file, never to our pipes (a pipe
    # the server holds open would make this call wait forever).
    subprocess.run(
        [
            *as_postgres,
            _pg_binary("pg_ctl"),
            *("-D", str(data_dir), "-o", options, "-l", str(socket_dir / "server.log"), "-w", "start"),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, _pg_binary("pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        shutil.rmtree(home, ignore_errors=True)


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


@pytest.mark.parametrize("provider", sorted(PROVIDER_PATHS))
def test_meltano_run_with_one_providers_environment_lands_only_that_provider(
    meltano_installed, tmp_path, provider
):
    """Settings only from environment variables, one provider's alone: its rows, no other call."""
    box, datasets = build()
    base_url = box.start()
    try:
        settings = {provider: tap_settings(datasets, base_url)[provider]}
        expected = expected_rows(tmp_path, settings)
        assert set(expected) == PROVIDER_STREAMS[provider]
        box.reset_calls()
        out = tmp_path / "jsonl"
        out.mkdir()
        env = meltano_env(tmp_path, settings, TARGET_JSONL_DESTINATION_PATH=str(out))
        result = meltano_run(env, "target-jsonl")
        assert landed_jsonl(out) == expected
        assert all(expected.values()), expected
        others = [
            call.path
            for call in box.calls
            if not any(fragment in call.path for fragment in PROVIDER_PATHS[provider])
        ]
        assert others == [], others
        assert box.calls, "the configured provider was never called"
        assert "Traceback" not in result.stderr
    finally:
        box.stop()
