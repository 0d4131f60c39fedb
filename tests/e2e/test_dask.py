"""The optional Dask path (issue 7), acceptance: the command line run twice on copies of one corpus,
once with local worker processes and once on a `LocalCluster` of spawned worker processes on
127.0.0.1, gives the same verdicts. The pool itself: tests/unit/test_dask.py."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from distributed import LocalCluster

from linac_qa.testing import synthetic
from tests.conftest import register_inputs, run_cli


def build_corpus(root: Path) -> None:
    """A small corpus that still has every kind of verdict: images that pass and fail, a zipped
    Winston-Lutz session (extracted in the run's scratch folder, on the shared folder), an error
    decided in the worker, one decided before it, and a file that is not QA. (The whole demo drop,
    `python -m linac_qa.testing.demo`, gives the same verdicts both ways too, but takes over a minute
    a run.)"""
    s = synthetic
    s.starshot(root / "RI.QA.Starshot_TrueBeam1_A.dcm", wobble_mm=0.1)
    s.starshot(root / "RI.QA.Starshot_TrueBeam1_B.dcm", wobble_mm=0.9, seed=1)
    s.light_rad(root / "RI.QA.LightRad_FC2_TrueBeam1_10x10_A.dcm", offset_mm=(0.4, -0.3))
    s.light_rad(root / "RI.QA.LightRad_FC2_TrueBeam1_10x10_B.dcm", offset_mm=(2.5, -3.0), seed=1)
    s.winston_lutz_zip(
        root / "WL_TrueBeam1_B.zip", s.WinstonLutzSession(offset_mm=(1.5, 0.5, 0.3), imager="AS500", seed=1)
    )
    wl = s.winston_lutz_set(root / "wl", s.WinstonLutzSession(imager="AS500", seed=2))
    shutil.move(wl[0], root / "RI.QA.PF_TrueBeam1_misnamed.dcm")  # a WL image named like a picket fence
    shutil.rmtree(root / "wl")
    s.zero_bytes(root / "RI.QA.Starshot_empty.dcm")
    s.png_image(root / "team photo.png")


def verdicts(summary: dict[str, Any]) -> dict[tuple[str, ...], tuple[str | None, str, str]]:
    return {tuple(r["files"]): (r["analysis"], r["status"], r["reason"]) for r in summary["results"]}


@pytest.mark.e2e
def test_the_dask_path_gives_the_same_verdicts_as_the_local_one(
    cluster: LocalCluster, prefect_api: str, tmp_path: Path
) -> None:
    local, remote = tmp_path / "local" / "QA", tmp_path / "dask" / "QA"
    build_corpus(local)
    shutil.copytree(local, remote)
    register_inputs(local)
    register_inputs(remote)
    plain = tmp_path / "local.yml"
    plain.write_text("general:\n  settle-seconds: 0\n", encoding="utf-8")
    on_dask = tmp_path / "dask.yml"
    on_dask.write_text(
        f"general:\n  settle-seconds: 0\n  executor:\n    dask-address: {cluster.scheduler_address}\n",
        encoding="utf-8",
    )

    # Both at once: each spends much of its time starting up and talking to Prefect.
    started = time.monotonic()
    with ThreadPoolExecutor(2) as both:
        runs = [
            both.submit(run_cli, local, "--config", plain, "--json", api=prefect_api),
            both.submit(run_cli, remote, "--config", on_dask, "--json", api=prefect_api),
        ]
        first, second = (r.result() for r in runs)
    print(f"TIMING both {time.monotonic() - started:.1f} s")

    assert first.code == 1, first.stderr[-3000:]  # QA failures present, the run itself fine
    assert second.code == 1, second.stderr[-3000:]
    ours, theirs = verdicts(first.summary), verdicts(second.summary)
    print(f"\n{'files':<48} {'analysis':<15} {'local':<8} {'dask':<8} reason")
    for files in sorted(ours):
        print(f"{files[0][:48]:<48} {ours[files][0] or '-':<15} {ours[files][1]:<8} "
              f"{theirs.get(files, (None, '?'))[1]:<8} {ours[files][2][:70]}")  # fmt: skip
    assert theirs == ours
    statuses = {status for _, status, _ in ours.values()}
    assert statuses == {"passed", "failed", "error", "ignored"}
    for root, summary in ((local, first.summary), (remote, second.summary)):
        for r in summary["results"]:
            if r["status"] in ("passed", "failed"):
                assert sorted(Path(o).suffix for o in r["outputs"]) == [".json", ".pdf", ".png", ".txt"]
                assert all((root / o).stat().st_size > 0 for o in r["outputs"]), r
