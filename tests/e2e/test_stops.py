"""Issue 13, point 1: a stop (Ctrl-C, SIGTERM) of a run on a real Prefect server records no analysis
it did not finish: those are analysed by the next run, never recorded as `error: BrokenProcessPool`;
and (issue 15, point 5) the run and its subflows are left Cancelled in Prefect, not Crashed. What a
killed or interrupted run leaves otherwise: tests/unit/test_stops.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from linac_qa.testing import synthetic
from tests.conftest import ROOT, register_inputs, run_cli
from tests.prefect_runs import read_back


@pytest.mark.e2e
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_run_records_only_what_it_finished_and_ends_cancelled(
    tmp_path: Path, prefect_api: str, stop: signal.Signals
) -> None:
    """A stop while analyses are queued: those are left for the next run, which analyses each of
    them once, with its real verdict."""
    root = tmp_path / "qa"
    expected = {}
    for i in range(6):
        synthetic.starshot(root / f"RI.QA.Starshot_{i}.dcm", wobble_mm=0.9 if i in (2, 4) else 0.1, seed=i)
        expected[f"RI.QA.Starshot_{i}.dcm"] = "failed" if i in (2, 4) else "passed"
    register_inputs(root)
    config = tmp_path / "config.yml"
    config.write_text("general:\n  settle-seconds: 0\n  workers: 1\n", encoding="utf-8")
    ledger = root / ".linac-qa" / "ledger.sqlite"

    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    began = dt.datetime.now(dt.UTC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.process", str(root), "--config", str(config), "--json"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stopped.err").open("w"),
    )
    deadline = time.monotonic() + 300
    while not _rows(ledger):  # the first verdict is in: the others are running or waiting
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stopped.err").read_text()
        time.sleep(0.2)
    proc.send_signal(stop)
    assert proc.wait(timeout=300) == -stop  # ended by its signal: a stopped run is no verdict
    stopped = _rows(ledger)
    assert 1 <= len(stopped) < len(expected), "the stop came too late to test anything"
    assert all(status == expected[files[0]] for files, status, _ in stopped), stopped
    said = (tmp_path / "stopped.err").read_text()
    assert "Traceback" not in said, said[-3000:]
    server = read_back(prefect_api, root, began)
    states = [server.flow_run.state, *(r.state for r in server.subflows)]
    assert [s.type.value for s in states] == ["CANCELLED"] * len(states), [
        (s.name, s.message) for s in states
    ]
    assert server.flow_run.state.message.startswith(
        f"stopped by {'Ctrl-C' if stop == signal.SIGINT else 'SIGTERM'}"
    )

    rerun = run_cli(root, "--config", config, "--json", api=prefect_api)
    assert rerun.code == 1, rerun.stderr[-3000:]
    final = _rows(ledger)
    assert Counter(f for files, _, _ in final for f in files) == Counter(list(expected))  # each once
    assert {files[0]: status for files, status, _ in final} == expected
    assert not any("BrokenProcessPool" in reason for _, _, reason in final)


def _rows(ledger: Path) -> list[tuple[list[str], str, str]]:
    if not ledger.exists():
        return []
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        try:
            rows = db.execute("SELECT files, status, reason FROM results").fetchall()
        except sqlite3.OperationalError:  # created, not yet its tables
            return []
    return [(json.loads(files), status, reason) for files, status, reason in rows]


@pytest.mark.e2e
def test_a_second_ctrl_c_ends_a_watch_and_its_batch_cancelled(tmp_path: Path, prefect_api: str) -> None:
    """The first Ctrl-C lets the analysis in progress finish; a second one ends the watch at once:
    the watch, its batch and the batch's subflow are Cancelled, and the process ends by SIGINT."""
    root = tmp_path / "qa"
    for i in range(3):
        synthetic.picket_fence(root / f"RI.QA.PF_{i}.dcm", seed=i)
    register_inputs(root)
    config = tmp_path / "config.yml"
    config.write_text("general:\n  settle-seconds: 0\n  workers: 1\n  poll-seconds: 2\n", encoding="utf-8")
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    began = dt.datetime.now(dt.UTC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.watch", str(root), "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "watch.err").open("w"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not _rows(root / ".linac-qa" / "ledger.sqlite"):  # one verdict in, the next analysis running
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "watch.err").read_text()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == -signal.SIGINT
    said = (tmp_path / "watch.err").read_text()
    assert "Traceback" not in said, said[-3000:]
    watch = read_back(prefect_api, root, began, flow="watch-directory")
    batch = read_back(prefect_api, root, began)
    assert [r.state.type.value for r in (watch.flow_run, batch.flow_run, *batch.subflows)] == [
        "CANCELLED"
    ] * 3
