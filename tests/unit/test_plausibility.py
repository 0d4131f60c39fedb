"""Silent false passes (issue 12, point 9), with real pylinac analyses of small generated images.

- Every configured criterion of every analysis decides the verdict: a limit the fixture must fail
  fails it, naming the criterion; a value pylinac did not give makes an error naming the config key.
- Plausibility before verdict: an analysis that did not find what it must (too few pickets or
  spokes, no phantom features, a DMLC image without segments, a log without MLC data, NaN numbers)
  is an `error` "implausible: ...", never a pass.
- A result on which no criterion was judged is "not judged", never counted or shown as a pass.

Criteria are judged on one real analysis per fixture with settings that vary (judge() is cheap);
what pylinac decides itself (its tolerances) is analysed again with the impossible tolerance. The
plausibility rules go through the worker job (`run_job`: load, analyse, judge, outputs) where a
generated image shows the fault; NaN values, which no generated image makes pylinac report, are
injected into a copy of a real analysis's `results_data()`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flows.cli import _closing_line
from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import AnalysisType, Inputs
from linac_qa.analyses.cbct import CTCriteria, _catphan_only, _judge_by_pylinac_flags
from linac_qa.analyses.criteria import Flag, Implausible, Limit, Verdict, judge
from linac_qa.config import Settings, load_settings
from linac_qa.execution.runner import run_job
from linac_qa.grouping.plan import plan_directory
from linac_qa.model import Acquisition, AnalysisResult, Status
from linac_qa.records.ledger import Ledger
from linac_qa.records.reporting import verdict_line
from linac_qa.records.summary import RunSummary
from linac_qa.run import Run
from linac_qa.testing import (
    synthetic,
    synthetic_ct,
    synthetic_logs,
    synthetic_mpc,
    synthetic_planar,
    synthetic_vmat,
)

QUICK = "general:\n  settle-seconds: 0\n"


def settings(config: str = "") -> Settings:
    return load_settings(text=QUICK + config)


def acquisitions(root: Path, config: str = "") -> list[Acquisition]:
    s = settings(config)
    return plan_directory(root, s, {}).plan.acquisitions


def through_worker(root: Path, config: str = "") -> AnalysisResult:
    """The one acquisition under `root`, classified, planned and analysed as a run does it."""
    s = settings(config)
    [acq] = acquisitions(root, config)
    return run_job(Run(root, s, Ledger.open(root)).job(acq)).result


@dataclass
class Analysed:
    """One real pylinac analysis, judged under any config (its `analysis:` must match `config`)."""

    analysis: AnalysisType
    obj: Any
    acq: Acquisition

    def judge(self, config: str = "") -> Verdict:
        return self.analysis.judge(self.obj, self.acq, settings(config).section(self.acq.analysis))


def analyse(root: Path, config: str = "") -> Analysed:
    [acq] = acquisitions(root, config)
    analysis = REGISTRY[acq.analysis]
    section = settings(config).section(acq.analysis)
    obj = analysis.load(Inputs(paths=[root / f for f in acq.files]), acq, section)
    analysis.run(obj, acq, section)
    return Analysed(analysis, obj, acq)


class Recorded:
    """A real analysis whose `results_data()` answers a changed copy: what pylinac would report if
    it could not measure something (None, NaN), which no generated image makes it do."""

    def __init__(self, analysed: Any, **changes: Any) -> None:
        self._analysed = analysed
        self._data = analysed.results_data().model_copy(update=changes)

    def results_data(self) -> Any:
        return self._data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._analysed, name)


def judged_with(a: Analysed, changes: dict[str, Any], config: str = "") -> Verdict:
    analysis = a.analysis
    return analysis.judge(Recorded(a.obj, **changes), a.acq, settings(config).section(a.acq.analysis))


def implausible(a: Analysed, changes: dict[str, Any], config: str = "") -> str:
    with pytest.raises(Implausible) as caught:
        judged_with(a, changes, config)
    return str(caught.value)


def assert_fails(verdict: Verdict, *named: str) -> None:
    assert verdict.status is Status.FAILED and verdict.judged, verdict
    for text in named:
        assert text in verdict.reason, (text, verdict.reason)


def assert_implausible(result: AnalysisResult, *named: str) -> None:
    assert result.status is Status.ERROR and result.reason.startswith("implausible: "), result
    assert result.outputs == [] and not result.judged
    for text in named:
        assert text in result.reason, (text, result.reason)


# --------------------------------------------------------------------------- the rules themselves


def test_a_limit_without_a_value_is_an_error_naming_its_key() -> None:
    for value in (None, math.nan, math.inf):
        verdict = judge(
            [Limit("MTF 50 %", value, 0.5, "lp/mm", "min", key="x.criteria.min-mtf"), Limit("a", 0.1, 1.0)]
        )
        assert verdict.status is Status.ERROR and not verdict.judged
        assert verdict.reason.startswith("MTF 50 % (x.criteria.min-mtf) not judged: pylinac gave no value")
        assert "a 0.10 mm <= 1.00 mm" in verdict.reason


def test_nothing_to_judge_is_a_pass_that_says_not_judged() -> None:
    verdict = judge([], ["no criteria configured (planar-imaging.criteria)"])
    assert (verdict.status, verdict.judged) == (Status.PASSED, False)
    assert verdict.reason == "not judged: no criteria configured (planar-imaging.criteria)"
    assert judge([Flag("HU linearity", True)]).judged


def test_metrics_that_are_not_numbers_become_null() -> None:
    verdict = judge([Limit("a", 0.1, 1.0)], metrics={"x": math.nan, "y": 1.5, "z": "name"})
    assert verdict.metrics == {"x": None, "y": 1.5, "z": "name"}
    assert Implausible(["p"], {"x": math.inf}).metrics == {"x": None}


# --------------------------------------------------------------------------- picket fence


def test_picket_fence_tolerance_is_judged(tmp_path: Path) -> None:
    synthetic.picket_fence(tmp_path / "RI.QA.PF_A.dcm")
    config = "picket-fence:\n  analysis: {tolerance: 0.05, action_tolerance: 0.03}\n"
    assert_fails(analyse(tmp_path, config).judge(config), "max leaf error", "> 0.05 mm")


def test_fewer_pickets_than_expected_is_implausible(tmp_path: Path) -> None:
    synthetic.picket_fence(tmp_path / "RI.QA.PF_two.dcm", pickets=2)
    passed = through_worker(tmp_path)  # two pickets are a fence when nothing says how many
    assert passed.status is Status.PASSED and passed.judged and passed.metrics["number_of_pickets"] == 2
    shutil.rmtree(tmp_path / ".linac-qa")
    result = through_worker(tmp_path, "picket-fence:\n  expected-pickets: 10\n")
    assert_implausible(result, "2 pickets found, 10 expected (picket-fence.expected-pickets)")
    assert result.metrics["number_of_pickets"] == 2


def test_a_single_picket_is_never_a_pass(tmp_path: Path) -> None:
    synthetic.picket_fence(tmp_path / "RI.QA.PF_one.dcm", pickets=1)
    result = through_worker(tmp_path)
    assert result.status is Status.ERROR  # pylinac cannot fit one picket


# --------------------------------------------------------------------------- Winston-Lutz


@pytest.fixture(scope="module")
def wl(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    root = tmp_path_factory.mktemp("wl")
    synthetic.winston_lutz_set(root / "WL_A", synthetic.WinstonLutzSession(offset_mm=(0.2, -0.1, 0.15)))
    return analyse(root)


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("max-cax-bb-distance-mm", "max CAX-BB"),
        ("gantry-iso-size-mm", "gantry iso size"),
        ("couch-iso-size-mm", "couch iso size"),
    ],
)
def test_winston_lutz_tolerances_are_judged(wl: Analysed, key: str, label: str) -> None:
    assert wl.judge().status is Status.PASSED
    assert_fails(wl.judge(f"winston-lutz:\n  tolerances:\n    {key}: 0.01\n"), label, "> 0.01 mm")


def test_winston_lutz_collimator_iso_size_is_judged_when_the_set_varies_it(wl: Analysed) -> None:
    """The generated set has no collimator rotations (those need the AS1200 panel, 20 s to
    analyse): its recorded results are given three collimator images."""
    changes = {"num_coll_images": 3, "coll_2d_iso_diameter_mm": 0.4}
    assert "collimator iso size not judged (1 image)" in wl.judge().reason
    verdict = judged_with(wl, changes, "winston-lutz:\n  tolerances:\n    collimator-iso-size-mm: 0.2\n")
    assert_fails(verdict, "collimator iso size 0.40 mm > 0.20 mm")


def test_winston_lutz_nan_iso_size_is_an_error_naming_the_key(wl: Analysed) -> None:
    verdict = judged_with(wl, {"gantry_3d_iso_diameter_mm": math.nan})
    assert verdict.status is Status.ERROR
    assert "gantry iso size (winston-lutz.tolerances.gantry-iso-size-mm) not judged" in verdict.reason


def test_winston_lutz_image_without_a_bb_position_is_implausible(wl: Analysed) -> None:
    details = [d.model_copy() for d in wl.obj.results_data().image_details]
    details[2] = details[2].model_copy(update={"cax2bb_distance": math.nan})
    assert "no BB position in image(s) 3" in implausible(wl, {"image_details": details})


def test_winston_lutz_set_without_a_bb_is_never_a_pass(tmp_path: Path) -> None:
    synthetic.winston_lutz_set(tmp_path / "WL_noBB", synthetic.WinstonLutzSession(bb=False))
    result = through_worker(tmp_path)
    assert result.status is Status.ERROR and "find" in result.reason and result.outputs == []


# --------------------------------------------------------------------------- starshot


def test_starshot_tolerance_is_judged(tmp_path: Path) -> None:
    synthetic.starshot(tmp_path / "RI.QA.Starshot_A.dcm")
    config = "starshot:\n  analysis: {radius: 0.8, tolerance: 0.05}\n"
    assert_fails(analyse(tmp_path, config).judge(config), "wobble diameter", "> 0.05 mm")


def test_fewer_spokes_than_expected_is_implausible(tmp_path: Path) -> None:
    synthetic.starshot(tmp_path / "RI.QA.Starshot_4.dcm", n_spokes=4)
    result = through_worker(tmp_path, "starshot:\n  expected-spokes: 8\n")
    assert_implausible(result, "4 spokes found, 8 expected (starshot.expected-spokes)")


# --------------------------------------------------------------------------- field analysis


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    root = tmp_path_factory.mktemp("field")
    synthetic.open_field(root / "RI.QA.OpenField_6X.dcm")
    return analyse(root)


@pytest.mark.parametrize(
    ("key", "label"), [("symmetry-percent", "symmetry"), ("flatness-percent", "flatness")]
)
def test_field_tolerances_are_judged(field: Analysed, key: str, label: str) -> None:
    assert field.judge().status is Status.PASSED
    assert_fails(field.judge(f"field-analysis:\n  tolerances:\n    {key}: 0.01\n"), label, "> 0.01 %")


def test_field_not_measured_is_implausible(field: Analysed) -> None:
    protocol = {**field.obj.results_data().protocol_results, "symmetry_vertical": math.nan}
    assert "symmetry_vertical not measured" in implausible(field, {"protocol_results": protocol})
    assert "no field found" in implausible(field, {"field_size_vertical_mm": math.nan})


def test_field_analysis_of_an_empty_image_is_never_a_pass(tmp_path: Path) -> None:
    synthetic.open_field(tmp_path / "RI.QA.OpenField_none.dcm", field_mm=300)  # no edge on the panel
    assert through_worker(tmp_path).status is Status.ERROR


# --------------------------------------------------------------------------- light / radiation


@pytest.fixture(scope="module")
def light_rad(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    root = tmp_path_factory.mktemp("lightrad")
    synthetic.light_rad(
        root / "RI.QA.LightRad_FC2.dcm", field_mm=(101.2, 100), offset_mm=(0.8, 0.0), description="FC-2 10x10"
    )
    return analyse(root)


@pytest.mark.parametrize(
    ("key", "label"), [("field-bb-offset-mm", "field-BB offset X"), ("field-size-mm", "field X vs 100 mm")]
)
def test_light_rad_tolerances_are_judged(light_rad: Analysed, key: str, label: str) -> None:
    assert light_rad.judge().status is Status.PASSED
    assert_fails(light_rad.judge(f"light-rad:\n  tolerances:\n    {key}: 0.3\n"), label, "> 0.30 mm")


def test_light_rad_without_bbs_or_field_is_implausible(light_rad: Analysed) -> None:
    assert "BBs not located" in implausible(light_rad, {"field_bb_offset_y_mm": math.nan})
    assert "no field found" in implausible(light_rad, {"field_size_x_mm": 0.0})


# --------------------------------------------------------------------------- CBCT


@pytest.fixture(scope="module")
def catphan(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    """One CatPhan 504 scan (about 15 s to write and analyse), analysed at tolerances it fails on
    every pylinac flag."""
    root = tmp_path_factory.mktemp("ct")
    synthetic_ct.catphan504_series(root / "CBCT_CatPhan504")
    return analyse(root, TIGHT_CT)


TIGHT_CT = "cbct:\n  analysis: {hu_tolerance: 1, scaling_tolerance: 0.001, thickness_tolerance: 0.001}\n"
CT_FLAGS = ("hu-linearity", "uniformity", "geometry", "slice-thickness")


@pytest.mark.parametrize(
    ("criterion", "label"),
    [
        ("hu-linearity: true", "HU linearity FAILED"),
        ("uniformity: true", "uniformity FAILED"),
        ("geometry: true", "geometry FAILED"),
        ("slice-thickness: true", "slice thickness FAILED"),
        ("low-contrast-min-rois: 6", "low-contrast ROIs seen 3 < 6"),
        ("mtf50-min-lp-mm: 1.0", "MTF 50 % 0.26 lp/mm < 1.00 lp/mm"),
    ],
)
def test_catphan_criteria_are_judged(catphan: Analysed, criterion: str, label: str) -> None:
    """Each criterion alone (the others off) fails the scan."""
    others = "".join(f"    {flag}: false\n" for flag in CT_FLAGS if not criterion.startswith(flag))
    verdict = catphan.judge(f"{TIGHT_CT}  criteria:\n{others}    {criterion}\n")
    assert_fails(verdict, label)
    assert verdict.reason.count("FAILED") + verdict.reason.count(" < ") == 1


def test_catphan_with_every_criterion_off_is_not_judged(catphan: Analysed) -> None:
    off = "".join(f"    {flag}: false\n" for flag in CT_FLAGS)
    verdict = catphan.judge(f"{TIGHT_CT}  criteria:\n{off}")
    assert (verdict.status, verdict.judged) == (Status.PASSED, False)
    assert verdict.reason.startswith("not judged")


def test_catphan_module_not_found_or_nan_hu_is_implausible(catphan: Analysed) -> None:
    ctp404 = catphan.obj.results_data().ctp404
    rois = {**ctp404.hu_rois, "Teflon": ctp404.hu_rois["Teflon"].model_copy(update={"value": math.nan})}
    nan_hu = ctp404.model_copy(update={"hu_rois": rois})
    assert "HU not measured in Teflon (CTP404)" in implausible(catphan, {"ctp404": nan_hu}, TIGHT_CT)
    assert "uniformity module (CTP486) not located" in implausible(catphan, {"ctp486": None}, TIGHT_CT)


def test_catphan_low_contrast_and_mtf_without_their_module_are_errors(catphan: Analysed) -> None:
    config = f"{TIGHT_CT}  criteria:\n    low-contrast-min-rois: 1\n    mtf50-min-lp-mm: 0.1\n"
    verdict = judged_with(catphan, {"ctp515": None, "ctp528": None}, config)
    assert verdict.status is Status.ERROR
    assert "(cbct.criteria.low-contrast-min-rois) not judged" in verdict.reason
    assert "(cbct.criteria.mtf50-min-lp-mm) not judged" in verdict.reason


def test_catphan_only_criteria_set_for_another_model_are_errors_not_skips() -> None:
    criteria = CTCriteria(low_contrast_min_rois=3)
    verdict = _judge_by_pylinac_flags({"ctp": {"passed": True}}, _catphan_only(criteria, "ACRCT"))
    assert verdict.status is Status.ERROR
    assert (
        "(CatPhan models only, not ACRCT) (cbct.criteria.low-contrast-min-rois) not judged" in verdict.reason
    )
    unflagged = _judge_by_pylinac_flags({"no": "flags"}, _catphan_only(CTCriteria(), "ACRCT"))
    assert (unflagged.status, unflagged.judged) == (Status.PASSED, False)
    assert unflagged.reason == "not judged: pylinac reports no pass/fail for this phantom"


# --------------------------------------------------------------------------- planar imaging


@pytest.fixture(scope="module")
def qc3(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    root = tmp_path_factory.mktemp("qc3")
    synthetic_planar.qc3_image(root / "RI.QA.QC3.dcm")
    return analyse(root)


@pytest.mark.parametrize(
    ("criterion", "label"),
    [
        ("min-low-contrast-rois-seen: 5", "low-contrast ROIs seen 3 < 5"),
        ("min-mtf50-lp-mm: 2.0", "MTF 50 % 0.3"),  # pylinac gives it as a list of one-key dicts
        ("min-median-contrast: 0.5", "median contrast 0.019 < 0.500"),
        ("min-median-cnr: 100", "median CNR 5.0 < 100.0"),
    ],
)
def test_planar_criteria_are_judged(qc3: Analysed, criterion: str, label: str) -> None:
    assert_fails(qc3.judge(f"planar-imaging:\n  criteria:\n    {criterion}\n"), label)


def test_planar_mtf_that_pylinac_did_not_give_is_an_error_naming_the_key(tmp_path: Path) -> None:
    synthetic_planar.qc3_image(tmp_path / "RI.QA.QC3_nolines.dcm", line_pairs=False)
    verdict = analyse(tmp_path).judge("planar-imaging:\n  criteria:\n    min-mtf50-lp-mm: 0.2\n")
    assert verdict.status is Status.ERROR and verdict.metrics["mtf50_lp_mm"] is None
    assert "(planar-imaging.criteria.min-mtf50-lp-mm) not judged: pylinac gave no value" in verdict.reason


def test_planar_phantom_without_features_is_implausible(tmp_path: Path) -> None:
    synthetic_planar.qc3_image(tmp_path / "RI.QA.QC3_bare.dcm", line_pairs=False, low_contrast=False)
    result = through_worker(tmp_path, "planar-imaging:\n  criteria:\n    min-median-cnr: 0.01\n")
    assert_implausible(result, "no low-contrast ROI seen and no line pair resolved")
    assert result.metrics["low_contrast_rois_seen"] == 0


def test_planar_phantom_without_criteria_is_not_judged_and_never_shown_as_a_pass(tmp_path: Path) -> None:
    synthetic_planar.qc3_image(tmp_path / "RI.QA.QC3.dcm")
    result = through_worker(tmp_path)
    assert (result.status, result.judged, result.not_judged) == (Status.PASSED, False, True)
    assert result.reason == "not judged: no criteria configured (planar-imaging.criteria)"
    assert result.metrics["mtf50_lp_mm"] == pytest.approx(0.334, abs=0.01)
    document = json.loads((tmp_path / next(o for o in result.outputs if o.endswith(".json"))).read_text())
    assert document["linac-qa-flows"]["judged"] is False
    assert verdict_line(result).startswith("NOT JUDGED ")
    summary = RunSummary.model_validate(
        {
            "directory": str(tmp_path),
            "unit": None,
            "started": "2024-03-04T07:00:00",
            "finished": "2024-03-04T07:01:00",
        }
    )
    summary.results = [result]
    assert summary.headline() == "1 not judged"
    document = json.loads(summary.model_dump_json())
    assert document["results"][0]["judged"] is False
    assert _closing_line(summary).endswith(": 1 not judged; 0 skipped")  # the CLI's last line


# --------------------------------------------------------------------------- VMAT


def test_vmat_tolerance_is_judged(tmp_path: Path) -> None:
    synthetic_vmat.vmat_pair(tmp_path / "VMAT_A")
    config = "vmat:\n  analysis: {tolerance: 0.001}\n"
    assert_fails(analyse(tmp_path, config).judge(config), "max segment deviation", "> 0.00 %")


@pytest.mark.parametrize(
    ("dmlc", "problem"),
    [("open", "the DMLC image shows no segments"), ("none", "no dose over the segments")],
)
def test_vmat_pair_whose_dmlc_image_shows_no_segments_is_implausible(
    tmp_path: Path, dmlc: synthetic_vmat.DmlcContent, problem: str
) -> None:
    """Both pairs pass in pylinac (deviations under 0.5 %): it compares whatever it is given."""
    synthetic_vmat.vmat_pair(tmp_path / "VMAT_A", dmlc=dmlc)
    assert_implausible(through_worker(tmp_path), problem)


# --------------------------------------------------------------------------- machine logs


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    root = tmp_path_factory.mktemp("logs")
    synthetic_logs.trajectory_log(root / "QA_Plan_SW10_20240304083400.bin")
    return analyse(root)


@pytest.mark.parametrize(
    ("key", "value", "label"),
    [("gamma-pass-percent", 99.9, "gamma 1%/1mm"), ("max-mlc-rms-mm", 0.01, "max MLC RMS")],
)
def test_machine_log_tolerances_are_judged(trajectory: Analysed, key: str, value: float, label: str) -> None:
    assert trajectory.judge().status is Status.PASSED
    assert_fails(trajectory.judge(f"machine-logs:\n  tolerances:\n    {key}: {value}\n"), label)


def test_machine_log_without_mlc_data_is_implausible(tmp_path: Path) -> None:
    """A delivery held throughout: pylinac keeps no snapshot, reports a max RMS of 0 and could not
    set up the gamma. (A trajectory log without beam-on snapshots pylinac takes for an imaging log:
    ignored, as before.)"""
    synthetic_logs.dynalog_pair(tmp_path, beam_on=False)
    result = through_worker(tmp_path)
    assert_implausible(result, "no MLC data with the beam on")
    assert result.metrics == {"treatment_type": "Dynamic IMRT"}


def test_mpc_results_without_rows_are_implausible(tmp_path: Path) -> None:
    """An MPC check that was aborted writes its Results.csv header and no rows: nothing was judged,
    so it is no pass."""
    import datetime as dt

    folder = synthetic_mpc.check_folder(
        tmp_path / "TDS", "BeamCheckTemplate6x", dt.datetime(2024, 3, 4, 7, 10)
    )
    (folder / "Results.csv").write_text(synthetic_mpc.HEADER + "\r\n", encoding="utf-8")
    old = dt.datetime(2024, 3, 4, 7, 10).timestamp()
    os.utime(folder / "Results.csv", (old, old))
    assert_implausible(through_worker(tmp_path / "TDS"), "the Results.csv has no result rows")


# --------------------------------------------------------------------------- every analysis is covered


def test_every_analysis_type_has_criteria_and_plausibility_tests() -> None:
    """A new analysis type needs its own tests here."""
    covered: dict[str, Callable[..., Any]] = {
        "picket-fence": test_fewer_pickets_than_expected_is_implausible,
        "winston-lutz": test_winston_lutz_image_without_a_bb_position_is_implausible,
        "starshot": test_fewer_spokes_than_expected_is_implausible,
        "field-analysis": test_field_not_measured_is_implausible,
        "light-rad": test_light_rad_without_bbs_or_field_is_implausible,
        "cbct": test_catphan_module_not_found_or_nan_hu_is_implausible,
        "planar-imaging": test_planar_phantom_without_features_is_implausible,
        "vmat": test_vmat_pair_whose_dmlc_image_shows_no_segments_is_implausible,
        "machine-logs": test_machine_log_without_mlc_data_is_implausible,
        "mpc": test_mpc_results_without_rows_are_implausible,
    }
    assert set(covered) == set(REGISTRY)
