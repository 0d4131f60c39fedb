"""Issue 13, point 1: a stop (SIGTERM) of a run on a real Prefect server records no analysis it did
not finish: those are analysed by the next run, never recorded as `error: BrokenProcessPool`. What a
killed or interrupted run leaves otherwise: tests/unit/test_stops.py."""

from __future__ import annotations

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


@pytest.mark.e2e
def test_a_run_stopped_by_sigterm_records_only_what_it_finished(tmp_path: Path, prefect_api: str) -> None:
    """SIGTERM (systemctl stop, a cancel in the UI) while analyses are queued: those are left for the
    next run, which analyses each of them once, with its real verdict."""
    root = tmp_path / "qa"
    expected = {}
    for i in range(3):
        synthetic.picket_fence(root / f"RI.QA.PF_{i}.dcm", leaf_error_mm=1.2 if i == 1 else 0.0, seed=i)
        expected[f"RI.QA.PF_{i}.dcm"] = "failed" if i == 1 else "passed"
    for i in range(3):
        synthetic.starshot(root / f"RI.QA.Starshot_{i}.dcm", wobble_mm=0.9 if i == 2 else 0.1, seed=i)
        expected[f"RI.QA.Starshot_{i}.dcm"] = "failed" if i == 2 else "passed"
    register_inputs(root)
    config = tmp_path / "config.yml"
    config.write_text("general:\n  settle-seconds: 0\n  workers: 1\n", encoding="utf-8")
    ledger = root / ".linac-qa" / "ledger.sqlite"

    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
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
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) not in (0, 1)  # a stopped run is no verdict
    stopped = _rows(ledger)
    assert 1 <= len(stopped) < len(expected), "the stop came too late to test anything"
    assert all(status == expected[files[0]] for files, status, _ in stopped), stopped

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
