"""Shared test helpers: a sandbox per test and a runner for the real tap CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Sandbox  # noqa: E402

# No test, module- or session-scoped fixtures included, may read or fill the user's own
# machine-local Mudu call ledger (~/.local/state): runs of the suite would spend each other's
# budget. Each test gets a private one on top of this (``private_call_ledger``).
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="tap-livestream-viewers-tests-")

TAP = str(Path(sys.executable).with_name("tap-livestream-viewers"))


@dataclass
class TapRun:
    """The outcome of one tap process: its Singer messages, exit code and log."""

    returncode: int
    messages: list[dict]
    stderr: str
    stdout: str = ""  # as written, for checks on every byte (e.g. no secret)

    def records(self, stream: str) -> list[dict]:
        """Records of ``stream`` in the order they were emitted."""
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    @property
    def states(self) -> list[dict]:
        """Every STATE value, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self) -> dict | None:
        """The final STATE value (what Meltano would save)."""
        return self.states[-1] if self.states else None


def run_tap(
    tmp_path: Path,
    config: dict,
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    extra_args: t.Sequence[str] = (),
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> TapRun:
    """Run ``tap-livestream-viewers`` as a user would, through the SDK CLI."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    args = [TAP, "--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    if catalog is not None:
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        args += ["--catalog", str(catalog_path)]
    args += list(extra_args)
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return TapRun(proc.returncode, messages, proc.stderr, proc.stdout)


def run_tap_until_killed(tmp_path: Path, config: dict, kill_when: t.Callable[[list[dict]], bool]) -> TapRun:
    """Run the tap and SIGKILL it as soon as ``kill_when(states so far)`` holds after a STATE.

    What the returned run holds is exactly what a target had received when the tap died.
    """
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [TAP, "--config", str(config_path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    messages: list[dict] = []
    states: list[dict] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        message = json.loads(line)
        messages.append(message)
        if message["type"] == "STATE":
            states.append(message["value"])
            if kill_when(states):
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait()
    proc.stdout.close()
    return TapRun(proc.returncode, messages, "")


def discover(tmp_path: Path, config: dict) -> dict:
    """The catalog ``--discover`` prints for ``config``."""
    config_path = tmp_path / "discover-config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(
        [TAP, "--config", str(config_path), "--discover"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def select_only(catalog: dict, *streams: str) -> dict:
    """Mark ``streams`` selected and every other stream deselected."""
    for entry in catalog["streams"]:
        chosen = entry["tap_stream_id"] in streams
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = chosen
    return catalog


@pytest.fixture(autouse=True)
def private_call_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own machine-local call ledger (``$XDG_STATE_HOME``), as on a fresh machine."""
    state_home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    return state_home / "tap-livestream-viewers" / "call-ledger.json"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh, empty sandbox server; tests register the providers they need."""
    box = Sandbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


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


@pytest.fixture
def box() -> Iterator[Sandbox]:
    """A sandbox whose clock starts on a fixed day (Mudu's quota day), moved only when a test says."""
    sandbox = Sandbox(now=datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@contextmanager
def all_providers_served() -> Iterator[tuple[Sandbox, dict]]:
    """The demo's data of all four providers on a running sandbox, with the tap settings reading it."""
    from sandbox.__main__ import build, tap_settings

    box, datasets = build()
    base_url = box.start()
    try:
        yield box, tap_settings(datasets, base_url)
    finally:
        box.stop()
