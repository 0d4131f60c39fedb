"""Grouping without Prefect or pylinac analyses: log pairs, trajectory companions, VMAT pairs, and
what waits for a partner."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from linac_qa.config import load_settings
from linac_qa.grouping.plan import Plan, group_context, plan
from linac_qa.intake.classify import classify_files
from linac_qa.testing import synthetic, synthetic_logs, synthetic_vmat

SETTINGS = load_settings(text="general:\n  settle-seconds: 0\n")
PATIENT = "PAT123456"


def plan_of(root: Path, *, hours_later: float = 0) -> Plan:
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    ctx = group_context(root, SETTINGS, now=time.time() + hours_later * 3600)
    return plan(classify_files(root, rels, SETTINGS), SETTINGS, ctx)


def test_dynalog_halves_pair_up_in_either_order_of_discovery(tmp_path: Path) -> None:
    a, b = synthetic_logs.dynalog_pair(tmp_path / "logs", patient_id=PATIENT)
    work = plan_of(tmp_path)
    assert [acq.files for acq in work.acquisitions] == [
        (a.relative_to(tmp_path).as_posix(), b.relative_to(tmp_path).as_posix())
    ]
    acq = work.acquisitions[0]
    assert acq.analysis == "machine-logs" and acq.name.startswith("Dynalog ")
    assert PATIENT not in acq.name and PATIENT not in acq.output_stem


def test_a_lone_dynalog_half_waits_then_is_an_error_naming_what_is_missing(tmp_path: Path) -> None:
    _, b = synthetic_logs.dynalog_pair(tmp_path, patient_id=PATIENT)
    b.unlink()
    fresh = plan_of(tmp_path)
    assert fresh.waiting == 1 and not fresh.acquisitions and not fresh.decided
    late = plan_of(tmp_path, hours_later=25)
    (result,) = late.decided
    assert result.status == "error" and "without its B file" in result.reason
    assert PATIENT not in result.reason


def test_trajectory_txt_travels_with_its_bin_and_never_alone(tmp_path: Path) -> None:
    paths = synthetic_logs.trajectory_log(
        tmp_path / f"{PATIENT}_Plan_Field1_20240304083400.bin", patient_id=PATIENT
    )
    work = plan_of(tmp_path)
    assert not work.decided
    (acq,) = work.acquisitions
    assert sorted(acq.files) == sorted(p.name for p in paths)
    assert PATIENT not in acq.output_stem and PATIENT not in acq.name


@pytest.mark.parametrize("delay", [1, 2])
def test_a_txt_written_a_second_or_two_after_its_bin_goes_with_it(tmp_path: Path, delay: int) -> None:
    bin_path, txt = synthetic_logs.trajectory_log(
        tmp_path / f"{PATIENT}_Plan_Field1_20240304083459.bin", txt_delay_seconds=delay, patient_id=PATIENT
    )
    assert txt.name == f"{PATIENT}_Plan_Field1_2024030408350{delay - 1}.txt"  # across a minute
    work = plan_of(tmp_path)
    assert not work.decided and not work.waiting
    (acq,) = work.acquisitions
    assert acq.files == (bin_path.name, txt.name) and acq.variant["kind"] == "trajectory"


def test_a_txt_three_seconds_later_is_another_logs(tmp_path: Path) -> None:
    synthetic_logs.trajectory_log(tmp_path / "QA_Plan_Field1_20240304083400.bin", txt_delay_seconds=3)
    work = plan_of(tmp_path, hours_later=25)
    assert [a.files for a in work.acquisitions] == [("QA_Plan_Field1_20240304083400.bin",)]
    (lone,) = work.decided
    assert lone.files == ["QA_Plan_Field1_20240304083403.txt"] and "without its .bin" in lone.reason


def test_a_txt_whose_bin_came_in_an_earlier_run_is_ignored_saying_so(tmp_path: Path) -> None:
    synthetic_logs.trajectory_log(tmp_path / "QA_Plan_Field1_20240304083400.bin", txt_delay_seconds=1)
    txt = "QA_Plan_Field1_20240304083401.txt"
    ctx = group_context(tmp_path, SETTINGS)
    (decided,) = plan(classify_files(tmp_path, [txt], SETTINGS), SETTINGS, ctx).decided
    assert (decided.analysis, decided.status.value) == ("machine-logs", "ignored")
    assert decided.reason == "trajectory log summary (.txt); its .bin was analysed on its own earlier"


def test_a_lone_trajectory_txt_waits_for_its_bin_then_is_ignored_never_not_dicom(tmp_path: Path) -> None:
    _, txt = synthetic_logs.trajectory_log(
        tmp_path / "QA_Plan_Field1_20240304083400.bin", txt_delay_seconds=1
    )
    (tmp_path / "QA_Plan_Field1_20240304083400.bin").unlink()
    renamed = txt.rename(tmp_path / "summary of the morning beam.txt")  # recognised by its content
    fresh = plan_of(tmp_path)
    assert fresh.waiting == 1 and not fresh.acquisitions and not fresh.decided
    (late,) = plan_of(tmp_path, hours_later=25).decided
    assert late.files == [renamed.name] and late.status.value == "ignored"
    assert late.reason == "trajectory log summary (.txt) without its .bin (waited 24 h)"


def test_a_txt_whose_bin_is_still_being_written_waits(tmp_path: Path) -> None:
    synthetic_logs.trajectory_log(tmp_path / "QA_Plan_Field1_20240304083400.bin", txt_delay_seconds=1)
    ctx = group_context(tmp_path, SETTINGS, busy_folders=frozenset({"."}))
    work = plan(classify_files(tmp_path, ["QA_Plan_Field1_20240304083401.txt"], SETTINGS), SETTINGS, ctx)
    assert work.waiting == 1 and not work.decided


def test_text_that_starts_like_a_dynalog_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "QA notes.txt").write_text("A/B dynalogs are in MachineLogs\r\n")
    (tmp_path / "A_version.txt").write_text("A\r\nnot a log\r\n")
    work = plan_of(tmp_path)
    assert not work.acquisitions
    assert {r.status.value for r in work.decided} == {"ignored"}


def test_vmat_images_pair_in_either_order_and_a_lone_image_waits(tmp_path: Path) -> None:
    synthetic_vmat.vmat_pair(tmp_path / "a", test="drgs")
    synthetic_vmat.vmat_pair(tmp_path / "b", test="drmlc", order="dmlc-first")
    work = plan_of(tmp_path)
    assert sorted((acq.variant.get("test"), len(acq.files)) for acq in work.acquisitions) == [
        ("DRGS", 2),
        ("DRMLC", 2),
    ]
    lone = tmp_path / "c"
    _, dmlc = synthetic_vmat.vmat_pair(lone, test="drgs")
    dmlc.unlink()
    assert plan_of(lone).waiting == 1
    (late,) = plan_of(lone, hours_later=25).decided
    assert late.status == "error" and "open and a DMLC image" in late.reason


def test_the_beam_energy_an_acquisitions_images_share_is_its_variant(tmp_path: Path) -> None:
    """The QA record keys baselines by variant: a 10X open field is never judged against the 6X one."""
    synthetic.open_field(tmp_path / "RI.QA.Open_6X.dcm")
    synthetic.open_field(tmp_path / "RI.QA.Open_10X.dcm", label="Open 10X", description="Open field 10X")
    synthetic.open_field(tmp_path / "RI.QA.Open_6FFF.dcm", fff=True)
    energies = {acq.files[0]: acq.variant.get("energy") for acq in plan_of(tmp_path).acquisitions}
    assert energies == {
        "RI.QA.Open_6X.dcm": "6X",
        "RI.QA.Open_10X.dcm": "10X",
        "RI.QA.Open_6FFF.dcm": "6X FFF",
    }
