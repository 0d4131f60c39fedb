"""A hostile folder, processed by two runs started at the same moment (issue 8): one run analyses,
the other exits 3 with a clear message; every file ends in exactly one result; names with spaces,
non-ASCII characters and no extension work; same-named files get distinct outputs; links, pipes and
hostile zips are refused with a reason; nothing is written outside the folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from linac_qa.run import STATE_FILES
from linac_qa.testing import synthetic
from tests.conftest import ROOT, CliRun, input_checksums, register_inputs

pytestmark = pytest.mark.e2e

# 250 characters: the file system takes it, but not `<stem>_analysis.json` (or its temporary name).
LONG = "RI.QA.Starshot_" + "x" * 231 + ".dcm"
# file -> (status, words of the reason)
EXPECTED: dict[str, tuple[str, str]] = {
    "RI.QA.Starshot_A.dcm": ("passed", "wobble"),
    "a b/Starshot ünïcode Ω.dcm": ("passed", "wobble"),
    "1.2.840.99.1.7": ("passed", "wobble"),  # DICOM named by its UID: no extension
    "1.2.840.99.1.8": ("passed", "wobble"),
    "x/RI.QA.Starshot_A.dcm": ("passed", "wobble"),
    "y/RI.QA.Starshot_A.dcm": ("failed", "wobble"),
    "RI.QA.Starshot_C.dcm": ("passed", "wobble"),
    "RI.QA.Starshot_C.tif": ("passed", "wobble"),  # a film scan with the same stem
    "RI.QA.Starshot_outside.dcm": ("ignored", "symbolic link to outside the directory: not followed"),
    "Starshot folder": ("ignored", "symbolic link to outside the directory: not followed"),
    "RI.QA.Starshot_loop.dcm": ("ignored", "symbolic link that is broken or loops: not followed"),
    "RI.QA.Starshot_pipe.dcm": ("ignored", "not a regular file (a named pipe): not read"),
    "WL_escape.zip": ("error", "zip refused: member '../../escape.dcm' points outside the archive"),
    "WL_bomb.zip": ("error", "zip refused: compression ratio"),
    "RI.QA.Starshot_noise.dcm": ("error", "not DICOM, an image or a zip"),
    "RI.QA.Starshot_cut.dcm": ("error", "truncated"),
    LONG: ("error", "outputs could not be written (passed: wobble"),  # the report's name is too long
}
OUTPUT_STEMS = {  # distinct outputs for same-named inputs
    "x/RI.QA.Starshot_A.dcm": "x/RI.QA.Starshot_A",
    "y/RI.QA.Starshot_A.dcm": "y/RI.QA.Starshot_A",
    "RI.QA.Starshot_A.dcm": "RI.QA.Starshot_A",
    "RI.QA.Starshot_C.dcm": "RI.QA.Starshot_C.dcm",
    "RI.QA.Starshot_C.tif": "RI.QA.Starshot_C.tif",
    "1.2.840.99.1.7": "1.2.840.99.1.7",
    "1.2.840.99.1.8": "1.2.840.99.1.8",
    "a b/Starshot ünïcode Ω.dcm": "a b/Starshot ünïcode Ω",
}


def build(root: Path, outside: Path) -> None:
    s = synthetic
    s.starshot(outside / "RI.QA.Starshot_secret.dcm", wobble_mm=0.1, seed=9)
    s.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.1)
    s.starshot(root / "a b" / "Starshot ünïcode Ω.dcm", wobble_mm=0.1, seed=2)
    s.starshot(root / "1.2.840.99.1.7", wobble_mm=0.1, seed=3)
    s.starshot(root / "1.2.840.99.1.8", wobble_mm=0.1, seed=4)
    s.starshot(root / "x" / "RI.QA.Starshot_A.dcm", wobble_mm=0.1, seed=5)
    s.starshot(root / "y" / "RI.QA.Starshot_A.dcm", wobble_mm=0.9, seed=6)
    s.starshot(root / "RI.QA.Starshot_C.dcm", wobble_mm=0.1, seed=7)
    s.starshot(root / "RI.QA.Starshot_C.tif", wobble_mm=0.2, film=True, seed=8)
    (root / "RI.QA.Starshot_outside.dcm").symlink_to(outside / "RI.QA.Starshot_secret.dcm")
    (root / "Starshot folder").symlink_to(outside, target_is_directory=True)
    (root / "RI.QA.Starshot_loop.dcm").symlink_to(root / "RI.QA.Starshot_loop.dcm")
    os.mkfifo(root / "RI.QA.Starshot_pipe.dcm")
    member = (root / "RI.QA.Starshot_A.dcm").read_bytes()
    with zipfile.ZipFile(root / "WL_escape.zip", "w") as zf:
        zf.writestr("../../escape.dcm", member)
    with zipfile.ZipFile(root / "WL_bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("G000.dcm", bytes(128) + b"DICM" + bytes(32 << 20))
    s.random_bytes(root / "RI.QA.Starshot_noise.dcm")
    s.truncated_dicom(root / "RI.QA.Starshot_A.dcm", root / "RI.QA.Starshot_cut.dcm")
    s.starshot(root / LONG, wobble_mm=0.1, seed=10)


def start(root: Path, config: Path, api: str, tag: str) -> tuple[subprocess.Popen[str], Path]:
    out = root.parent / f"{tag}.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.process", str(root), "--config", str(config), "--json"],
        cwd=ROOT,
        env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": api},
        stdin=subprocess.DEVNULL,
        stdout=out.open("w"),
        stderr=(root.parent / f"{tag}.err").open("w"),
        text=True,
    )
    return proc, out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "QA drop Ω", base / "outside"
    build(root, outside)
    register_inputs(root)
    register_inputs(outside)
    config = base / "config.yml"
    config.write_text("general:\n  unit: TB-hostile\n  settle-seconds: 0\n", encoding="utf-8")
    outside_before = input_checksums(outside)
    base_before = {p.name for p in base.iterdir()}
    # Two runs on the same folder at the same moment: both reach the lock within a second of each
    # other, while the analyses take far longer.
    runs = [start(root, config, prefect_api, f"run{i}") for i in (1, 2)]
    deadline = time.monotonic() + 400
    for proc, _ in runs:
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    done = [CliRun(p.returncode, out.read_text(), out.with_suffix(".err").read_text()) for p, out in runs]
    return {
        "root": root,
        "base": base,
        "outside": outside,
        "runs": done,
        "outside_before": outside_before,
        "base_before": base_before,
    }


def winner(hostile: dict[str, Any]) -> CliRun:
    [run] = [r for r in hostile["runs"] if r.code != 3]
    return run


def test_a_second_run_at_the_same_time_exits_3_and_analyses_nothing(hostile: dict[str, Any]) -> None:
    codes = sorted(r.code for r in hostile["runs"])
    assert codes == [1, 3], [r.stderr[-2000:] for r in hostile["runs"]]
    [busy] = [r for r in hostile["runs"] if r.code == 3]
    assert "another run is processing" in busy.stderr and busy.stdout == ""


def test_every_hostile_file_gets_one_result_with_its_reason(hostile: dict[str, Any]) -> None:
    results = winner(hostile).summary["results"]
    listed = [f for r in results for f in r["files"]]
    assert sorted(listed) == sorted(EXPECTED)  # each file exactly once; nothing behind a link
    for r in results:
        [f] = r["files"]
        status, words = EXPECTED[f]
        assert r["status"] == status and words in r["reason"], (f, r["status"], r["reason"])


def test_names_with_spaces_unicode_or_no_extension_get_distinct_outputs(hostile: dict[str, Any]) -> None:
    root: Path = hostile["root"]
    by_file = {r["files"][0]: r for r in winner(hostile).summary["results"]}
    every_output = [o for r in by_file.values() for o in r["outputs"]]
    assert len(every_output) == len(set(every_output)) == 4 * len(OUTPUT_STEMS)
    for f, stem in OUTPUT_STEMS.items():
        expected = sorted(f"{stem}_analysis{ext}" for ext in (".json", ".pdf", ".png", ".txt"))
        assert sorted(by_file[f]["outputs"]) == expected, f
        for o in expected:
            assert (root / o).stat().st_size > 0, o


def test_nothing_is_written_outside_the_folder(hostile: dict[str, Any]) -> None:
    root, base = hostile["root"], hostile["base"]
    assert input_checksums(hostile["outside"]) == hostile["outside_before"]
    assert not list(hostile["outside"].rglob("*_analysis.*"))
    assert {p.name for p in base.iterdir()} == hostile["base_before"] | {
        "run1.out",
        "run1.err",
        "run2.out",
        "run2.err",
    }
    assert not list(base.rglob("escape.dcm"))
    assert not list(root.rglob("*.lqa-tmp-*"))
    state = {p.name for p in (root / ".linac-qa").iterdir()}  # no scratch folder left behind
    assert {"ledger.sqlite", "run.lock"} <= state <= set(STATE_FILES)
