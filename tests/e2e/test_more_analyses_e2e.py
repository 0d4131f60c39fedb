"""CBCT phantoms, VMAT pairs, machine logs and planar phantoms through the real command line, with
real pylinac analyses and a real Prefect server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from linac_qa.testing import (
    synthetic,
    synthetic_ct,
    synthetic_logs,
    synthetic_planar,
    synthetic_profiler,
    synthetic_vmat,
)
from tests.conftest import register_inputs, run_cli

pytestmark = pytest.mark.e2e
PATIENT = "PAT123456"


def build(root: Path) -> dict[str, Any]:
    made: dict[str, Any] = {}
    # Two series in one folder, one drifted in HU; a partial series; a zipped series.
    scan = synthetic_ct.CatPhanScan
    made["ct_pass"] = synthetic_ct.catphan504_series(root / "CBCT", scan(series_key="a"))
    made["ct_fail"] = synthetic_ct.catphan504_series(
        root / "CBCT", scan(series_key="b", hu_offset=60, seed=1)
    )
    made["ct_partial"] = synthetic_ct.catphan504_series(
        root / "CBCT_partial", scan(slices=12, series_key="p")
    )
    made["ct_zip"] = synthetic_ct.catphan504_zip(
        root / "CBCT_CatPhan504_B.zip", scan(series_key="z", hu_offset=60)
    )
    made["vmat_pass"] = synthetic_vmat.vmat_pair(root / "VMAT_A", test="drgs")
    made["vmat_fail"] = synthetic_vmat.vmat_pair(root / "VMAT_B", test="drgs", fail=True, order="dmlc-first")
    logs = root / "MachineLogs"
    made["dlg_pass"] = synthetic_logs.dynalog_pair(logs, stamp="20240304083000", patient_id=PATIENT)
    made["dlg_fail"] = synthetic_logs.dynalog_pair(
        logs, stamp="20240304083200", error_mm=2.0, patient_id=PATIENT
    )
    made["tlog_pass"] = synthetic_logs.trajectory_log(
        logs / f"{PATIENT}_Plan_ARC1_20240304083400.bin", patient_id=PATIENT
    )
    made["tlog_fail"] = synthetic_logs.trajectory_log(
        logs / f"{PATIENT}_Plan_SW10_20240304083600.bin", error_mm=2.0, with_txt=False, patient_id=PATIENT
    )
    made["tlog_imaging"] = synthetic_logs.trajectory_log(
        logs / f"{PATIENT}_Plan_kV_20240304084000.bin", imaging=True, patient_id=PATIENT
    )
    made["tlog_late_txt"] = synthetic_logs.trajectory_log(  # the .txt named one second after the .bin
        logs / f"{PATIENT}_Plan_ARC2_20240304084200.bin", txt_delay_seconds=1, patient_id=PATIENT
    )
    made["prm_pass"] = synthetic_profiler.profiler_field(root / "Profiler" / "Open 20x20.prm")
    made["prm_fail"] = synthetic_profiler.profiler_field(
        root / "Profiler" / "Open tilted.prm", tilt_percent=3.0
    )
    made["planar"] = synthetic_planar.qc3_image(root / "RI.QA.QC3_TrueBeam1.dcm")
    synthetic.ct_slice(root / "CT_small.dcm")  # a lone CT slice (pydicom's test file)
    return made


def rel(root: Path, paths: Any) -> set[str]:
    paths = paths if isinstance(paths, (list, tuple)) else [paths]
    return {Path(p).relative_to(root).as_posix() for p in paths}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("more") / "QA"
    made = build(root)
    register_inputs(root)
    config = root.parent / "config.yml"
    config.write_text("general:\n  settle-seconds: 0\nplanar-imaging:\n  criteria:\n    min-median-cnr: 1\n")
    result = run_cli(root, "--config", config, "--json", api=prefect_api)
    return {"root": root, "made": made, "cli": result}


def result_with(run: dict[str, Any], key: str) -> dict[str, Any]:
    wanted = rel(run["root"], run["made"][key])
    found = [r for r in run["cli"].summary["results"] if wanted & set(r["files"])]
    assert len(found) == 1, (key, found)
    assert set(found[0]["files"]) == wanted, key  # companions sit in the files of the result that used them
    return found[0]


@pytest.mark.parametrize(
    ("key", "analysis", "model", "status"),
    [
        ("ct_pass", "cbct", "CatPhan504", "passed"),
        ("ct_fail", "cbct", "CatPhan504", "failed"),
        ("ct_partial", "cbct", "CatPhan504", "error"),
        ("ct_zip", "cbct", "CatPhan504", "failed"),
        ("vmat_pass", "vmat", "DRGS", "passed"),
        ("vmat_fail", "vmat", "DRGS", "failed"),
        ("dlg_pass", "machine-logs", "Dynalog", "passed"),
        ("dlg_fail", "machine-logs", "Dynalog", "failed"),
        ("tlog_pass", "machine-logs", "TrajectoryLog", "passed"),
        ("tlog_fail", "machine-logs", "TrajectoryLog", "failed"),
        ("tlog_imaging", "machine-logs", "TrajectoryLog", "ignored"),
        ("tlog_late_txt", "machine-logs", "TrajectoryLog", "passed"),
        ("prm_pass", "field-analysis", "DeviceFieldAnalysis", "passed"),
        ("prm_fail", "field-analysis", "DeviceFieldAnalysis", "failed"),
        ("planar", "planar-imaging", "StandardImagingQC3", "passed"),
    ],
)
def test_each_acquisition_gets_its_analysis_model_and_verdict(
    run: dict[str, Any], key: str, analysis: str, model: str, status: str
) -> None:
    assert run["cli"].code == 1, run["cli"].stderr[-3000:]
    r = result_with(run, key)
    assert (r["analysis"], r["model"], r["status"]) == (analysis, model, status), r["reason"]


def test_reasons_are_numbers(run: dict[str, Any]) -> None:
    assert "HU linearity FAILED" in result_with(run, "ct_fail")["reason"]
    assert "max segment deviation" in result_with(run, "vmat_fail")["reason"]
    dlg = result_with(run, "dlg_fail")
    assert "gamma 1%/1mm" in dlg["reason"] and dlg["metrics"]["gamma_pass_percent"] < 95
    assert "imaging log" in result_with(run, "tlog_imaging")["reason"]
    assert "symmetry" in result_with(run, "prm_fail")["reason"]
    assert "median CNR" in result_with(run, "planar")["reason"]


def test_two_series_in_one_folder_are_two_analyses_with_their_own_outputs(run: dict[str, Any]) -> None:
    a, b = result_with(run, "ct_pass"), result_with(run, "ct_fail")
    assert set(a["outputs"]).isdisjoint(b["outputs"]) and a["outputs"] and b["outputs"]
    for r in (a, b):
        assert all((run["root"] / o).exists() for o in r["outputs"])


def test_ct_slices_and_companions_never_stand_alone(run: dict[str, Any]) -> None:
    summary = run["cli"].summary
    listed = [f for r in summary["results"] for f in r["files"]]
    assert len(listed) == len(set(listed))
    singles = [r["files"][0] for r in summary["results"] if len(r["files"]) == 1]
    assert not [f for f in singles if f.endswith(".txt") or f.startswith("CBCT/")]
    assert result_with(run, "ct_pass")["model"] == "CatPhan504"
    assert next(r for r in summary["results"] if r["files"] == ["CT_small.dcm"])["status"] == "error"


def test_patient_identifiers_never_reach_output_names_or_reasons(run: dict[str, Any]) -> None:
    summary = run["cli"].summary
    for r in summary["results"]:
        assert PATIENT not in r["reason"]
        assert all(PATIENT not in o for o in r["outputs"])
    produced = [p.name for p in run["root"].rglob("*_analysis.*")]
    assert produced and not [n for n in produced if PATIENT in n]
    log_json = [p for p in (run["root"] / "MachineLogs").glob("*_analysis.json")]
    for path in log_json:
        verdict = json.loads(path.read_text())["linac-qa-flows"]
        assert PATIENT not in json.dumps([verdict["acquisition"], verdict["reason"], verdict["metrics"]])
    assert log_json
