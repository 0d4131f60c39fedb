"""`python -m flows.process DIR` end to end: real pylinac analyses in worker processes, a real
Prefect server, the JSON contract of docs/design.md section 2, the ledger across runs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from linac_qa.history.dashboard import is_dashboard
from linac_qa.testing import synthetic
from tests.conftest import register_inputs, run_cli
from tests.prefect_runs import read_back

pytestmark = pytest.mark.e2e

# file (relative) -> (analysis, status) that a physicist expects
EXPECTED: dict[str, tuple[str | None, str]] = {
    "RI.QA.PF_TrueBeam1_A.dcm": ("picket-fence", "passed"),
    "RI.QA.PF_TrueBeam1_B.dcm": ("picket-fence", "failed"),
    "1.2.826.0.1.3680043.8.498.4242.dcm": ("picket-fence", "passed"),  # keyword only in RTImageLabel
    "WL_TrueBeam1_A/": ("winston-lutz", "passed"),
    "WL_TrueBeam1_B.zip": ("winston-lutz", "failed"),
    "RI.QA.WL_0900_G000_C000_T000.dcm": ("winston-lutz", "failed"),  # loose images of one session
    "RI.QA.Starshot_TrueBeam1_A.dcm": ("starshot", "passed"),
    "RI.QA.Starshot_TrueBeam1_B.dcm": ("starshot", "failed"),
    "Starshot film scan.tif": ("starshot", "passed"),
    "RI.QA.OpenField_6X_TrueBeam1_A.dcm": ("field-analysis", "passed"),
    "RI.QA.OpenField_6FFF_TrueBeam1_A.dcm": ("field-analysis", "passed"),
    "RI.QA.OpenField_6X_TrueBeam1_B.dcm": ("field-analysis", "failed"),
    "RI.QA.LightRad_FC2_TrueBeam1_10x10_A.dcm": ("light-rad", "passed"),
    "RI.QA.LightRad_FC2_Clinac2_10x10_B.dcm": ("light-rad", "failed"),
    "RI.QA.PF_TrueBeam1_misnamed.dcm": ("winston-lutz", "error"),  # a WL image named like a PF
    "RI.QA.Starshot_empty.dcm": ("starshot", "error"),
    "RI.QA.PF_truncated.dcm": ("picket-fence", "error"),
    "RI.QA.WL_random_bytes.dcm": ("winston-lutz", "error"),
    "team photo.png": (None, "ignored"),
    "RP.QA.plan_export.dcm": (None, "ignored"),
    "CT_small.dcm": ("cbct", "error"),  # a lone CT slice: a CT series is a phantom scan, too short
}


def build_folder(root: Path) -> None:
    s = synthetic
    s.picket_fence(root / "RI.QA.PF_TrueBeam1_A.dcm")
    s.picket_fence(root / "RI.QA.PF_TrueBeam1_B.dcm", leaf_error_mm=1.2, seed=1)
    s.picket_fence(root / "1.2.826.0.1.3680043.8.498.4242.dcm", label="PicketFence", description="", seed=2)
    s.winston_lutz_set(
        root / "WL_TrueBeam1_A", s.WinstonLutzSession(offset_mm=(0.2, -0.1, 0.15), imager="AS500")
    )
    s.winston_lutz_zip(
        root / "WL_TrueBeam1_B.zip", s.WinstonLutzSession(offset_mm=(1.5, 0.5, 0.3), imager="AS500", seed=1)
    )
    loose = s.WinstonLutzSession(
        offset_mm=(1.5, 0.5, 0.3),
        imager="AS500",
        prefix="RI.QA.WL_0900_",
        when=dt.datetime(2024, 3, 4, 9, 0),
        seed=3,
    )
    s.winston_lutz_set(root, loose)  # loose images of one session among other files
    s.starshot(root / "RI.QA.Starshot_TrueBeam1_A.dcm", wobble_mm=0.1)
    s.starshot(root / "RI.QA.Starshot_TrueBeam1_B.dcm", wobble_mm=0.9, seed=1)
    s.starshot(root / "Starshot film scan.tif", wobble_mm=0.2, film=True, seed=2)
    s.open_field(root / "RI.QA.OpenField_6X_TrueBeam1_A.dcm")
    s.open_field(root / "RI.QA.OpenField_6FFF_TrueBeam1_A.dcm", fff=True)
    s.open_field(root / "RI.QA.OpenField_6X_TrueBeam1_B.dcm", slope_x=0.12, seed=1)
    s.light_rad(root / "RI.QA.LightRad_FC2_TrueBeam1_10x10_A.dcm", offset_mm=(0.4, -0.3))
    s.light_rad(root / "RI.QA.LightRad_FC2_Clinac2_10x10_B.dcm", offset_mm=(2.5, -3.0), machine="Clinac2")
    # Another exposure like a set's image (its own UIDs: a mere copy would be that image again).
    misnamed = pydicom.dcmread(root / "WL_TrueBeam1_A" / "RI.QA.WL_G000_C000_T000.dcm")
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        setattr(misnamed, keyword, generate_uid())
    misnamed.file_meta.MediaStorageSOPInstanceUID = misnamed.SOPInstanceUID
    misnamed.save_as(root / "RI.QA.PF_TrueBeam1_misnamed.dcm")
    s.zero_bytes(root / "RI.QA.Starshot_empty.dcm")
    s.truncated_dicom(root / "RI.QA.PF_TrueBeam1_A.dcm", root / "RI.QA.PF_truncated.dcm")
    s.random_bytes(root / "RI.QA.WL_random_bytes.dcm")
    s.png_image(root / "team photo.png")
    s.rt_plan(root / "RP.QA.plan_export.dcm")
    s.ct_slice(root / "CT_small.dcm")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")


def checksums(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and ".linac-qa" not in p.parts
        and "_analysis." not in p.name
        and not is_dashboard(p.name)
    }


def result_for(summary: dict[str, Any], key: str) -> dict[str, Any]:
    if key.endswith("/"):
        found = [r for r in summary["results"] if all(f.startswith(key) for f in r["files"]) and r["files"]]
    else:
        found = [r for r in summary["results"] if key in r["files"]]
    assert len(found) == 1, (key, found)
    return found[0]


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("qa") / "TrueBeam1 QA"
    root.mkdir()
    build_folder(root)
    register_inputs(root)
    config = root.parent / "truebeam1.yml"
    config.write_text("general:\n  unit: TrueBeam1\n  settle-seconds: 0\n", encoding="utf-8")
    before = checksums(root)
    began = dt.datetime.now(dt.UTC)
    run = run_cli(root, "--config", config, "--json", api=prefect_api)
    return {"root": root, "config": config, "run": run, "before": before, "api": prefect_api, "began": began}


def test_every_file_gets_the_expected_analysis_and_verdict(qa_run: dict[str, Any]) -> None:
    run = qa_run["run"]
    assert run.code == 1, run.stderr[-3000:]  # failures present
    summary = run.summary
    assert summary["unit"] == "TrueBeam1"
    for key, (analysis, status) in EXPECTED.items():
        r = result_for(summary, key)
        assert (r["analysis"], r["status"]) == (analysis, status), (key, r["reason"])
        assert r["reason"]
    assert summary["skipped"]["hidden"] == 1
    assert set(summary["skipped"]) == {
        "done", "unsettled", "hidden", "own-output", "avoid-keywords", "window", "waiting-for-partner",
    }  # fmt: skip


def test_every_looked_at_file_is_in_exactly_one_result(qa_run: dict[str, Any]) -> None:
    listed = [f for r in qa_run["run"].summary["results"] for f in r["files"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(qa_run["before"]) - {".DS_Store"}


def test_stdout_is_exactly_one_json_document(qa_run: dict[str, Any]) -> None:
    doc, end = json.JSONDecoder().raw_decode(qa_run["run"].stdout)
    assert qa_run["run"].stdout[end:].strip() == ""
    assert {"directory", "unit", "started", "finished", "results", "skipped", "notifications"} <= set(doc)
    assert "PASS" in qa_run["run"].stderr  # the verdict lines went to standard error


def test_reasons_and_metrics_are_numbers(qa_run: dict[str, Any]) -> None:
    summary = qa_run["run"].summary
    pf = result_for(summary, "RI.QA.PF_TrueBeam1_B.dcm")
    assert (
        pf["model"] == "PicketFence" and "> 0.50 mm" in pf["reason"] and pf["metrics"]["max_error_mm"] > 0.5
    )
    wl = result_for(summary, "WL_TrueBeam1_B.zip")
    assert wl["model"] == "WinstonLutz" and "max CAX-BB" in wl["reason"] and "> 1.00 mm" in wl["reason"]
    fff = result_for(summary, "RI.QA.OpenField_6FFF_TrueBeam1_A.dcm")
    assert fff["metrics"]["fff"] is True and "flatness not judged" in fff["reason"]
    film = result_for(summary, "Starshot film scan.tif")
    assert "film" in film["reason"]
    foreign = result_for(summary, "RI.QA.LightRad_FC2_Clinac2_10x10_B.dcm")
    assert any("Clinac2" in w and "TrueBeam1" in w for w in foreign["warnings"])
    assert "field X vs 100 mm" in result_for(summary, "RI.QA.LightRad_FC2_TrueBeam1_10x10_A.dcm")["reason"]
    assert "at least 4 images" in result_for(summary, "RI.QA.PF_TrueBeam1_misnamed.dcm")["reason"]


def test_outputs_sit_next_to_the_data_with_provenance(qa_run: dict[str, Any]) -> None:
    root: Path = qa_run["root"]
    summary = qa_run["run"].summary
    for r in summary["results"]:
        if r["status"] in ("passed", "failed"):
            assert sorted(Path(o).suffix for o in r["outputs"]) == [".json", ".pdf", ".png", ".txt"]
            for o in r["outputs"]:
                assert (root / o).stat().st_size > 0, o
    assert (root / "WL_TrueBeam1_A_analysis.pdf").exists()  # a folder's outputs sit beside it
    assert (root / "WL_TrueBeam1_B_analysis.pdf").exists()
    assert (root / "RI.QA.WL_0900_20240304_0900_analysis.pdf").exists()
    doc = json.loads((root / "RI.QA.PF_TrueBeam1_A_analysis.json").read_text())
    prov = doc["linac-qa-flows"]["provenance"]
    assert (
        prov["inputs"]["sha256"]["RI.QA.PF_TrueBeam1_A.dcm"] == qa_run["before"]["RI.QA.PF_TrueBeam1_A.dcm"]
    )
    assert prov["pylinac"] and prov["linac-qa-flows"] and prov["config_hash"]
    assert doc["pylinac"]["max_error_mm"] == pytest.approx(
        doc["linac-qa-flows"]["metrics"]["max_error_mm"], abs=1e-3
    )
    assert not [p for p in root.rglob("*") if ".lqa-tmp-" in p.name]
    assert checksums(root) == qa_run["before"]  # originals untouched


def test_the_run_is_in_prefect(qa_run: dict[str, Any]) -> None:
    server = read_back(qa_run["api"], qa_run["root"], qa_run["began"])
    parent, tasks, table = server.flow_run, server.task_runs, server.artifacts["qa-results-truebeam1"]
    subflows = [r.name.rsplit(" (", 1)[0] for r in server.subflows]  # "picket-fence (3)"
    summary = qa_run["run"].summary
    assert parent.state.type.value == "COMPLETED"
    assert "QA problem" in parent.state.name
    analysed = [r for r in summary["results"] if r["model"] is not None]  # went through a worker
    assert len([t for t in tasks if t.task_key.startswith("analyse")]) == len(analysed)
    assert sorted(subflows) == sorted({r["analysis"] for r in analysed})  # one subflow per analysis type
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == len(summary["results"])


def test_second_run_reads_nothing_and_new_files_alone_are_analysed(qa_run: dict[str, Any]) -> None:
    root, config, api = qa_run["root"], qa_run["config"], qa_run["api"]
    # Proof that nothing is re-read: the originals' content is replaced by garbage of the same size
    # and mtime. Any header or pixel read would now report an error.
    victim = root / "RI.QA.PF_TrueBeam1_A.dcm"
    st = victim.stat()
    original = victim.read_bytes()
    victim.write_bytes(os.urandom(len(original)))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = run_cli(root, "--config", config, "--json", api=api)
    victim.write_bytes(original)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert again.code == 0, again.stderr[-3000:]
    assert again.summary["results"] == []
    assert again.summary["skipped"]["done"] == len(qa_run["before"]) - 1

    synthetic.starshot(root / "new" / "RI.QA.Starshot_TrueBeam1_C.dcm", wobble_mm=0.1, seed=5)
    third = run_cli(root, "--config", config, "--json", api=api)
    assert [r["files"] for r in third.summary["results"]] == [["new/RI.QA.Starshot_TrueBeam1_C.dcm"]]
    assert third.code == 0


def test_force_analyses_everything_again_and_keeps_the_previous_reports(
    tmp_path: Path, prefect_api: str
) -> None:
    """On a folder of its own, small: --force re-analyses what is done, whatever kind of result."""
    root = tmp_path / "qa"
    synthetic.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.1)
    synthetic.starshot(root / "RI.QA.Starshot_B.dcm", wobble_mm=0.9, seed=1)
    synthetic.truncated_dicom(root / "RI.QA.Starshot_A.dcm", root / "RI.QA.Starshot_truncated.dcm")
    synthetic.png_image(root / "team photo.png")
    register_inputs(root)
    config = tmp_path / "config.yml"
    config.write_text("general:\n  settle-seconds: 0\n", encoding="utf-8")
    first = run_cli(root, "--config", config, "--json", api=prefect_api)
    synthetic.starshot(root / "new" / "RI.QA.Starshot_C.dcm", wobble_mm=0.1, seed=5)
    forced = run_cli(root, "--config", config, "--json", "--force", api=prefect_api)
    assert sorted(r["status"] for r in first.summary["results"]) == ["error", "failed", "ignored", "passed"]
    assert len(forced.summary["results"]) == len(first.summary["results"]) + 1
    history = list((root / ".linac-qa" / "history").rglob("RI.QA.Starshot_A_analysis.pdf"))
    assert len(history) == 1  # the previous report was kept, not overwritten
