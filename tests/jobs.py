"""Worker jobs for the pool tests, made the way a run makes them: real files, classified and planned."""

from __future__ import annotations

import threading
from pathlib import Path

from linac_qa.config import load_settings
from linac_qa.execution.runner import Job, JobOutcome
from linac_qa.grouping.plan import plan_directory
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run
from linac_qa.testing import synthetic


def starshot_jobs(tmp_path: Path, count: int = 1) -> list[Job]:
    root = tmp_path / "qa"
    for i in range(count):
        synthetic.starshot(root / f"RI.QA.Starshot_{i}.dcm", wobble_mm=0.1, seed=i)
    config = load_settings(text="general:\n  settle-seconds: 0\n")
    run = Run(root, config, Ledger.open(root))
    return [run.job(acq) for acq in plan_directory(root, config, {}).plan.acquisitions]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Job, JobOutcome, str]] = []

    def __call__(self, job: Job, outcome: JobOutcome) -> None:
        self.calls.append((job, outcome, threading.current_thread().name))
