"""Copying from `general.sources`: once, atomically, verified, never touching the source."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from linac_qa.config import ConfigError, load_settings
from linac_qa.intake.sources import copy_from_sources, scan_sources
from linac_qa.records.ledger import Ledger
from linac_qa.records.outputs import is_temporary
from tests.conftest import input_checksums

OLD = time.time() - 3600


def settings_for(tmp_path: Path, *sources: str, settle: float = 30):
    cfg = tmp_path / "config.yml"
    listed = ", ".join(sources)
    cfg.write_text(f"general:\n  sources: [{listed}]\n  settle-seconds: {settle}\n", encoding="utf-8")
    return load_settings(cfg)


def write(path: Path, data: bytes, mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def tds(tmp_path: Path) -> Path:
    """A TrueBeam's TDS trajectory-log folder, with a sub-folder per day."""
    root = tmp_path / "Treatment"
    write(root / "A_20240304.bin", b"VOSTL" + b"\x01" * 5000)
    write(root / "A_20240304.txt", b"Patient ID: QA\n")
    write(root / "2024-03-05" / "B_20240305.bin", b"VOSTL" + b"\x02" * 7000)
    write(root / ".hidden", b"not copied")
    return root


@pytest.fixture
def qa(tmp_path: Path) -> Path:
    folder = tmp_path / "qa"
    folder.mkdir()
    return folder


def copy(qa: Path, settings, now: float | None = None):
    ledger = Ledger.open(qa)
    try:
        return copy_from_sources(qa, settings, ledger, now)
    finally:
        ledger.close()


def test_settled_files_are_copied_once_with_their_content_and_time(
    tmp_path: Path, tds: Path, qa: Path
) -> None:
    settings = settings_for(tmp_path, "Treatment")  # relative to the config file's folder
    before = input_checksums(tds)
    first = copy(qa, settings)
    assert sorted(first.copied) == [
        "Treatment/2024-03-05/B_20240305.bin",
        "Treatment/A_20240304.bin",
        "Treatment/A_20240304.txt",
    ]
    assert first.warnings == []
    for rel in first.copied:
        original = tds / Path(rel).relative_to("Treatment")
        assert (qa / rel).read_bytes() == original.read_bytes()
        assert (qa / rel).stat().st_mtime_ns == original.stat().st_mtime_ns
    assert copy(qa, settings).copied == []  # idempotent
    assert input_checksums(tds) == before  # the source is only read
    assert not any(is_temporary(p.name) for p in qa.rglob("*"))


def test_a_file_still_being_written_waits(tmp_path: Path, tds: Path, qa: Path) -> None:
    write(tds / "C_now.bin", b"VOSTL...", mtime=time.time())
    settings = settings_for(tmp_path, str(tds))
    ledger = Ledger.open(qa)
    try:
        scan = scan_sources(qa, settings, ledger)
    finally:
        ledger.close()
    assert scan.unsettled == 1
    assert "Treatment/C_now.bin" not in copy(qa, settings).copied
    assert "Treatment/C_now.bin" in copy(qa, settings, now=time.time() + 60).copied


def test_a_copy_already_there_is_recognised_by_size_and_hash(tmp_path: Path, tds: Path, qa: Path) -> None:
    write(qa / "Treatment" / "A_20240304.bin", (tds / "A_20240304.bin").read_bytes())
    write(qa / "Treatment" / "A_20240304.txt", b"something else entirely")
    result = copy(qa, settings_for(tmp_path, str(tds)))
    assert "Treatment/A_20240304.bin" not in result.copied
    # A different file of the same name is never overwritten: the source's goes beside it.
    assert "Treatment/A_20240304_copy2.txt" in result.copied
    assert (qa / "Treatment" / "A_20240304.txt").read_bytes() == b"something else entirely"
    assert any("A_20240304.txt" in w and "copy2" in w for w in result.warnings)


def test_a_missing_source_is_a_warning(tmp_path: Path, tds: Path, qa: Path) -> None:
    result = copy(qa, settings_for(tmp_path, str(tds), str(tmp_path / "EPID")))
    assert len(result.copied) == 3
    assert result.warnings == [
        f"source {tmp_path / 'EPID'} not found (network share not mounted?); nothing copied from it"
    ]


def test_a_source_inside_the_directory_is_refused(tmp_path: Path, qa: Path) -> None:
    write(qa / "incoming" / "x.bin", b"x")
    result = copy(qa, settings_for(tmp_path, str(qa / "incoming")))
    assert result.copied == []
    assert "overlaps the directory" in result.warnings[0]


def test_links_in_a_source_are_not_followed(tmp_path: Path, tds: Path, qa: Path) -> None:
    outside = write(tmp_path / "secret.txt", b"outside the source")
    (tds / "link.txt").symlink_to(outside)
    (tds / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    copied = copy(qa, settings_for(tmp_path, str(tds))).copied
    assert not any("link" in rel for rel in copied)


def test_two_sources_with_one_name_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        settings_for(tmp_path, "a/Treatment", "b/Treatment")
    assert "general.sources.1" in str(err.value)
    assert "names must differ" in str(err.value)


def test_a_source_that_is_a_link_loop_says_so(tmp_path: Path, qa: Path) -> None:
    loop = tmp_path / "TDS"
    loop.symlink_to(loop)
    result = copy(qa, settings_for(tmp_path, str(loop)))
    assert result.warnings == [
        f"source {loop} is a symbolic link that loops (it leads back to itself); nothing copied from it"
    ]
