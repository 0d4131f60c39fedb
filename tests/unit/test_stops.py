"""Issue 13: what a stopped, killed or interrupted run leaves for the next one (a stop of a run on
a real Prefect server: tests/e2e/test_stops.py).

- Every failed or error result reaches one e-mail, even when its run died before writing it.
- A message whose sending run died after the server took it is sent again only after a grace, with
  the same Message-ID, and the summary says it may have arrived twice.
- A file that changes between discovery and hashing is recorded with the state it was hashed in.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil
import pytest

from linac_qa.config import Settings, load_settings
from linac_qa.execution.runner import run_job
from linac_qa.grouping.plan import plan_directory
from linac_qa.intake.discovery import discover
from linac_qa.model import AnalysisResult, Status
from linac_qa.notify.outbox import Outbox, mail_outcome, queue_run_mail
from linac_qa.notify.send import deliver_pending
from linac_qa.records.ledger import Ledger
from linac_qa.run import Run
from linac_qa.testing import synthetic
from tests.conftest import ROOT
from tests.mailbox import Log, Mailbox, Received, running, smtp_to

EMAIL = (
    "email:\n  credentials-block: test-relay\n  from: qa@clinic.test\n  recipients: [physics@clinic.test]\n"
)


def email_settings(extra: str = "") -> Settings:
    return load_settings(text="general:\n  settle-seconds: 0\n  unit: TrueBeam1\n" + EMAIL + extra)


def result(status: Status, name: str) -> AnalysisResult:
    return AnalysisResult(
        analysis="starshot",
        model="Starshot",
        files=[name],
        status=status,
        reason=f"{status.value}: wobble 1.80 mm > 1.00 mm",
        unit="TrueBeam1",
    )


def bodies(ledger: Ledger) -> list[str]:
    from email import policy
    from email.parser import BytesParser

    texts = []
    for mail in Outbox(ledger).pending():
        message = BytesParser(policy=policy.default).parsebytes(mail.message or b"")
        texts.append(
            "\n".join(str(p.get_content()) for p in message.walk() if p.get_content_maintype() == "text")
        )
    return texts


# --------------------------------------------------------------------------- point 3: never in none


def test_failures_of_a_run_that_died_before_writing_its_email_go_with_the_next_run(tmp_path: Path) -> None:
    settings = email_settings()
    ledger = Ledger.open(tmp_path)
    killed = Run(tmp_path, settings, ledger)
    killed.record(result(Status.FAILED, "RI.QA.Starshot_B.dcm"))
    killed.record(result(Status.PASSED, "RI.QA.Starshot_A.dcm"))
    # ... killed here: its results are in the ledger, its e-mail was never written.

    following = Run(tmp_path, settings, ledger)
    following.record(result(Status.ERROR, "RI.QA.Starshot_C.dcm"))
    queue_run_mail(ledger, following.summary(Counter()), settings.email, following.run_id)
    texts = bodies(ledger)
    assert sum("RI.QA.Starshot_B.dcm" in t for t in texts) == 1  # the killed run's failure, once
    assert sum("RI.QA.Starshot_C.dcm" in t for t in texts) == 1
    killed_digest = next(t for t in texts if "RI.QA.Starshot_B.dcm" in t)
    assert "interrupted" in killed_digest

    third = Run(tmp_path, settings, ledger)
    queue_run_mail(ledger, third.summary(Counter()), settings.email, third.run_id)
    assert len(bodies(ledger)) == len(texts)  # nothing is reported twice


def test_results_of_a_run_with_email_off_are_not_mailed_once_it_is_on(tmp_path: Path) -> None:
    """The mark means "its e-mail was decided", not "it was mailed": turning e-mail on does not
    send the archive's failures."""
    quiet = load_settings(text="general:\n  settle-seconds: 0\n  unit: TrueBeam1\n")
    ledger = Ledger.open(tmp_path)
    run = Run(tmp_path, quiet, ledger)
    run.record(result(Status.FAILED, "RI.QA.Starshot_B.dcm"))
    queue_run_mail(ledger, run.summary(Counter()), quiet.email, run.run_id)
    settings = email_settings()
    later = Run(tmp_path, settings, ledger)
    queue_run_mail(ledger, later.summary(Counter()), settings.email, later.run_id)
    assert not any("RI.QA.Starshot_B.dcm" in text for text in bodies(ledger))


def test_results_of_a_ledger_from_before_the_mark_are_never_mailed(tmp_path: Path) -> None:
    """An upgraded ledger: its old results had their e-mail (or none) under the old rules."""
    state = tmp_path / ".linac-qa"
    state.mkdir()
    with sqlite3.connect(state / "ledger.sqlite") as db:
        db.execute(
            "CREATE TABLE results (id INTEGER PRIMARY KEY, run_id TEXT, analysis TEXT, model TEXT,"
            " status TEXT NOT NULL, reason TEXT NOT NULL, files TEXT NOT NULL, outputs TEXT NOT NULL,"
            " metrics TEXT NOT NULL, unit TEXT, acquired TEXT, recorded TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO results (run_id, analysis, status, reason, files, outputs, metrics, recorded)"
            " VALUES ('old', 'starshot', 'failed', 'x', ?, '[]', '{}', '2024-03-01T02:00:00+00:00')",
            (json.dumps(["RI.QA.Starshot_old.dcm"]),),
        )
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, summary)")
        db.execute("INSERT INTO runs VALUES ('old', '2024-03-01T02:00:00+00:00', NULL, NULL)")
    settings = email_settings()
    ledger = Ledger.open(tmp_path)
    run = Run(tmp_path, settings, ledger)
    queue_run_mail(ledger, run.summary(Counter()), settings.email, run.run_id)
    assert not any("RI.QA.Starshot_old.dcm" in text for text in bodies(ledger))


# --------------------------------------------------------------------------- point 4: sent twice


def test_a_message_taken_by_the_server_as_its_run_died_is_resent_after_the_grace(tmp_path: Path) -> None:
    """The sending run is SIGKILLed by the server itself, in the moment between keeping the message
    and answering 250: the message is delivered, the run never learnt it."""
    settings = email_settings()
    ledger = Ledger.open(tmp_path)
    summary = Run(tmp_path, settings, ledger).summary(Counter())
    summary.results = [result(Status.FAILED, "RI.QA.Starshot_B.dcm")]
    queue_run_mail(ledger, summary, settings.email, "run-1")
    sender: dict[str, subprocess.Popen[str]] = {}

    def kill_the_sender(_: Received) -> None:
        proc = sender.get("proc")
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    box = Mailbox(after_keeping=kill_the_sender)
    with running(box):
        code = (
            "import sys; from pathlib import Path\n"
            "from linac_qa.records.ledger import Ledger\n"
            "from linac_qa.notify.send import deliver_pending\n"
            "from tests.mailbox import Log, smtp_to\n"
            "deliver_pending(Ledger.open(Path(sys.argv[1])), smtp_to(int(sys.argv[2])), 'run-2', Log())\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), str(box.port)], cwd=ROOT, text=True
        )
        sender["proc"] = proc
        assert proc.wait(timeout=120) == -signal.SIGKILL
        sender.clear()
        assert len(box.received) == 1

        waiting = email_settings("  resend-unknown-after-minutes: 60\n").email
        assert deliver_pending(ledger, smtp_to(box.port), "run-3", Log(), waiting.resend_unknown_after) == 0
        [note] = mail_outcome(ledger, "run-3", waiting, summary)
        assert note.status == "pending" and "outcome unknown" in note.detail, note.detail

        due = email_settings("  resend-unknown-after-minutes: 0\n").email
        assert deliver_pending(ledger, smtp_to(box.port), "run-4", Log(), due.resend_unknown_after) == 1
        assert deliver_pending(ledger, smtp_to(box.port), "run-5", Log(), due.resend_unknown_after) == 0
    first, second = (r.message for r in box.received)
    assert second["Message-ID"] == first["Message-ID"]  # a mail client shows it once, or threads it
    assert second["Subject"] == first["Subject"]
    [note] = mail_outcome(ledger, "run-4", due, summary)
    assert note.status == "sent" and "possibly delivered twice" in note.detail, note.detail
    assert str(first["Message-ID"]) in note.detail


# --------------------------------------------------------------------------- point 8: grows after discovery


def test_a_file_that_changes_after_discovery_is_recorded_as_it_was_hashed(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    photo = synthetic.png_image(root / "team photo.png")  # not QA: hashed by the run when recorded
    star = synthetic.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.1)  # hashed by its worker
    config = load_settings(text="general:\n  settle-seconds: 0\n")
    ledger = Ledger.open(root)
    run = Run(root, config, ledger)
    planned = plan_directory(root, config, ledger.known())
    # Both grow after discovery (a copy still being written, a file re-exported), before any hash.
    with photo.open("ab") as fp:
        fp.write(b"\0" * 4096)
    synthetic.starshot(star, wobble_mm=0.1, description="Starshot collimator, exported a second time")
    [acq] = run.start(planned)  # records the photo, ignored
    job = run.job(acq)
    run.record_outcome(job, run_job(job))
    assert sorted(r.status for r in run.results) == [Status.IGNORED, Status.PASSED]

    again = discover(root, config, ledger.known())
    assert again.new == []  # both done: not analysed a second time
    assert again.skipped["done"] == 2 and again.changed_but_identical == []


# --------------------------------------------------------------------------- no worker left behind

STARTING_WORKER_PARENT = """
import multiprocessing, os, signal, time
from pebble import ProcessPool
from linac_qa.execution.worker_start import init_worker
if __name__ == "__main__":
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPool(max_workers=1, initializer=init_worker, initargs=(os.getpid(),), context=spawn)
    pool.schedule(os.getpid)  # starts the worker
    while not multiprocessing.active_children():
        time.sleep(0.01)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the run is killed while its worker is still starting
"""


def test_a_worker_still_starting_when_its_run_is_killed_exits(tmp_path: Path) -> None:
    """A worker that begins to watch its run only after the run died has been handed to another
    parent already: it must still see that its run is gone (found by the stop trials: a worker
    lived on after a SIGKILL that came while it imported pylinac)."""
    script = tmp_path / "parent.py"
    script.write_text(STARTING_WORKER_PARENT)
    parent = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr[-2000:]
    children = []
    for pid in parent.stdout.split():
        with contextlib.suppress(psutil.NoSuchProcess):  # gone already
            children.append(psutil.Process(int(pid)))
    try:
        # It imports pylinac first (seconds), then sees that its run is gone.
        _, alive = psutil.wait_procs(children, timeout=90)
        assert alive == []
    finally:
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()


def test_an_interrupted_runs_results_come_back_from_the_ledger_as_they_were_judged(tmp_path: Path) -> None:
    """The e-mail a later run writes for a run that died counts that run's passes as passes."""
    from linac_qa.records import versions
    from linac_qa.records.ledger import FileStamp

    ledger = Ledger.open(tmp_path)
    ledger.start_run("died", dt.datetime.now(dt.UTC))
    for name, status, judged in (("a.dcm", Status.PASSED, True), ("b.dcm", Status.PASSED, False)):
        result = AnalysisResult(
            analysis="starshot", model="Starshot", files=[name], status=status, reason="r", judged=judged
        )
        ledger.record(
            result, [FileStamp(name, 1, 1, "0" * 64)], run_id="died", provenance=versions.current("c")
        )
    (run,) = Outbox(ledger).unreported_runs("later")
    assert [r.judged for r in run.results] == [True, False]


UNHEEDING = """
import signal, time
import flows.stop_signals as stops
stops.FORCE_AFTER_SECONDS = 1.0
signal.signal(signal.SIGTERM, lambda *_: None)
with stops.StopSignals():
    # Handlers whose exception is lost on the way, as a stuck exit path would lose it (a raising
    # one could land between two statements of any loop here and end the program itself).
    signal.signal(signal.SIGINT, lambda *_: None)
    print("ready", flush=True)
    time.sleep(60)  # resumed after each handler (PEP 475)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_that_goes_unheeded_ends_the_run_by_its_signal_with_the_threads_stacks(
    sig: signal.Signals,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", UNHEEDING], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -sig  # as if it had heeded: a shell sees 128 + n
    assert f"{sig.name} was not heeded within 1 s" in stderr
    assert "Thread 0x" in stderr or "Current thread 0x" in stderr  # faulthandler's dump, for the bug report
