"""What a run shows in Prefect (issue 15, point 2), read back from a real server through the client:
the flow run named after the unit and its start, tagged with the unit, without terminal-only
parameters; each analysis task run's state named after its verdict with the reason as its message;
each verdict in the run's logs; per-unit artifact keys and the results table's columns; and its
e-mail (point 3), with the default subject, links to the run. One command-line run (a failing, a
passing and an erroring picket fence) is shared by every test."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from linac_qa.testing import synthetic
from tests.conftest import CliRun, register_inputs, run_cli
from tests.mailbox import RECIPIENTS, SENDER, Mailbox, Received, parts, running, setup_block
from tests.prefect_runs import read_back

pytestmark = pytest.mark.e2e

PASSING, FAILING, ERRING = "RI.QA.PF_A.dcm", "RI.QA.PF_B.dcm", "RI.QA.PF_one_picket.dcm"


@dataclass
class Seen:
    """The run as the CLI reported it and as the server keeps it."""

    run: CliRun
    root: Path
    flow_run: Any
    subflows: list[Any]
    task_runs: list[Any]
    logs: list[Any]
    artifacts: dict[str, Any]
    mail: list[Received]

    def result(self, file: str) -> dict[str, Any]:
        return next(r for r in self.run.summary["results"] if r["files"] == [file])


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Seen:
    root = tmp_path_factory.mktemp("visible") / "qa"
    synthetic.picket_fence(root / PASSING)
    synthetic.picket_fence(root / FAILING, leaf_error_mm=1.2, seed=1)
    synthetic.picket_fence(root / ERRING, pickets=1, seed=2)  # pylinac cannot analyse one picket
    register_inputs(root)
    with running(Mailbox()) as box:
        block = "lqa-visible-relay"
        setup_block(prefect_api, block, box.port)
        email = {"credentials-block": block, "from": SENDER, "recipients": RECIPIENTS}  # the default subject
        config = root.parent / "config.yml"
        doc = {"general": {"unit": "TrueBeam1", "settle-seconds": 0}, "email": email}
        config.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
        began = dt.datetime.now(dt.UTC)
        run = run_cli(root, "--config", config, "--json", api=prefect_api)
    assert run.code == 1, run.stderr[-3000:]
    server = read_back(prefect_api, root, began)
    return Seen(
        run,
        root,
        server.flow_run,
        server.subflows,
        server.task_runs,
        server.logs,
        server.artifacts,
        box.received,
    )


def test_the_flow_run_is_named_after_the_unit_and_its_start(seen: Seen) -> None:
    unit, named = seen.flow_run.name.split(" ", 1)
    began = dt.datetime.strptime(named, "%Y-%m-%d %H:%M").astimezone()  # local time, to the minute
    started = dt.datetime.fromisoformat(seen.run.summary["started"])  # the run's, a moment later
    assert unit == "TrueBeam1" and dt.timedelta(0) <= started - began < dt.timedelta(minutes=2)
    assert [r.name for r in seen.subflows] == ["picket-fence (3)"]


def test_every_run_is_tagged_with_the_unit(seen: Seen) -> None:
    assert "TrueBeam1" in seen.flow_run.tags
    assert all("TrueBeam1" in r.tags for r in seen.subflows)
    assert seen.task_runs and all("TrueBeam1" in t.tags for t in seen.task_runs)


def test_terminal_objects_are_no_parameters_of_the_run(seen: Seen) -> None:
    assert set(seen.flow_run.parameters) <= {"directory", "config", "force", "config_block", "retry_errors"}
    assert seen.flow_run.parameters["directory"] == str(seen.root.resolve())
    # ... and the terminal's listener still got every verdict, said once: its line, without the
    # console's copy of Prefect's log line (the run's logs on the server keep it)
    said = re.findall(rf"^.*FAIL\s+picket-fence\s+{re.escape(FAILING)}: ", seen.run.stderr, re.MULTILINE)
    assert [line.startswith("FAIL") for line in said] == [True], said


def test_each_analysis_task_run_is_named_after_its_verdict_with_the_reason(seen: Seen) -> None:
    analyses = {t.name: t.state for t in seen.task_runs if t.task_key.startswith("analyse")}
    expected = {PASSING: "PASSED", FAILING: "FAILED", ERRING: "ERROR"}
    assert {name: state.name for name, state in analyses.items()} == {
        name: f"Completed: {word}" for name, word in expected.items()
    }
    assert all(state.type.value == "COMPLETED" for state in analyses.values())
    for name, state in analyses.items():
        assert state.message == seen.result(name)["reason"] != ""
    assert [r.state.name for r in seen.subflows] == ["Completed: 2 QA problems"]
    assert seen.flow_run.state.name == "Completed: 2 QA problems"


def test_each_verdict_is_in_the_run_log_at_its_level(seen: Seen) -> None:
    def logged(file: str) -> list[int]:
        return [log.level for log in seen.logs if f" {file}: " in log.message]

    assert logged(PASSING) == [logging.INFO]
    assert logged(FAILING) == [logging.WARNING]
    assert logged(ERRING) == [logging.ERROR]
    failed = next(log.message for log in seen.logs if f" {FAILING}: " in log.message)
    assert failed.startswith("FAIL") and seen.result(FAILING)["reason"] in failed


def test_artifacts_are_keyed_per_unit_and_the_table_puts_the_verdict_first(seen: Seen) -> None:
    assert set(seen.artifacts) == {
        "qa-results-truebeam1",
        "picket-fence-truebeam1",
        "qa-record-truebeam1",  # the QA record's view of this run (issue 16)
        "qa-dashboard-truebeam1",
        "qa-review-truebeam1",  # what is pending review (issue 17)
    }
    table = seen.artifacts["qa-results-truebeam1"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [row["verdict"] for row in rows] == ["FAILED", "ERROR", "PASSED"]  # problems first
    assert list(rows[0])[:4] == ["verdict", "analysis", "acquisition", "reason"]
    assert all(len(row["reason"]) <= 122 for row in rows)
    failing = rows[0]
    assert Path(failing["report"]).is_absolute() and Path(failing["report"]).is_file()
    assert Path(failing["report"]).parent == seen.root
    details = seen.artifacts["picket-fence-truebeam1"].data
    assert seen.result(FAILING)["reason"] in details  # the whole reason
    pending = seen.artifacts["qa-review-truebeam1"].data
    assert pending.startswith("# TrueBeam1: 2 results pending review")  # the failure and the error


def test_the_email_counts_errors_and_links_to_the_run(seen: Seen, prefect_api: str) -> None:
    [mail] = seen.mail
    assert mail.message["Subject"] == "TrueBeam1 QA: 1 failed, 1 error, 1 passed"
    link = f"{prefect_api.removesuffix('/api')}/runs/flow-run/{seen.flow_run.id}"
    text, page, _ = parts(mail.message)
    assert f"This run in Prefect: {link}" in text
    assert f'<a href="{link}">' in page
