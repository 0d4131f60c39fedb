"""Worker jobs for the pool tests, made the way a run makes them: real files, classified and planned."""

from __future__ import annotations

import threading
from pathlib import Path

from linac_qa.config import load_settings
from linac_qa.execution.runner import Job, JobOutcome
from linac_qa.grouping.plan import group_context, plan
from linac_qa.intake.classify import classify_files
from linac_qa.intake.discovery import discover
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run
from linac_qa.testing import synthetic


def starshot_jobs(tmp_path: Path, count: int = 1) -> list[Job]:
    root = tmp_path / "qa"
    for i in range(count):
        synthetic.starshot(root / f"RI.QA.Starshot_{i}.dcm", wobble_mm=0.1, seed=i)
    config = load_settings(text="general:\n  settle-seconds: 0\n")
    run = Run(root, config, Ledger.open(root))
    found = discover(root, config, {})
    work = plan(
        classify_files(root, [s.path for s in found.new], config), config, group_context(root, config)
    )
    return [run.job(acq) for acq in work.acquisitions]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Job, JobOutcome, str]] = []

    def __call__(self, job: Job, outcome: JobOutcome) -> None:
        self.calls.append((job, outcome, threading.current_thread().name))
