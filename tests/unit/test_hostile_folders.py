"""Hostile folders (issue 13), as plain functions: names that are not UTF-8, a folder processed by
runs of its own inside the one being processed, a run started inside a folder being processed, and
an output directory that would lose the reports or walk other folders. No Prefect, no worker pool."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from linac_qa.config import ConfigError, Settings, load_settings
from linac_qa.grouping.plan import group_context, plan
from linac_qa.intake.discovery import discover
from linac_qa.model import Status
from linac_qa.records.ledger import Ledger
from linac_qa.records.summary import skipped_counts
from linac_qa.run import DirectoryBusy, Run, directory_lock, resolve_directory
from linac_qa.testing import synthetic
from tests.conftest import run_cli

QUICK = "general:\n  settle-seconds: 0\n"
BAD_FILE = "RI.QA.Starshot_\\xff.dcm"  # how b"RI.QA.Starshot_\xff.dcm" is shown
BAD_FOLDER = "WL_\\xfe"

posix_names = pytest.mark.skipif(os.name == "nt", reason="Windows file names are always Unicode")


def settings() -> Settings:
    return load_settings(text=QUICK)


def odd_folder(root: Path) -> Path:
    """A good starshot, the same image under a name that is not UTF-8, and a folder whose name is
    not UTF-8 holding two files."""
    good = root / "RI.QA.Starshot_A.dcm"
    synthetic.starshot(good, wobble_mm=0.1)
    raw = os.fsencode(root)
    shutil.copyfile(good, raw + b"/RI.QA.Starshot_\xff.dcm")
    os.mkdir(raw + b"/WL_\xfe")
    for name in (b"WL_G0.dcm", b"WL_G90.dcm"):
        shutil.copyfile(good, raw + b"/WL_\xfe/" + name)
    return root


@posix_names
def test_a_name_that_is_not_utf8_is_an_error_of_its_own_and_recorded_once(tmp_path: Path) -> None:
    root = odd_folder(tmp_path / "qa")
    found = discover(root, settings(), {})
    assert [s.path for s in found.new] == ["RI.QA.Starshot_A.dcm"]  # only this one is classified
    decided = {cf.path: cf for cf in found.decided()}
    assert sorted(decided) == [BAD_FILE, BAD_FOLDER]
    assert decided[BAD_FILE].status is Status.ERROR
    assert decided[BAD_FILE].reason.startswith("file name is not valid UTF-8")
    assert "its files are not seen" in decided[BAD_FOLDER].reason

    # Recorded like any result: valid UTF-8 everywhere, and not reported again until it changes.
    ledger = Ledger.open(root)
    run = Run(root, settings(), ledger)
    run.stamps = {s.path: s for s in found.stamps}
    for result in plan(found.decided(), settings(), group_context(root, settings())).decided:
        run.record(result)
    json.dumps(run.summary(found.skipped).model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
    again = discover(root, settings(), ledger.known())
    assert again.bad_names == [] and again.skipped["done"] == 2
    os.utime(os.fsencode(root) + b"/RI.QA.Starshot_\xff.dcm", (1, 1))
    changed = discover(root, settings(), ledger.known())
    assert [s.path for s, _ in changed.bad_names] == [BAD_FILE]
    ledger.close()


@posix_names
def test_dry_run_shows_a_name_that_is_not_utf8_escaped(tmp_path: Path) -> None:
    root = odd_folder(tmp_path / "qa")
    cfg = tmp_path / "quick.yml"
    cfg.write_text(QUICK, encoding="utf-8")
    run = run_cli(root, "--config", cfg, "--dry-run", "--json")
    assert run.code == 0, run.stderr[-2000:]
    plan_rows = {row["files"][0]: row for row in json.loads(run.stdout)["plan"]}
    assert plan_rows["RI.QA.Starshot_A.dcm"]["would"] == "analyse"
    assert plan_rows[BAD_FILE]["would"] == "error" and plan_rows[BAD_FOLDER]["would"] == "error"


@posix_names
def test_a_source_file_whose_name_is_not_utf8_is_copied_once(tmp_path: Path) -> None:
    from linac_qa.intake.sources import copy_from_sources

    tds, qa = tmp_path / "Treatment", tmp_path / "qa"
    tds.mkdir()
    qa.mkdir()
    log = os.fsencode(tds) + b"/A_\xff.bin"
    with open(log, "wb") as fp:
        fp.write(b"VOSTL" + bytes(100))
    os.utime(log, (1, 1))
    config = load_settings(text=f"general:\n  sources: [{tds}]\n  settle-seconds: 0\n")
    ledger = Ledger.open(qa)
    try:
        first = copy_from_sources(qa, config, ledger)
        second = copy_from_sources(qa, config, ledger)
    finally:
        ledger.close()
    assert len(first.copied) == 1 and second.copied == [] and second.warnings == []
    assert [s.path for s, _ in discover(qa, config, {}).bad_names] == ["Treatment/A_\\xff.bin"]


# --------------------------------------------------------------------------- nested runs


def test_a_folder_with_its_own_state_is_left_to_its_own_runs(tmp_path: Path) -> None:
    parent = tmp_path / "P"
    synthetic.starshot(parent / "RI.QA.Starshot_P.dcm")
    synthetic.starshot(parent / "TrueBeam1" / "RI.QA.Starshot_T.dcm")
    synthetic.starshot(parent / "Clinac2" / "RI.QA.Starshot_C.dcm")
    (parent / "TrueBeam1" / ".linac-qa").mkdir()  # TrueBeam1 has been processed on its own
    found = discover(parent, settings(), {})
    assert sorted(s.path for s in found.new) == ["Clinac2/RI.QA.Starshot_C.dcm", "RI.QA.Starshot_P.dcm"]
    counts = skipped_counts(found.skipped)
    assert counts["nested-run"] == 1 and counts["hidden"] == 0
    assert "nested-run" not in skipped_counts(discover(parent / "Clinac2", settings(), {}).skipped)


def test_a_run_inside_a_folder_being_processed_is_refused_before_it_writes(tmp_path: Path) -> None:
    parent = tmp_path / "P"
    child = parent / "TrueBeam1"
    child.mkdir(parents=True)
    (parent / ".linac-qa").mkdir()
    with (
        FileLock(parent / ".linac-qa" / "run.lock"),  # a run of P in progress
        pytest.raises(DirectoryBusy) as err,
        directory_lock(child),
    ):
        pass
    assert f"another run is processing {parent}, which includes {child}" in str(err.value)
    assert not (child / ".linac-qa").exists()
    with directory_lock(child):  # P's run has ended
        assert (child / ".linac-qa" / "run.lock").exists()


# --------------------------------------------------------------------------- output directory


def out_config(tmp_path: Path, output: str) -> Path:
    cfg = tmp_path / "tb1.yml"
    cfg.write_text(f"general:\n  settle-seconds: 0\n  output-directory: {output}\n", encoding="utf-8")
    return cfg


@pytest.mark.parametrize(
    "output",
    ["{data}/.linac-qa", "{data}/.linac-qa/reports", "{data}/.linac-qa/tmp", "/", "{base}", "{base}/.."],
)
def test_an_output_directory_that_would_lose_or_walk_everything_is_refused(
    tmp_path: Path, output: str
) -> None:
    data = tmp_path / "qa" / "TrueBeam1"
    data.mkdir(parents=True)
    cfg = out_config(tmp_path, output.format(data=data, base=tmp_path / "qa"))
    with pytest.raises(ConfigError) as err:
        resolve_directory(data, load_settings(cfg))
    message = str(err.value)
    assert message.startswith(f"{cfg}: general.output-directory: "), message
    assert "allowed: a folder outside" in message and str(data / ".linac-qa") in message


@pytest.mark.parametrize("output", ["{base}/reports/TB1", "{data}/reports", "{base}/TrueBeam1-reports"])
def test_an_output_directory_beside_or_below_the_data_is_accepted(tmp_path: Path, output: str) -> None:
    data = tmp_path / "qa" / "TrueBeam1"
    data.mkdir(parents=True)
    settings = load_settings(out_config(tmp_path, output.format(data=data, base=tmp_path / "qa")))
    assert resolve_directory(data, settings) == data


def test_the_command_line_refuses_an_output_directory_in_the_state_folder(tmp_path: Path) -> None:
    data = tmp_path / "qa"
    synthetic.starshot(data / "RI.QA.Starshot_A.dcm")
    cfg = out_config(tmp_path, str(data / ".linac-qa" / "reports"))
    run = run_cli(data, "--config", cfg, "--json")
    assert run.code == 2, run.stderr[-2000:]
    assert f"{cfg}: general.output-directory: " in run.stderr and run.stdout == ""
    assert not (data / ".linac-qa").exists()  # refused before any work
