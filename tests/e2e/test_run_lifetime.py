"""A run's processes end with it, however it ends (issue 13, points 9 and 11). A run that cannot be
done at all: tests/unit/test_run_lifetime.py.

These tests start a real run with a temporary server (no PREFECT_API_URL, as for a user without a
server), wait until it is analysing, and end it from outside: SIGKILL of its main process alone (the
OOM killer), or a stop sent to its process group (Ctrl-C on a terminal, `systemctl stop`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from linac_qa.testing import synthetic
from tests.conftest import ROOT, register_inputs

Tree = list[psutil.Process]
VERDICT = re.compile(r"^(PASS|FAIL|ERROR) ", re.MULTILINE)  # a verdict line of the command line
GUARD = "flows.server_guard"
STOP_SECONDS = 30.0  # generous for two loaded cores; a stop used to take 40-120 s


@contextmanager
def analysing_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Tree]]:
    """A run with a temporary server, in a process group of its own, once its one worker has
    delivered a first verdict and is busy with the next acquisition; with every process it has
    started by then. Whatever is left at the end is killed by PID."""
    data = tmp_path / "qa"
    synthetic.starshot(data / "RI.QA.Starshot_A.dcm")
    synthetic.starshot(data / "RI.QA.Starshot_B.dcm", seed=1)
    synthetic.picket_fence(data / "RI.QA.PF_A.dcm")
    register_inputs(data)
    config = tmp_path / "config.yml"
    config.write_text("general:\n  settle-seconds: 0\n  workers: 1\n", encoding="utf-8")
    log = tmp_path / "run.log"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.process", str(data), "--config", str(config), "--json"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,  # with --json, the verdict lines come here
            start_new_session=True,
        )
    tree: Tree = []
    try:
        deadline = time.monotonic() + 600
        while not VERDICT.search(log.read_text(errors="replace")):
            assert proc.poll() is None, f"the run ended first:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no verdict in time"
            time.sleep(0.2)
        tree = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in tree]
        assert any(GUARD in c for c in commands), commands  # the temporary server
        assert any("spawn_main" in c for c in commands), commands  # the analysis worker
        yield proc, tree
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in tree:
            if alive(p):
                p.kill()
        proc.wait()


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def left_behind(tree: Tree, grace: float) -> list[str]:
    psutil.wait_procs(tree, timeout=grace)
    described = []
    for p in tree:
        if alive(p):
            try:
                described.append(f"{p.pid}: {' '.join(p.cmdline())[:120]}")
            except psutil.Error:
                continue
    return described


@pytest.mark.e2e
def test_a_run_killed_outright_takes_its_temporary_server_and_workers_with_it(tmp_path: Path) -> None:
    with analysing_run(tmp_path) as (proc, tree):
        os.kill(proc.pid, signal.SIGKILL)  # the main process alone, as the OOM killer does
        proc.wait(timeout=30)
        assert left_behind(tree, grace=10) == []


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_ends_the_whole_run_within_seconds(tmp_path: Path, sig: signal.Signals) -> None:
    with analysing_run(tmp_path) as (proc, tree):
        sent = time.monotonic()
        os.killpg(proc.pid, sig)  # the whole group: Ctrl-C on a terminal, systemd's stop
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"still running 120 s after {sig.name}:\n{(tmp_path / 'run.log').read_text()[-6000:]}"
            )
        left = left_behind(tree, grace=STOP_SECONDS)
        took = time.monotonic() - sent
        assert left == []
        assert took < STOP_SECONDS
        # ended by its signal (a shell sees 128 + n): neither a pass (0) nor a QA failure (1)
        assert proc.returncode == -sig
        # and says so, and what became of the analyses
        assert "stopping on " in (tmp_path / "run.log").read_text(errors="replace")
