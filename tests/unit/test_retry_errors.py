"""Errors are retried when something that could fix them changed (linac-qa-flows, pylinac, the
config) or on request (`--retry-errors`), and a file that is merely still broken is not analysed
again at every run. Plain functions and the dry run; the flow itself in test_retry_errors_e2e."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from linac_qa.config import Settings, load_settings
from linac_qa.grouping.plan import plan_directory
from linac_qa.intake.discovery import Discovery
from linac_qa.model import AnalysisResult, Status
from linac_qa.records import versions
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run
from tests.conftest import run_cli

QUICK = "general:\n  settle-seconds: 0\n"
BROKEN = "RI.QA.PF_broken.dcm"  # named like a picket fence, but no DICOM: an error
NOTES = "notes.txt"  # ignored: never retried


def settings(extra: str = "") -> Settings:
    return load_settings(text=QUICK + extra)


def make(root: Path) -> Path:
    root.mkdir()
    (root / BROKEN).write_text("exported by mistake as text\n")
    (root / NOTES).write_text("the morning's notes\n")
    return root


def run_once(
    root: Path, config: Settings, *, retry_errors: bool = False
) -> tuple[Discovery, list[AnalysisResult]]:
    """Discovery, classification and recording, as the flow does them (these files need no worker)."""
    ledger = Ledger.open(root)
    try:
        run = Run(root, config, ledger)
        planned = plan_directory(root, config, ledger.known(), retry_errors=retry_errors)
        assert not run.start(planned)
        return planned.found, run.results
    finally:
        ledger.close()


def age_provenance(root: Path, column: str, value: str | None) -> None:
    """As if an earlier release had recorded every file."""
    with sqlite3.connect(root / ".linac-qa" / "ledger.sqlite") as db:
        db.execute(f"UPDATE files SET {column} = ?", (value,))


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("pylinac_version", f"pylinac 3.48.0 -> {versions.pylinac()}"),
        ("linac_qa_version", f"linac-qa-flows 3.48.0 -> {versions.linac_qa()}"),
    ],
)
def test_an_error_recorded_by_an_older_release_is_retried_once(
    tmp_path: Path, column: str, change: str
) -> None:
    root = make(tmp_path / "qa")
    _, first = run_once(root, settings())
    assert {r.files[0]: r.status for r in first} == {BROKEN: Status.ERROR, NOTES: Status.IGNORED}
    age_provenance(root, column, "3.48.0")
    found, again = run_once(root, settings())
    assert [s.path for s in found.new] == [BROKEN] and found.retried == {BROKEN: change}
    assert found.skipped["done"] == 1  # the ignored file is not looked at again
    (result,) = again
    assert result.status is Status.ERROR and result.warnings == [f"an earlier error retried: {change}"]
    # Recorded again under this release: still broken, it is not analysed at every run.
    found, third = run_once(root, settings())
    assert found.new == [] and third == [] and found.skipped["done"] == 2


def test_an_error_recorded_under_another_config_is_retried(tmp_path: Path) -> None:
    root = make(tmp_path / "qa")
    run_once(root, settings())
    changed = settings("  group-wait-hours: 12\n")
    found, again = run_once(root, changed)
    assert found.retried == {BROKEN: f"config {settings().hash} -> {changed.hash}"}
    assert [r.files for r in again] == [[BROKEN]]
    assert run_once(root, changed)[0].new == []


def test_an_error_recorded_under_the_same_release_and_config_is_not_retried(tmp_path: Path) -> None:
    root = make(tmp_path / "qa")
    run_once(root, settings())
    found, results = run_once(root, settings())
    assert found.new == [] and found.retried == {} and results == []
    assert found.skipped["done"] == 2


def test_retry_errors_retries_every_error_and_nothing_else(tmp_path: Path) -> None:
    root = make(tmp_path / "qa")
    run_once(root, settings())
    found, results = run_once(root, settings(), retry_errors=True)
    assert [s.path for s in found.new] == [BROKEN] and found.retried == {BROKEN: "--retry-errors"}
    assert [(r.files, r.warnings) for r in results] == [
        ([BROKEN], ["an earlier error retried: --retry-errors"])
    ]


def test_a_ledger_written_before_the_release_column_keeps_working(tmp_path: Path) -> None:
    """A ledger of an earlier release has no linac_qa_version column: opening it adds the column;
    its errors were recorded by an older release, so they are retried once."""
    root = make(tmp_path / "qa")
    state = root / ".linac-qa"
    state.mkdir()
    with sqlite3.connect(state / "ledger.sqlite") as db:
        db.execute(
            "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
            " sha256 TEXT, status TEXT NOT NULL, analysis TEXT, result_id INTEGER, config_hash TEXT,"
            " pylinac_version TEXT, recorded TEXT NOT NULL)"
        )
        for name, status in ((BROKEN, "error"), (NOTES, "ignored")):
            st = (root / name).stat()
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, NULL, ?, NULL, NULL, ?, ?, '2024-03-04T07:00:00+00:00')",
                (name, st.st_size, st.st_mtime_ns, status, settings().hash, versions.pylinac()),
            )
    found, results = run_once(root, settings())
    assert found.retried == {BROKEN: f"linac-qa-flows unrecorded -> {versions.linac_qa()}"}
    assert [r.files for r in results] == [[BROKEN]]
    ledger = Ledger.open(root)  # opening it again (the column is there now) changes nothing
    try:
        assert ledger.known()[BROKEN].provenance == versions.current(settings().hash)
        assert ledger.known()[NOTES].provenance == versions.Provenance(
            None, versions.pylinac(), settings().hash
        )
    finally:
        ledger.close()
    assert run_once(root, settings())[0].new == []


def test_the_command_line_takes_retry_errors_and_the_dry_run_says_what_is_retried(
    tmp_path: Path, quick_config: Path
) -> None:
    root = make(tmp_path / "qa")
    run_once(root, settings())
    dry = run_cli(root, "--config", quick_config, "--dry-run", "--json", "--retry-errors")
    assert dry.code == 0, dry.stderr[-2000:]
    (row,) = dry.summary["plan"]
    assert row["files"] == [BROKEN] and row["would"] == "error" and row["retry"] == "--retry-errors"
