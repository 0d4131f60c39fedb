"""Hostile file systems (issue 8), as plain functions: links never followed, special and unreadable
files, a full disk and an unusable output location, distinct output names, the state folder, the
lock of a killed run, and config paths checked at load time. No Prefect, no worker pool."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from linac_qa.config import ConfigError, Settings, load_settings
from linac_qa.execution.runner import run_job
from linac_qa.grouping.plan import group_context, plan, plan_directory
from linac_qa.intake.classify import classify_files
from linac_qa.intake.discovery import discover
from linac_qa.model import Acquisition, Status
from linac_qa.records import outputs
from linac_qa.records.ledger import Ledger
from linac_qa.records.outputs import distinct_stems, is_temporary, temporary_name
from linac_qa.run import DirectoryBusy, Run, UsageError, directory_lock, resolve_directory
from linac_qa.testing import synthetic
from tests.conftest import ROOT

QUICK = "general:\n  settle-seconds: 0\n"


def settings(extra: str = "") -> Settings:
    return load_settings(text=QUICK + extra)


def classify(root: Path, *names: str, extra: str = "") -> dict[str, tuple[Status | None, str]]:
    return {cf.path: (cf.status, cf.reason) for cf in classify_files(root, list(names), settings(extra))}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def everything(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# --------------------------------------------------------------------------- links


def test_links_are_never_followed_and_say_why(tmp_path: Path) -> None:
    root, outside = tmp_path / "qa", tmp_path / "elsewhere"
    synthetic.picket_fence(outside / "RI.QA.PF_secret.dcm")  # would be analysed if the link were followed
    synthetic.starshot(root / "RI.QA.Starshot_A.dcm")
    (root / "RI.QA.PF_outside.dcm").symlink_to(outside / "RI.QA.PF_secret.dcm")
    (root / "PF folder").symlink_to(outside, target_is_directory=True)
    (root / "RI.QA.PF_self.dcm").symlink_to(root / "RI.QA.PF_self.dcm")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "broken.dcm").symlink_to(root / "gone.dcm")
    (root / "RI.QA.Starshot_alias.dcm").symlink_to(root / "RI.QA.Starshot_A.dcm")
    (root / "alias folder").symlink_to(root, target_is_directory=True)  # a loop through a folder

    found = discover(root, settings(), {})
    names = sorted(s.path for s in found.new)
    assert names == sorted(
        [
            "PF folder",
            "RI.QA.PF_outside.dcm",
            "RI.QA.PF_self.dcm",
            "RI.QA.Starshot_A.dcm",
            "RI.QA.Starshot_alias.dcm",
            "alias folder",
            "broken.dcm",
            "loop_a",
            "loop_b",
        ]
    )  # nothing found through a linked folder
    verdicts = classify(root, *names)
    assert verdicts.pop("RI.QA.Starshot_A.dcm")[0] is None  # the real file, to analyse
    assert {status for status, _ in verdicts.values()} == {Status.IGNORED}
    reasons = {name: reason for name, (_, reason) in verdicts.items()}
    assert reasons["RI.QA.PF_outside.dcm"] == "symbolic link to outside the directory: not followed"
    assert reasons["PF folder"] == "symbolic link to outside the directory: not followed"
    for name in ("RI.QA.PF_self.dcm", "loop_a", "loop_b", "broken.dcm"):
        assert reasons[name] == "symbolic link that is broken or loops: not followed", name
    assert "its target is analysed under its own name" in reasons["RI.QA.Starshot_alias.dcm"]
    assert "its target is analysed under its own name" in reasons["alias folder"]

    # Recording them reads nothing behind the link (the ledger keeps no hash of a target).
    ledger = Ledger.open(root)
    run = Run(root, settings(), ledger)
    run.stamps = {s.path: s for s in found.new}
    for cf in classify_files(root, names, settings()):
        if cf.status is not None:
            run.record(plan([cf], settings(), group_context(root, settings())).decided[0])
    known = ledger.known()
    assert known["RI.QA.PF_outside.dcm"].sha256 is None and known["PF folder"].sha256 is None
    again = discover(root, settings(), known)
    assert [s.path for s in again.new] == ["RI.QA.Starshot_A.dcm"]  # links are done, not re-reported


def test_a_named_pipe_is_ignored_without_being_opened(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    root.mkdir()
    os.mkfifo(root / "RI.QA.PF_pipe.dcm")  # opening it would wait forever for a writer
    done: dict[str, tuple[Status | None, str]] = {}
    worker = threading.Thread(target=lambda: done.update(classify(root, "RI.QA.PF_pipe.dcm")), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert done == {"RI.QA.PF_pipe.dcm": (Status.IGNORED, "not a regular file (a named pipe): not read")}
    run = Run(root, settings(), Ledger.open(root))
    [decided] = plan(
        classify_files(root, ["RI.QA.PF_pipe.dcm"], settings()), settings(), group_context(root, settings())
    ).decided
    recorder = threading.Thread(target=run.record, args=(decided,), daemon=True)  # hashes nothing
    recorder.start()
    recorder.join(timeout=20)
    assert not recorder.is_alive() and len(run.results) == 1


def test_an_unreadable_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, chmod 000 does not stop a read: the refusal is injected for that one file."""
    root = tmp_path / "qa"
    synthetic.picket_fence(root / "RI.QA.PF_locked.dcm")
    synthetic.starshot(root / "RI.QA.Starshot_open.dcm")
    locked = root / "RI.QA.PF_locked.dcm"
    real_open = Path.open

    def refusing_open(self: Path, *args: object, **kwargs: object) -> object:
        if self == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", refusing_open)
    verdicts = classify(root, "RI.QA.PF_locked.dcm", "RI.QA.Starshot_open.dcm")
    assert verdicts["RI.QA.PF_locked.dcm"] == (Status.ERROR, "permission denied: cannot be read")
    assert verdicts["RI.QA.Starshot_open.dcm"][0] is None  # the batch goes on


def test_an_unlistable_folder_is_an_error_not_a_silent_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "qa"
    synthetic.starshot(root / "locked" / "RI.QA.Starshot_hidden.dcm")
    synthetic.starshot(root / "RI.QA.Starshot_open.dcm")
    locked = root / "locked"
    real_scandir, real_listdir = os.scandir, os.listdir

    def refuse(real: object) -> object:
        def inner(path: object = ".") -> object:
            if Path(str(path)) == locked:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path)  # type: ignore[operator]

        return inner

    monkeypatch.setattr(os, "scandir", refuse(real_scandir))
    monkeypatch.setattr(os, "listdir", refuse(real_listdir))
    found = discover(root, settings(), {})
    assert sorted(s.path for s in found.new) == ["RI.QA.Starshot_open.dcm", "locked"]
    verdicts = classify(root, "locked")
    assert verdicts["locked"] == (
        Status.ERROR,
        "folder cannot be listed (permission denied): its files are not seen",
    )


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # UID-named files without an extension: Path.stem would give both "1.2.840.99.1".
        (["1.2.840.99.1.7", "1.2.840.99.1.8"], ["1.2.840.99.1.7", "1.2.840.99.1.8"]),
        (["PF.dcm", "PF.tif"], ["PF.dcm", "PF.tif"]),
        (["PF.DCM", "pf.tif"], ["PF.DCM", "pf.tif"]),  # one file on a Windows or macOS share
        (["a/PF.dcm", "b/PF.dcm"], ["a/PF", "b/PF"]),  # different folders: already distinct
        (["Starshot ünï Ω.dcm", "no extension"], ["Starshot ünï Ω", "no extension"]),
    ],
)
def test_output_names_are_distinct(tmp_path: Path, names: list[str], expected: list[str]) -> None:
    acqs = [
        Acquisition(
            analysis="starshot",
            files=(n,),
            name=Path(n).name,
            output_stem=str(Path(n).with_suffix("")) if Path(n).suffix else n,
        )
        for n in names
    ]
    assert [a.output_stem for a in distinct_stems(acqs, tmp_path, "_analysis", None)] == expected


def test_a_folder_keeps_its_name_beside_a_zip_of_the_same_name(tmp_path: Path) -> None:
    folder = Acquisition(analysis="winston-lutz", files=("WL_A/1.dcm",), name="WL_A/", output_stem="WL_A")
    zipped = Acquisition(analysis="winston-lutz", files=("WL_A.zip",), name="WL_A.zip", output_stem="WL_A")
    assert [a.output_stem for a in distinct_stems([folder, zipped], tmp_path, "_analysis", None)] == [
        "WL_A",
        "WL_A.zip",
    ]


def test_an_earlier_acquisitions_outputs_are_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "PF_analysis.json").write_text(
        json.dumps(
            {
                "linac-qa-flows": {
                    "acquisition": "PF.dcm",
                    "provenance": {"inputs": {"sha256": {"PF.dcm": "x"}}},
                }
            }
        )
    )
    newcomer = Acquisition(analysis="starshot", files=("PF.tif",), name="PF.tif", output_stem="PF")
    same = Acquisition(analysis="starshot", files=("PF.dcm",), name="PF.dcm", output_stem="PF")
    assert distinct_stems([newcomer], tmp_path, "_analysis", None)[0].output_stem == "PF.tif"
    assert distinct_stems([same], tmp_path, "_analysis", None)[0].output_stem == "PF"  # its own: re-analysed


def test_only_our_own_temporaries_are_taken_for_temporaries() -> None:
    assert is_temporary(temporary_name(Path("/x/RI.QA.PF_A_analysis.pdf")).name)
    for name in (".notes.lqa-tmp-draft", "lqa-tmp-12345678.pdf", ".x.lqa-tmp-1234567.pdf", ".DS_Store"):
        assert not is_temporary(name), name


# --------------------------------------------------------------------------- state folder and lock


@pytest.mark.parametrize(
    "planted", [".linac-qa", ".linac-qa/run.lock", ".linac-qa/ledger.sqlite", ".linac-qa/tmp"]
)
def test_a_link_planted_in_the_state_folder_stops_the_run_before_any_write(
    tmp_path: Path, planted: str
) -> None:
    root, victim = tmp_path / "qa", tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    (victim / "thesis.docx").write_bytes(b"years of work")
    (root / ".linac-qa").mkdir(exist_ok=planted != ".linac-qa")
    if planted == ".linac-qa":
        (root / ".linac-qa").rmdir()
        (root / planted).symlink_to(victim, target_is_directory=True)
    else:
        (root / planted).symlink_to(victim / "thesis.docx")
    with pytest.raises(UsageError, match="symbolic link"):
        resolve_directory(root, settings())
    assert (victim / "thesis.docx").read_bytes() == b"years of work"
    assert everything(victim) == {"thesis.docx"}


HOLDER = """
import sys, time
from pathlib import Path
from linac_qa.run import directory_lock
with directory_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_the_lock_of_a_killed_run_is_released(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    root.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(DirectoryBusy, match="another run is processing"), directory_lock(root):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
    with directory_lock(root):  # the OS released it with the process: no stale lock to clear
        pass


POOL_PARENT = """
import multiprocessing, os, time
from pebble import ProcessPool
from linac_qa.execution.worker_start import init_worker
if __name__ == "__main__":
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPool(max_workers=1, initializer=init_worker, initargs=(os.getpid(),), context=spawn)
    print(pool.schedule(os.getpid).result(), flush=True)
    pool.schedule(time.sleep, args=(120,))  # an analysis that takes long
    time.sleep(600)
"""


def test_a_busy_worker_exits_when_its_run_is_killed(tmp_path: Path) -> None:
    """pebble alone leaves a busy worker running until its task ends: it would go on writing outputs
    nobody records, perhaps while the next run analyses the same files."""
    script = tmp_path / "parent.py"
    script.write_text(POOL_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        assert parent.stdout is not None
        worker = psutil.Process(int(parent.stdout.readline()))
        time.sleep(1)  # the worker is now asleep in its task
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        gone, _ = psutil.wait_procs([worker], timeout=5)
        assert gone == [worker]
    finally:
        for proc in (parent, worker):
            with contextlib.suppress(Exception):
                proc.kill()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- outputs cannot be written


def one_starshot(tmp_path: Path, config: Settings) -> tuple[Path, Run, Acquisition]:
    root = tmp_path / "qa"
    synthetic.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.1)
    run = Run(root, config, Ledger.open(root))
    [acq] = run.start(plan_directory(root, config, {}))  # as the flow does
    return root, run, acq


def ledger_rows(root: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str, str | None]]]:
    with sqlite3.connect(root / ".linac-qa" / "ledger.sqlite") as db:
        results = db.execute("SELECT status, reason FROM results").fetchall()
        files = db.execute("SELECT path, status, sha256 FROM files").fetchall()
    return results, files


def assert_clean_error(root: Path, run: Run, original: str, expected: str) -> None:
    [result] = run.results
    assert result.status is Status.ERROR and result.outputs == []
    assert result.reason.startswith("OSError: outputs could not be written (passed: wobble diameter"), (
        result.reason
    )
    assert expected in result.reason
    assert sha(root / "RI.QA.Starshot_A.dcm") == original
    results, files = ledger_rows(root)
    assert results == [("error", result.reason)]
    assert files == [("RI.QA.Starshot_A.dcm", "error", original)]  # consistent: the file, its error
    leftovers = [p for p in everything(root) if not p.startswith(".linac-qa")]
    assert leftovers == ["RI.QA.Starshot_A.dcm"]  # no output, no temporary
    # Not retried under the same config and release: only on request (the location may be fixed
    # without a config change), or once the config changed (a new output location, say).
    assert discover(root, run.settings, run.ledger.known()).new == []
    assert [s.path for s in discover(root, run.settings, run.ledger.known(), retry_errors=True).new] == [
        "RI.QA.Starshot_A.dcm"
    ]
    assert "--retry-errors" in result.reason


def test_a_full_disk_is_a_clear_error_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, run, acq = one_starshot(tmp_path, settings())
    original = sha(root / "RI.QA.Starshot_A.dcm")

    def full(path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs, "_fsync", full)  # the first flush of the outputs finds the disk full
    job = run.job(acq)
    run.record_outcome(job, run_job(job))
    assert_clean_error(root, run, original, "[Errno 28] No space left on device")


def test_an_output_location_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    """A share remounted read-only, or a file where the output folder should be (as root,
    permissions do not stop a write; a folder under a file fails for everyone)."""
    blocker = tmp_path / "reports"
    blocker.write_text("a file, not a folder")
    base = settings()
    config = base.model_copy(
        update={"general": base.general.model_copy(update={"output_directory": blocker / "TB1"})}
    )
    root, run, acq = one_starshot(tmp_path, config)
    original = sha(root / "RI.QA.Starshot_A.dcm")
    job = run.job(acq)
    run.record_outcome(job, run_job(job))
    assert_clean_error(root, run, original, "Not a directory")
    assert blocker.read_text() == "a file, not a folder"


def test_a_full_disk_at_the_ledger_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outputs were written, then the ledger's disk is full: the transaction leaves no row, and
    the next run records the result from the outputs instead of analysing it again."""
    root, run, acq = one_starshot(tmp_path, settings())
    job = run.job(acq)
    outcome = run_job(job)
    assert outcome.result.status is Status.PASSED

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(run.ledger, "record", full)
        with pytest.raises(sqlite3.OperationalError):
            run.record_outcome(job, outcome)
    assert ledger_rows(root) == ([], [])  # all or nothing
    later = Run(root, settings(), Ledger.open(root))
    later.stamps = run.stamps
    assert later.to_analyse([acq]) == []  # adopted: nothing left to analyse
    [adopted] = later.results
    assert (adopted.status, adopted.reason, adopted.outputs) == (
        Status.PASSED,
        outcome.result.reason,
        outcome.result.outputs,
    )
    assert ledger_rows(root)[0] == [("passed", outcome.result.reason)]


def test_a_changed_original_is_re_analysed_and_the_earlier_report_kept(tmp_path: Path) -> None:
    root, run, acq = one_starshot(tmp_path, settings())
    first = run_job(run.job(acq))
    assert first.result.status is Status.PASSED
    report = (root / "RI.QA.Starshot_A_analysis.pdf").read_bytes()
    synthetic.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.9, seed=7)  # re-exported, different
    second = run_job(run.job(acq))
    assert second.result.status is Status.FAILED
    kept = list((root / ".linac-qa" / "history").rglob("RI.QA.Starshot_A_analysis.pdf"))
    assert [p.read_bytes() for p in kept] == [report]


# --------------------------------------------------------------------------- config paths


def test_config_paths_are_resolved_against_the_config_files_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "configs" / "tb1.yml"
    cfg.parent.mkdir()
    cfg.write_text("general:\n  directory: ../data/TrueBeam1\n  output-directory: ../reports/TB1\n")
    general = load_settings(cfg).general
    # The share may be unmounted when the config is loaded: the run says so (exit 2) later.
    assert general.directory == tmp_path / "data" / "TrueBeam1"
    assert general.output_directory == tmp_path / "reports" / "TB1"


@pytest.mark.parametrize(
    ("general", "key", "message"),
    [
        ("  output-directory: reports/TB1\n", "general.output-directory", "cannot be created: "),
        ("  output-directory: reports\n", "general.output-directory", "is a file, not a folder"),
        ("  directory: reports\n", "general.directory", "is a file, not a folder"),
    ],
)
def test_config_paths_that_cannot_work_are_refused_at_load_time(
    tmp_path: Path, general: str, key: str, message: str
) -> None:
    (tmp_path / "reports").write_text("a file")
    cfg = tmp_path / "tb1.yml"
    cfg.write_text("general:\n  unit: TB1\n" + general)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    text = str(err.value)
    assert (
        text.startswith(f"{cfg}, line 3: {key}: ") and message in text and str(tmp_path / "reports") in text
    )


def test_a_config_without_a_file_needs_absolute_paths() -> None:
    with pytest.raises(ConfigError, match=r"general\.directory: data is a relative path"):
        load_settings(text="general:\n  directory: data\n", source="block 'tb1'")


def test_a_secret_is_refused_pointing_to_the_block(tmp_path: Path) -> None:
    cfg = tmp_path / "tb1.yml"
    cfg.write_text("general:\n  unit: TB1\nemail:\n  credentials-block: relay\n  password: hunter2\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "line 5: email.password: secrets do not belong in a config file" in str(err.value)
    assert "python -m blocks.setup email" in str(err.value) and "hunter2" not in str(err.value)
