"""Varian MPC results (issue 18, acceptance 3): a TrueBeam morning's folders give one result per
check with every row as a metric, Varian's verdict, the serial mapped to its machine; a failing row
fails its check and is named; the next run reads nothing again."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from linac_qa.analyses.mpc import decode, judge_rows, metric_key, parse_results
from linac_qa.config import ConfigError, load_settings
from linac_qa.execution.runner import run_job
from linac_qa.grouping.plan import plan_directory
from linac_qa.model import Status
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run
from linac_qa.testing.synthetic_mpc import GEOMETRY_ROWS, check_folder, truebeam_morning

CONFIG = "general:\n  settle-seconds: 0\nmpc:\n  machines:\n    1234: TrueBeam1\n"
MORNING = dt.datetime(2025, 11, 28, 7, 10)
FAILING = "BeamGroup/BeamOutputChange [%]"


def test_a_truebeam_morning_gives_one_result_per_check_judged_by_varian(tmp_path: Path) -> None:
    truebeam_morning(tmp_path / "TDS", MORNING, fail={FAILING: 2.41})
    settings = load_settings(text=CONFIG)
    planned = plan_directory(tmp_path, settings, {})
    acquisitions = planned.plan.acquisitions
    assert sorted(a.variant["check"] for a in acquisitions) == [
        "BeamCheckTemplate10x",
        "BeamCheckTemplate6x",
        "BeamCheckTemplate6xFFF",
        "GeometryCheckTemplate6xMVkV",
    ]
    # One morning's session: the same session, the serial mapped to its machine.
    assert {a.variant["session"] for a in acquisitions} == {"MPC TrueBeam1 2025-11-28 07:10"}
    assert {a.machine for a in acquisitions} == {"TrueBeam1"}
    # The images beside each Results.csv: accounted for, one ignored result per check folder.
    parts = planned.plan.decided
    assert len(parts) == 4 and all(r.status is Status.IGNORED and len(r.files) == 2 for r in parts)

    run = Run(tmp_path, settings, Ledger.open(tmp_path))
    todo = run.start(planned)
    results = {}
    for acq in todo:
        job = run.job(acq)
        outcome = run_job(job)
        run.record_outcome(job, outcome)
        results[acq.variant["check"]] = outcome.result
    geometry = results["GeometryCheckTemplate6xMVkV"]
    assert geometry.status is Status.PASSED and geometry.judged and geometry.model is None
    assert geometry.unit == "TrueBeam1"
    assert len(geometry.metrics) == len(GEOMETRY_ROWS)  # every row, not the per-leaf ones
    assert geometry.metrics["beamgroup_beamoutputchange_pct"] == 0.35
    assert geometry.metrics["gantrygroup_gantryabsolute_deg"] == -0.09
    assert all(isinstance(v, float) for v in geometry.metrics.values())  # numbers the record trends
    document = json.loads((tmp_path / next(o for o in geometry.outputs if o.endswith(".json"))).read_text())
    rows = document["pylinac"]["rows"]
    assert len(rows) == len(GEOMETRY_ROWS) + 240 and sum(r["per_leaf"] for r in rows) == 240
    assert rows[0] == {
        "name": "IsoCenterGroup/IsoCenterSize [mm]",
        "key": "isocentergroup_isocentersize_mm",
        "value": 0.3,
        "unit": "mm",
        "threshold": 0.5,
        "evaluation": "Pass",
        "per_leaf": False,
    }
    failed = results["BeamCheckTemplate10x"]
    assert failed.status is Status.FAILED
    assert failed.reason == "BeamGroup/BeamOutputChange [%]: 2.41 % (threshold 2 %) Fail"
    assert failed.metrics["beamgroup_beamoutputchange_pct"] == 2.41
    assert results["BeamCheckTemplate6x"].status is Status.PASSED
    assert results["BeamCheckTemplate6x"].reason == "all 3 evaluated rows pass Varian's thresholds"
    assert {Path(o).suffix for o in failed.outputs} == {".pdf", ".png", ".txt", ".json"}
    assert all(o.startswith("TDS/NDS-WKS-SN1234-") for o in failed.outputs)  # beside the folder

    again = plan_directory(tmp_path, settings, Ledger.open(tmp_path).known())
    assert again.plan.acquisitions == [] and again.plan.decided == []


def test_serials_not_mapped_and_sessions_still_arriving(tmp_path: Path) -> None:
    check_folder(tmp_path / "TDS", "BeamCheckTemplate6x", MORNING, serial="9999", images=0)
    settings = load_settings(text=CONFIG)
    [error] = plan_directory(tmp_path, settings, {}).plan.decided
    assert error.status is Status.ERROR
    assert error.reason == "MPC serial 9999 is not in mpc.machines (serials there: 1234)"
    # A check written a minute ago: its session may still grow, so it waits for a later run.
    recent = dt.datetime.fromtimestamp(time.time() - 60)
    check_folder(tmp_path / "TDS2", "BeamCheckTemplate6x", recent, images=0)
    planned = plan_directory(tmp_path / "TDS2", settings, {})
    assert planned.plan.acquisitions == [] and planned.skipped()["waiting-for-partner"] == 1


def test_halcyon_rows_without_thresholds_are_measured_not_judged() -> None:
    text = "Name [Unit], Value, Threshold, Evaluation Result\nBeamGroup/BeamMu1GainChange [%], 0.14, , \n"
    verdict = judge_rows(parse_results(text)[1])
    assert verdict.status is Status.PASSED and not verdict.judged
    assert verdict.reason == "not judged: none of the 1 rows has Varian's evaluation"
    assert verdict.metrics == {"beamgroup_beammu1gainchange_pct": 0.14}
    mixed = text + "BeamGroup/BeamOutputChange [%], 0.3, 2, Pass\n"
    assert judge_rows(parse_results(mixed)[1]).reason == (
        "all 1 evaluated rows pass Varian's thresholds; 1 row(s) without Varian's evaluation (not judged)"
    )


def test_results_are_read_by_their_column_names_in_any_encoding() -> None:
    # Another column order, an extra column; the degree sign in UTF-8 after a BOM, or in the
    # Windows code page.
    head = "Name [Unit],Evaluation Result,Value,Threshold,Date\r\n"
    raw = head + "GantryGroup/GantryAbsolute [°],Fail,0.4,0.3,x\r\n"
    assert decode(raw.encode("utf-8-sig")) == decode(raw.encode("cp1252")) == raw
    [row] = parse_results(decode(raw.encode("cp1252")))[1]
    assert (row.key, row.value, row.threshold, row.evaluation) == (
        "gantrygroup_gantryabsolute_deg",
        0.4,
        0.3,
        "Fail",
    )
    with pytest.raises(ValueError, match=r"not an MPC Results\.csv"):
        parse_results("Date,Value\n1,2\n")
    assert (
        metric_key("CollimationGroup/MLCGroup/MLCMaxOffsetA", "mm")
        == "collimationgroup_mlcgroup_mlcmaxoffseta_mm"
    )


def test_config_checks_the_session_window() -> None:
    with pytest.raises(ConfigError, match=r"mpc\.session-minutes"):
        load_settings(text="mpc:\n  session-minutes: 0\n")
