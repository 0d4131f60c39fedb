"""Shared fixtures: a real Prefect server on loopback for the end-to-end tests, and a helper that
runs the command line in a subprocess exactly as a user or cron would."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1: one server for the session instead of a temporary
    server per command (about 20 s each). Stopped by its PID."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": "",
        # A deployment run waiting for its concurrency slot is looked at again after this many
        # seconds (default 30): the back-to-back deployment test would mostly wait.
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
    }
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    try:
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def run_cli(
    *args: str | Path,
    api: str | None = None,
    timeout: float = 600,
    module: str = "flows.process",
    env_overrides: dict[str, str | None] | None = None,
) -> CliRun:
    """`python -m MODULE ARGS`; `env_overrides` sets variables, or removes those given as None."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if api:
        env["PREFECT_API_URL"] = api
    for name, value in (env_overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    proc = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def quick_config(tmp_path: Path) -> Path:
    """Fixtures are written moments before the run: no settling wait."""
    cfg = tmp_path / "config.yml"
    cfg.write_text("general:\n  settle-seconds: 0\n", encoding="utf-8")
    return cfg


# --------------------------------------------------------------------------- inputs never change
# Acceptance of issue 8: every input file of the end-to-end runs is byte-identical at the end of the
# session. End-to-end tests register their input folders right after building them;
# tests/test_zz_inputs_untouched.py (collected last) compares.
OWN_OUTPUT_MARK = "_analysis."
REGISTERED_INPUTS: dict[Path, dict[str, str]] = {}


def input_checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every input under `root`: not our outputs, not `.linac-qa/`, not temporaries. Links
    are described, never followed; named pipes are not opened."""
    from linac_qa.records.ledger import STATE_DIR
    from linac_qa.records.outputs import is_temporary

    found: dict[str, str] = {}
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d != STATE_DIR]
        for name in [*filenames, *(d for d in dirnames if (Path(folder) / d).is_symlink())]:
            path = Path(folder) / name
            if OWN_OUTPUT_MARK in name or is_temporary(name):
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}"
            elif not path.is_file():
                found[rel] = "special file"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def register_inputs(root: Path) -> None:
    REGISTERED_INPUTS[Path(root)] = input_checksums(Path(root))
