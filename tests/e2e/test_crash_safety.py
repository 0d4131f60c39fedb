"""Crash safety (issues 8 and 13): a run SIGKILLed at each checkpoint of `linac_qa.testing.faults`, then run
again.

For every checkpoint (during an analysis, while writing outputs, between the outputs and the ledger,
between the last verdict and the e-mail, before and after the SMTP server takes the message) a real
`python -m flows.process DIR --json` is killed there (the environment variable LINAC_QA_CRASH_AT
names the checkpoint), then run again without it. After the kill: no partial output under a final
name, and no worker process left behind. After the second run: every acquisition analysed exactly
once overall (the killed run's ledger rows plus the second run's summary), all outputs there, no
temporaries, and the failure in a delivered e-mail: exactly once, or twice with the same Message-ID
and the summary saying so when the server had taken the message as the run died.

The scenarios run side by side (one folder each) to keep the suite fast on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from linac_qa.testing import synthetic
from linac_qa.testing.faults import CHECKPOINTS, CRASH_AT
from tests.conftest import ROOT, CliRun, register_inputs
from tests.mailbox import Mailbox, Received, setup_block

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # six runs side by side, then six more

FILES = ("RI.QA.Starshot_A.dcm", "sub dir/RI.QA.Starshot_B.dcm")  # B fails: the digest has something to say
EMAIL_CHECKPOINTS = ("queue-email", "email", "email-sent")  # the runs that have e-mail on
OUTPUT_EXTENSIONS = (".pdf", ".png", ".txt", ".json")


@dataclass
class Scenario:
    checkpoint: str
    root: Path
    config: Path
    killed: CliRun | None = None
    rerun: CliRun | None = None
    descendants: int = 0  # processes the killed run had started (its workers)
    lingering: list[str] = field(default_factory=list)  # of those, still alive after the kill
    after_kill: dict[str, Any] = field(default_factory=dict)
    mail_after_kill: int = 0


def build(base: Path, checkpoint: str, email_block: str | None) -> Scenario:
    root = base / f"killed at {checkpoint}"
    synthetic.starshot(root / FILES[0], wobble_mm=0.1)
    synthetic.starshot(root / FILES[1], wobble_mm=0.9, seed=1)
    register_inputs(root)
    text = f"general:\n  unit: Crash-{checkpoint}\n  settle-seconds: 0\n  workers: 1\n"
    if email_block:
        text += (
            f"email:\n  credentials-block: {email_block}\n  from: qa@clinic.test\n"
            "  recipients: [physics@clinic.test]\n  retries: 0\n  resend-unknown-after-minutes: 0\n"
        )
    config = base / f"{checkpoint}.yml"
    config.write_text(text, encoding="utf-8")
    return Scenario(checkpoint, root, config)


def launch(s: Scenario, api: str, crash_at: str | None, logs: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": api}
    env.pop(CRASH_AT, None)
    if crash_at:
        env[CRASH_AT] = crash_at
    tag = f"{s.checkpoint}-{'killed' if crash_at else 'rerun'}"
    return subprocess.Popen(
        [sys.executable, "-m", "flows.process", str(s.root), "--config", str(s.config), "--json"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=(logs / f"{tag}.out").open("w"),
        stderr=(logs / f"{tag}.err").open("w"),
        text=True,
    )


def wait_all(
    procs: dict[str, subprocess.Popen[str]], timeout: float = 900
) -> dict[str, list[psutil.Process]]:
    """Waits for every run, noting each one's descendants (its workers) while it lives."""
    seen: dict[str, dict[int, psutil.Process]] = {k: {} for k in procs}
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs.values()):
        for key, proc in procs.items():
            if proc.poll() is None:
                try:
                    for child in psutil.Process(proc.pid).children(recursive=True):
                        seen[key].setdefault(child.pid, child)
                except psutil.Error:
                    pass
        if time.monotonic() > deadline:
            for proc in procs.values():
                proc.kill()
            raise AssertionError("a run did not finish in time")
        time.sleep(0.1)
    return {k: list(v.values()) for k, v in seen.items()}


def result(proc: subprocess.Popen[str], logs: Path, tag: str) -> CliRun:
    return CliRun(proc.returncode, (logs / f"{tag}.out").read_text(), (logs / f"{tag}.err").read_text())


def still_alive(processes: list[psutil.Process], grace: float = 5) -> list[str]:
    """What of a killed run is still running after `grace` seconds; stopped here, by PID."""
    _, alive = psutil.wait_procs(processes, timeout=grace)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    described = []
    for p in alive:
        try:
            described.append(f"{p.pid}: {' '.join(p.cmdline())[:120]}")
            p.kill()
        except psutil.Error:
            pass
    return described


def snapshot(root: Path) -> dict[str, Any]:
    ledger = root / ".linac-qa" / "ledger.sqlite"
    rows: list[tuple[str, str, str]] = []
    if ledger.exists():
        with sqlite3.connect(ledger) as db:
            rows = db.execute("SELECT run_id, files, status FROM results").fetchall()
    finals = {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*_analysis.*")
        if ".linac-qa" not in p.parts and not p.name.startswith(".")  # not a hidden temporary
    }
    temporaries = [p.name for p in root.rglob("*.lqa-tmp-*")]
    return {"rows": rows, "finals": finals, "temporaries": temporaries}


def output_names(rel: str) -> list[str]:
    stem = rel.rsplit(".", 1)[0]
    return [f"{stem}_analysis{ext}" for ext in OUTPUT_EXTENSIONS]


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("crash")
    logs = base / "logs"
    logs.mkdir()
    box = Mailbox()
    box.start()
    try:
        block = f"crash-relay-{os.getpid()}"
        scenarios = {c: build(base, c, block if c in EMAIL_CHECKPOINTS else None) for c in CHECKPOINTS}
        # The e-mail block is made while the other runs are being killed.
        quiet = [c for c in CHECKPOINTS if c not in EMAIL_CHECKPOINTS]
        procs = {c: launch(scenarios[c], prefect_api, c, logs) for c in quiet}
        setup_block(prefect_api, block, box.port)
        procs.update({c: launch(scenarios[c], prefect_api, c, logs) for c in EMAIL_CHECKPOINTS})
        descendants = wait_all(procs)
        for c, s in scenarios.items():
            s.killed = result(procs[c], logs, f"{c}-killed")
            s.descendants = len(descendants[c])
            s.lingering = still_alive(descendants[c])
            s.after_kill = snapshot(s.root)
            s.mail_after_kill = len(mail_of(box.received, c))

        procs = {c: launch(s, prefect_api, None, logs) for c, s in scenarios.items()}
        wait_all(procs)
        for c, s in scenarios.items():
            s.rerun = result(procs[c], logs, f"{c}-rerun")
        yield {"scenarios": scenarios, "mail": list(box.received)}
    finally:
        box.stop()


@pytest.fixture(params=CHECKPOINTS)
def scenario(request: pytest.FixtureRequest, crashes: dict[str, Any]) -> Scenario:
    s: Scenario = crashes["scenarios"][request.param]
    return s


def test_the_run_was_killed_at_its_checkpoint(scenario: Scenario) -> None:
    assert scenario.killed is not None
    assert scenario.killed.code == -signal.SIGKILL, scenario.killed.stderr[-3000:]
    assert scenario.killed.stdout == ""  # no summary: it died


def test_no_process_of_a_killed_run_lingers(scenario: Scenario) -> None:
    """Workers of a killed run exit on their own (they watch their run), so none goes on writing
    outputs that nobody records, or analyses the files the next run is analysing. (pebble alone
    leaves a busy worker running: it only notices the lost parent when it asks for the next task.)"""
    if scenario.checkpoint not in EMAIL_CHECKPOINTS:  # e-mail goes out after the pool has closed
        assert scenario.descendants >= 1
    assert scenario.lingering == []


def test_a_kill_leaves_no_partial_output_under_a_final_name(scenario: Scenario) -> None:
    finals = scenario.after_kill["finals"]
    for rel in FILES:
        present = [name for name in output_names(rel) if name in finals]
        assert present in ([], output_names(rel)), (rel, present)  # all four outputs, or none
    for name in finals:
        if name.endswith(".json"):
            json.loads((scenario.root / name).read_text(encoding="utf-8"))  # complete, parseable
    if scenario.checkpoint in ("analysis", "outputs"):
        assert finals == {} and scenario.after_kill["rows"] == []
    if scenario.checkpoint == "outputs":
        # Killed half-way through writing: the finished part is under hidden temporary names only.
        assert {Path(n).suffix for n in scenario.after_kill["temporaries"]} >= {".png", ".txt"}
    if scenario.checkpoint == "before-ledger":
        assert len(finals) == 4 and scenario.after_kill["rows"] == []  # outputs of one, no ledger row
    if scenario.checkpoint in EMAIL_CHECKPOINTS:
        assert len(scenario.after_kill["rows"]) == len(FILES) and len(finals) == 4 * len(FILES)


def test_the_next_run_completes_the_work_exactly_once(scenario: Scenario) -> None:
    rerun = scenario.rerun
    assert rerun is not None and rerun.code in (0, 1), rerun.stderr[-3000:]  # not 3: the lock died too
    summary = rerun.summary
    killed_rows = [json.loads(files) for _, files, _ in scenario.after_kill["rows"]]
    analysed = Counter(f for files in killed_rows for f in files)
    analysed.update(f for r in summary["results"] for f in r["files"])
    assert analysed == Counter(FILES)  # each acquisition once overall: never twice, never lost
    after = snapshot(scenario.root)
    assert Counter(f for _, files, _ in after["rows"] for f in json.loads(files)) == Counter(FILES)
    assert after["temporaries"] == []  # the killed run's temporaries were removed
    assert sorted(after["finals"]) == sorted(n for rel in FILES for n in output_names(rel))
    assert {s for _, _, s in after["rows"]} == {"passed", "failed"}
    assert not (scenario.root / ".linac-qa" / "tmp").exists()  # the scratch folder is gone too


def test_finished_outputs_are_adopted_not_analysed_again(crashes: dict[str, Any]) -> None:
    s: Scenario = crashes["scenarios"]["before-ledger"]
    assert s.rerun is not None
    adopted = [
        r
        for r in s.rerun.summary["results"]
        if "recorded from the outputs of an interrupted run" in r["warnings"]
    ]
    assert len(adopted) == 1
    [rel] = adopted[0]["files"]
    assert adopted[0]["model"] == "Starshot" and adopted[0]["reason"].startswith("wobble diameter")
    after = snapshot(s.root)["finals"]
    for name in output_names(rel):  # the very same files: not rewritten
        assert after[name] == s.after_kill["finals"][name]


def mail_of(received: list[Received], checkpoint: str) -> list[Received]:
    return [r for r in received if str(r.message["Subject"]).startswith(f"Crash-{checkpoint} QA")]


@pytest.mark.parametrize("checkpoint", ["queue-email", "email"])
def test_the_email_is_sent_exactly_once(crashes: dict[str, Any], checkpoint: str) -> None:
    """Killed before the run wrote its e-mail, or before it handed it to the server: the next run
    sends it, once."""
    s: Scenario = crashes["scenarios"][checkpoint]
    assert s.mail_after_kill == 0  # killed before the SMTP send
    [mail] = mail_of(crashes["mail"], checkpoint)
    assert mail.message["Subject"] == f"Crash-{checkpoint} QA: 1 failed, 0 errors, 1 passed"
    assert s.rerun is not None and s.rerun.summary["results"] == []  # nothing analysed again
    assert [n["status"] for n in s.rerun.summary["notifications"]] == ["sent"]
    with sqlite3.connect(s.root / ".linac-qa" / "ledger.sqlite") as db:
        assert db.execute("SELECT status, attempts FROM notifications").fetchall() == [("sent", 1)]


def test_an_email_the_server_took_as_the_run_died_is_resent_and_said_so(crashes: dict[str, Any]) -> None:
    s: Scenario = crashes["scenarios"]["email-sent"]
    assert s.mail_after_kill == 1  # the server had it
    first, second = mail_of(crashes["mail"], "email-sent")
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert s.rerun is not None and s.rerun.summary["results"] == []
    [note] = s.rerun.summary["notifications"]
    assert note["status"] == "sent" and "possibly delivered twice" in note["detail"], note
