"""A second run on a locked directory exits 3 (DESIGN.md section 2). The other exit statuses and the
dry run: tests/unit/test_cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from filelock import FileLock

from linac_qa.testing import synthetic
from tests.conftest import run_cli


@pytest.mark.e2e
def test_a_second_run_on_a_locked_directory_exits_3(
    tmp_path: Path, quick_config: Path, prefect_api: str
) -> None:
    data = tmp_path / "qa"
    synthetic.starshot(data / "RI.QA.Starshot_A.dcm")
    (data / ".linac-qa").mkdir()
    with FileLock(data / ".linac-qa" / "run.lock"):
        run = run_cli(data, "--config", quick_config, "--json", api=prefect_api)
    assert run.code == 3 and "another run" in run.stderr
    assert run.stdout == ""
    # One line, said before any flow run starts: no traceback, no red run in the UI.
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    with FileLock(data / ".linac-qa" / "run.lock"):
        watch = run_cli(data, "--config", quick_config, module="flows.watch", api=prefect_api)
    assert watch.code == 3 and len(watch.stderr.strip().splitlines()) == 1, watch.stderr
