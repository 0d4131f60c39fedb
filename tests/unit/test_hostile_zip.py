"""Hostile zips (issue 8): members that escape, symbolic links, bombs. Refused from the central
directory before anything is decompressed, by classification and by the worker; extraction goes to
a temporary folder that is always removed; nothing is ever written outside it."""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from linac_qa.config import load_settings
from linac_qa.execution.runner import Job, run_job, safe_extract_dicoms
from linac_qa.grouping.plan import group_context, plan
from linac_qa.intake.classify import classify_files
from linac_qa.intake.zipsafe import ZipLimits, ZipRefused
from linac_qa.model import Acquisition, Status
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run
from linac_qa.testing import synthetic

QUICK = "general:\n  settle-seconds: 0\n"
ESCAPING = [
    "../escape.dcm",
    "a/../../escape.dcm",
    "/tmp/escape.dcm",
    "C:\\escape.dcm",
    "C:escape.dcm",
    "\\\\server\\share\\escape.dcm",
    "..\\escape.dcm",
]


def dicom_bytes(tmp_path: Path) -> bytes:
    return synthetic.ct_slice(tmp_path / "member.dcm").read_bytes()


def write_zip(
    path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], *, deflate: bool = False
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """An extraction folder three levels down, so an escape would land in a folder we watch."""
    outer = tmp_path / "outer"
    folder = outer / "a" / "b" / "extract"
    folder.mkdir(parents=True)
    return outer, folder


@pytest.mark.parametrize("name", ESCAPING)
def test_an_escaping_member_is_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    data = dicom_bytes(tmp_path)
    archive = write_zip(tmp_path / "WL_evil.zip", [("ok.dcm", data), (name, data)])
    outer, folder = sandbox(tmp_path)
    before = tree(outer)
    with pytest.raises(ZipRefused, match="points outside the archive"):
        safe_extract_dicoms(archive, folder)
    assert tree(outer) == before  # not even the harmless member: refused before extraction
    assert not list(tmp_path.rglob("escape.dcm")) and not Path("/tmp/escape.dcm").exists()
    [cf] = classify_files(tmp_path, ["WL_evil.zip"], load_settings(text=QUICK))
    assert cf.status is Status.ERROR and "points outside the archive" in cf.reason and repr(name) in cf.reason


def test_a_symbolic_link_member_is_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("WL_G0.dcm")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = write_zip(tmp_path / "WL_link.zip", [(link, b"../../../etc/passwd")])
    outer, folder = sandbox(tmp_path)
    with pytest.raises(ZipRefused, match="is a symbolic link"):
        safe_extract_dicoms(archive, folder)
    assert tree(outer) == {"a", "a/b", "a/b/extract"}
    [cf] = classify_files(tmp_path, ["WL_link.zip"], load_settings(text=QUICK))
    assert cf.status is Status.ERROR and "symbolic link" in cf.reason


def test_a_bomb_is_refused_by_its_ratio_before_anything_is_decompressed(tmp_path: Path) -> None:
    # 64 MB of zeros behind a DICOM preamble: about 64 KB deflated, a ratio near 1000.
    bomb = bytes(128) + b"DICM" + bytes(64 << 20)
    archive = write_zip(tmp_path / "WL_bomb.zip", [("a.dcm", bomb)], deflate=True)
    del bomb
    outer, folder = sandbox(tmp_path)
    tracemalloc.start()
    with pytest.raises(ZipRefused, match=r"compression ratio \d+, above the limit of 200"):
        safe_extract_dicoms(archive, folder)
    [cf] = classify_files(tmp_path, ["WL_bomb.zip"], load_settings(text=QUICK))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20  # nothing was decompressed
    assert tree(outer) == {"a", "a/b", "a/b/extract"}
    assert cf.status is Status.ERROR and "general.zip-max-ratio" in cf.reason


def test_the_limits_come_from_the_config_and_reach_the_worker(tmp_path: Path) -> None:
    # 2 MB that do not compress: within the default limits, over a 1 MB limit.
    big = bytes(128) + b"DICM" + os.urandom(2 << 20)
    archive = write_zip(tmp_path / "WL_big.zip", [("a.dcm", big)])
    strict = load_settings(text=QUICK + "  zip-max-megabytes: 1\n  zip-max-ratio: 3\n")
    assert (strict.general.zip_max_megabytes, strict.general.zip_max_ratio) == (1, 3)
    [cf] = classify_files(tmp_path, ["WL_big.zip"], strict)
    assert (
        cf.status is Status.ERROR and "more than the limit of 1 MB (general.zip-max-megabytes)" in cf.reason
    )
    _, folder = sandbox(tmp_path)
    with pytest.raises(ZipRefused, match="more than the limit"):
        safe_extract_dicoms(archive, folder, ZipLimits.from_megabytes(1, 3))
    assert safe_extract_dicoms(archive, folder)  # the defaults (4096 MB, 200) let it through

    acq = Acquisition(
        analysis="winston-lutz",
        files=("WL_big.zip",),
        name="WL_big.zip",
        output_stem="WL_big",
        variant={"images": 4},  # what classification would have counted
    )
    job = Run(tmp_path, strict, Ledger.open(tmp_path)).job(acq)
    assert (job.zip_max_bytes, job.zip_max_ratio) == (1 << 20, 3)
    outcome = run_job(job)
    assert outcome.result.status is Status.ERROR and "more than the limit" in outcome.result.reason
    # A ratio limit can be raised for a site whose exports compress unusually well.
    lenient = load_settings(text=QUICK + "  zip-max-ratio: 5000\n")
    bomb = write_zip(
        tmp_path / "WL_zeros.zip", [("a.dcm", bytes(128) + b"DICM" + bytes(1 << 20))], deflate=True
    )
    assert "refused" not in classify_files(tmp_path, [bomb.name], lenient)[0].reason


def test_classification_reads_a_bounded_part_of_each_member(tmp_path: Path) -> None:
    """With the limits raised, a member that is mostly one giant element still costs classification
    at most a few megabytes: never the member."""
    member = bytearray(dicom_bytes(tmp_path))
    member += b"\x09\x00\x10\x00OB\x00\x00" + (48 << 20).to_bytes(4, "little") + bytes(48 << 20)
    archive = write_zip(tmp_path / "WL_giant.zip", [("a.dcm", bytes(member))], deflate=True)
    del member
    lenient = load_settings(text=QUICK + "  zip-max-ratio: 100000\n")
    tracemalloc.start()
    started = time.perf_counter()
    [cf] = classify_files(tmp_path, [archive.name], lenient)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert cf.status is not None or cf.zip_members  # a verdict, whatever it is
    assert peak < 24 << 20, peak  # the 4 MB read window and pydicom's copies of it, not 48 MB
    assert elapsed < 10


def test_many_members_are_refused(tmp_path: Path) -> None:
    from linac_qa.intake import zipsafe

    archive = write_zip(tmp_path / "WL_many.zip", [(f"{i}.dcm", b"") for i in range(30)])
    with zipfile.ZipFile(archive) as zf, pytest.raises(ZipRefused, match="30 members"):
        original, zipsafe.MAX_MEMBERS = zipsafe.MAX_MEMBERS, 20
        try:
            zipsafe.check_archive(zipsafe.file_members(zf), ZipLimits())
        finally:
            zipsafe.MAX_MEMBERS = original


def test_a_damaged_zip_is_an_error_not_a_crash(tmp_path: Path) -> None:
    good = write_zip(tmp_path / "WL_ok.zip", [("a.dcm", dicom_bytes(tmp_path))], deflate=True)
    data = bytearray(good.read_bytes())
    data[60:200] = os.urandom(140)  # inside the compressed member
    (tmp_path / "WL_bad.zip").write_bytes(bytes(data))
    [cf] = classify_files(tmp_path, ["WL_bad.zip"], load_settings(text=QUICK))
    assert cf.status is Status.ERROR and "zip" in cf.reason


def scratch_job(root: Path, name: str, analysis: str = "winston-lutz") -> tuple[Job, Path]:
    settings = load_settings(text=QUICK)
    run = Run(root, settings, Ledger.open(root))
    work = plan(classify_files(root, [name], settings), settings, group_context(root, settings))
    acq = work.acquisitions[0] if work.acquisitions else None
    if acq is None:  # classification refused it: hand the worker the zip anyway
        acq = Acquisition(
            analysis=analysis, files=(name,), name=name, output_stem=Path(name).stem, variant={"images": 4}
        )
    return run.job(acq), run.scratch


def test_the_extraction_folder_is_removed_after_success_and_after_errors(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    synthetic.winston_lutz_zip(root / "WL_TrueBeam1_A.zip", synthetic.WinstonLutzSession(imager="AS500"))
    ct = dicom_bytes(tmp_path)
    write_zip(root / "WL_not_wl.zip", [(f"G{i}.dcm", ct) for i in range(4)])  # extracts, then fails
    write_zip(root / "WL_escape.zip", [("../../x.dcm", ct)])  # refused before extraction
    before = tree(tmp_path)
    for name, status, reason in [
        ("WL_TrueBeam1_A.zip", Status.PASSED, "max CAX-BB"),
        ("WL_not_wl.zip", Status.ERROR, ""),
        ("WL_escape.zip", Status.ERROR, "points outside"),
    ]:
        job, scratch = scratch_job(root, name)
        assert job.scratch == str(scratch) and scratch.is_dir()
        outcome = run_job(job)
        assert outcome.result.status is status and reason in outcome.result.reason, outcome.result.reason
        assert list(scratch.iterdir()) == []  # the temporary folder is gone
    made = tree(tmp_path) - before
    assert all(p.startswith("qa/.linac-qa") or "_analysis." in p for p in made), made


def test_a_killed_workers_extraction_folder_is_removed_by_the_next_run(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    root.mkdir()
    leftover = root / ".linac-qa" / "tmp" / "zip-abc123" / "0000_G0.dcm"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half an image")
    run = Run(root, load_settings(text=QUICK), Ledger.open(root))
    assert run.scratch.is_dir() and list(run.scratch.iterdir()) == []
    run.summary(Counter())
    assert not run.scratch.exists()
