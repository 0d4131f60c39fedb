"""Issue 18 end to end: images received over DICOM and a morning's MPC results, then one
`process-directory` run over the folder (real pynetdicom on both ends, a real Prefect server). That a
second run reads nothing again is tested on the plain functions (tests/unit/analyses/test_mpc.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from linac_qa.intake.dicom_receiver import SUCCESS, DicomReceiver, ReceiverSpec
from linac_qa.testing.network import ct_series, rt_images, send
from linac_qa.testing.synthetic_mpc import truebeam_morning
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

CONFIG = "general:\n  settle-seconds: 0\n  unit: TrueBeam1\nmpc:\n  machines:\n    1234: TrueBeam1\n"


def test_received_images_and_mpc_results_are_analysed_by_the_next_run(
    tmp_path: Path, prefect_api: str
) -> None:
    root = tmp_path / "qa"
    receiver = DicomReceiver(
        ReceiverSpec("truebeam1", "LINACQA", 0, root, frozenset({"EPIDWS"}), listen="127.0.0.1")
    )
    receiver.start()
    try:
        rt, ct = rt_images(3), ct_series(80)
        for batch in (rt, ct, rt):
            assert set(send(batch, receiver.port, called="LINACQA", calling="EPIDWS")) == {SUCCESS}
    finally:
        receiver.stop()
    truebeam_morning(
        root / "TDS", dt.datetime(2025, 11, 28, 7, 10), fail={"BeamGroup/BeamOutputChange [%]": 2.41}
    )
    config = tmp_path / "config.yml"
    config.write_text(CONFIG, encoding="utf-8")

    first = run_cli(root, "--json", "--config", config, api=prefect_api)
    assert first.code == 1, first.stderr[-2000:]  # the 10X beam check fails (and the CT cannot be analysed)
    results = json.loads(first.stdout)["results"]
    received = [r for r in results if r["files"][0].startswith("received/")]
    ct_results = [r for r in received if r["analysis"] == "cbct"]
    assert [len(r["files"]) for r in ct_results] == [80]  # the CT series: one acquisition
    assert sum(len(r["files"]) for r in received) == 83  # each received file exactly once
    mpc = {
        r["files"][0].split("/")[1].rsplit("-", 1)[1]: r
        for r in results
        if r["analysis"] == "mpc" and r["model"] is None and r["status"] != "ignored"
    }
    assert {k: v["status"] for k, v in mpc.items()} == {
        "GeometryCheckTemplate6xMVkV": "passed",
        "BeamCheckTemplate6x": "passed",
        "BeamCheckTemplate10x": "failed",
        "BeamCheckTemplate6xFFF": "passed",
    }
    assert "BeamOutputChange" in mpc["BeamCheckTemplate10x"]["reason"]
    assert all(r["unit"] == "TrueBeam1" for r in mpc.values())
