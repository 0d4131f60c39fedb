"""Hostile folders through `python -m flows.process` (issue 13): a name that is not UTF-8 is an error
of its own while everything else is analysed, and nested folders are analysed once, by their own
runs, never by two runs at the same time."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from filelock import FileLock

from linac_qa.testing import synthetic
from tests.conftest import register_inputs, run_cli
from tests.unit.test_hostile_folders import BAD_FILE, BAD_FOLDER, odd_folder

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.name == "nt", reason="Windows file names are always Unicode"),
]


def test_a_name_that_is_not_utf8_is_one_error_and_the_rest_is_analysed(
    tmp_path: Path, quick_config: Path, prefect_api: str
) -> None:
    root = odd_folder(tmp_path / "qa")
    register_inputs(root)
    run = run_cli(root, "--config", quick_config, "--json", api=prefect_api)  # stdout decoded strictly
    assert run.code == 1, run.stderr[-3000:]
    results = {r["files"][0]: r for r in run.summary["results"]}
    assert sorted(results) == sorted(["RI.QA.Starshot_A.dcm", BAD_FILE, BAD_FOLDER])
    assert results["RI.QA.Starshot_A.dcm"]["status"] == "passed"
    assert results[BAD_FILE]["status"] == results[BAD_FOLDER]["status"] == "error"
    assert results[BAD_FILE]["reason"].startswith("file name is not valid UTF-8")
    verdict_line = rf"^ERROR +- +{re.escape(BAD_FILE)}: file name is not valid UTF-8"
    assert re.search(verdict_line, run.stderr, re.MULTILINE), run.stderr[-3000:]
    again = run_cli(root, "--config", quick_config, "--json", api=prefect_api)
    assert again.code == 0, again.stderr[-3000:]
    assert again.summary["results"] == [] and again.summary["skipped"]["done"] == 3


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".linac-qa" not in p.parts
    }


def test_nested_folders_are_analysed_once_by_their_own_runs(
    tmp_path: Path, quick_config: Path, prefect_api: str
) -> None:
    parent = tmp_path / "P"
    child = parent / "TrueBeam1"
    synthetic.starshot(parent / "RI.QA.Starshot_P.dcm", wobble_mm=0.1)
    synthetic.starshot(child / "RI.QA.Starshot_T.dcm", wobble_mm=0.1, seed=2)
    register_inputs(parent)

    own = run_cli(child, "--config", quick_config, "--json", api=prefect_api)
    assert own.code == 0, own.stderr[-3000:]
    assert [r["files"] for r in own.summary["results"]] == [["RI.QA.Starshot_T.dcm"]]
    child_before = digests(child)

    outer = run_cli(parent, "--config", quick_config, "--json", api=prefect_api)
    assert outer.code == 0, outer.stderr[-3000:]
    assert [r["files"] for r in outer.summary["results"]] == [["RI.QA.Starshot_P.dcm"]]
    assert outer.summary["skipped"]["nested-run"] == 1
    assert digests(child) == child_before  # the child's reports stay where they are
    assert not (parent / ".linac-qa" / "history").exists()

    with FileLock(parent / ".linac-qa" / "run.lock"):  # a run of P in progress
        inside = run_cli(child, "--config", quick_config, "--json", api=prefect_api)
    assert inside.code == 3 and inside.stdout == ""
    assert f"another run is processing {parent}, which includes {child}" in inside.stderr
