"""Nightly deployments per linac on a real `prefect server start`: `python -m deployments.serve`, and
a process work pool with `prefect deploy` and `prefect worker start`. The files and the block without
a server are in tests/unit/test_deployments.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from deployments.generate import prefect_yaml
from deployments.machines import ENTRYPOINT, WATCH_ENTRYPOINT, load_machines
from linac_qa.review import queue
from linac_qa.review.trail import Trail
from linac_qa.testing import synthetic
from tests.conftest import ROOT, register_inputs, run_cli
from tests.mailbox import Mailbox
from tests.unit.test_review_queue import T0, entry

# --------------------------------------------------------------------------- end to end helpers


def prefect(*args: str, cwd: Path = ROOT, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The `prefect` command line, as a user types it."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_CLI_PROMPT": "false"}
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def blocks_setup(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m blocks.setup ...` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "blocks.setup", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def background(
    args: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process in its own session, stopped (with whatever it started) by its PID."""
    full_env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MPLBACKEND": "Agg", **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (serve and worker shut down gracefully on it), then SIGKILL.
    Once the process has been waited for, its PID may belong to someone else: leave it alone."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def qa_folder(folder: Path, *names: str) -> list[str]:
    """Starshots: the quickest analyses (well under a second each)."""
    for i, name in enumerate(names):
        synthetic.starshot(folder / name, wobble_mm=0.1, seed=i)
    register_inputs(folder)
    return list(names)


def quick_config(path: Path, unit: str, email_block: str | None = None) -> Path:
    text = f"general:\n  unit: {unit}\n  settle-seconds: 0\n  workers: 1\n"
    if email_block:  # a digest of every run with results, passed ones included
        text += f"email:\n  credentials-block: {email_block}\n  from: qa@example.org\n"
        text += "  recipients: [physics@example.org]\n  send: all\n"
    path.write_text(text, encoding="utf-8")
    return path


def wait_for(what: str, check: Any, timeout: float = 90, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.5)


@contextmanager
def on_server() -> Iterator[None]:
    """This module imports Prefect (at collection) before the `prefect_api` fixture sets
    PREFECT_API_URL, and Prefect reads its settings once, at import: name the server explicitly."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
        yield


@contextmanager
def client() -> Iterator[Any]:
    from prefect.client.orchestration import get_client

    with on_server(), get_client(sync_client=True) as c:
        yield c


def deployment_or_none(name: str) -> Any:
    from prefect.exceptions import ObjectNotFound

    with client() as c:
        try:
            return c.read_deployment_by_name(f"process-directory/{name}")
        except ObjectNotFound:
            return None


def flow_run_named(name: str) -> Any:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with client() as c:
        runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    assert len(runs) == 1, (name, runs)
    return runs[0]


def finished(name: str, timeout: float = 180) -> Any:
    return wait_for(
        f"flow run {name}",
        lambda: (r := flow_run_named(name)).state is not None and r.state.is_final() and r,
        timeout,
    )


def analysed(flow_run: Any) -> list[str]:
    """The acquisitions a flow run analysed: its analysis task runs, in its per-analysis subflows."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with client() as c:
        children = c.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id]))
        )
        ids = [flow_run.id, *(r.id for r in children)]
        tasks = c.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": ids}))
    return sorted(t.name for t in tasks if t.task_key.startswith("analyse"))


def one_at_a_time(deployment: Any) -> bool:
    limit, options = deployment.global_concurrency_limit, deployment.concurrency_options
    return limit.limit == 1 and options.collision_strategy.value == "ENQUEUE"


def run_deployment(name: str, run_name: str, *, watch: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["deployment", "run", f"process-directory/{name}", "--flow-run-name", run_name]
    if watch:
        args += ["--watch", "--watch-interval", "1", "--watch-timeout", "170"]
    return prefect(*args)


def ledger_results(folder: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(folder / ".linac-qa" / "ledger.sqlite") as db:
        return sorted(db.execute("SELECT files, run_id FROM results"))


# --------------------------------------------------------------------------- serve path (e2e)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[dict[str, Any]]:
    """`python -m deployments.serve` with three machines: files, a machine-config block, and a
    directory that is not there (a share that is not mounted)."""
    tmp = tmp_path_factory.mktemp("serve")
    p = f"s{uuid.uuid4().hex[:6]}"
    tb, blk, watched = tmp / "TrueBeam", tmp / "Blocked", tmp / "Watched"
    watched.mkdir()
    (tmp / "watch.yml").write_text("general:\n  settle-seconds: 1\n  poll-seconds: 1\n  workers: 1\n")
    qa_folder(tb, "RI.QA.Starshot_A.dcm", "RI.QA.Starshot_B.dcm")
    qa_folder(blk, "RI.QA.Starshot_C.dcm")
    mailbox = Mailbox()
    port = str(mailbox.port)
    setup = blocks_setup(
        "email", "--name", f"{p}-relay", "--server", "127.0.0.1", "--port", port, "--security", "none"
    )
    assert setup.returncode == 0, setup.stderr[-2000:]
    quick_config(tmp / "tb.yml", f"TB-{p}", email_block=f"{p}-relay")
    # Saved before serve starts: serve checks every block a machine names, and refuses without it.
    registered = blocks_setup("register")
    assert "registered block type machine-config" in registered.stdout, registered.stderr
    block_config = quick_config(tmp / "blk.yml", f"Block-{p}")
    saved = blocks_setup("machine-config", "--name", f"{p}-blk-config", "--file", str(block_config))
    assert saved.returncode == 0, saved.stderr
    machines = {
        "machines": [
            {"name": f"{p}-tb", "directory": "TrueBeam", "config": "tb.yml", "cron": "0 2 * * *",
             "timezone": "Europe/Berlin", "retries": 0, "tags": ["e2e"]},
            {"name": f"{p}-blk", "directory": str(blk), "config-block": f"{p}-blk-config",
             "cron": "30 3 * * 1-5", "timezone": "America/New_York", "retries": 0},
            {"name": f"{p}-gone", "directory": "not-mounted", "config": "tb.yml", "cron": "15 1 * * *",
             "timezone": "Asia/Tokyo", "retries": 1, "retry-delay-seconds": 0},
            {"name": f"{p}-w", "directory": "Watched", "config": "watch.yml", "cron": "0 4 * * *",
             "timezone": "Europe/Berlin", "watch": True},
        ]
    }  # fmt: skip
    (tmp / "machines.yml").write_text(yaml.safe_dump(machines, sort_keys=False), encoding="utf-8")
    log = tmp / "serve.log"
    cmd = [sys.executable, "-m", "deployments.serve", "--machines", str(tmp / "machines.yml")]
    mailbox.start()
    try:
        with background(cmd, log, {"PREFECT_RUNNER_POLL_FREQUENCY": "1"}) as proc:
            names = [m["name"] for m in machines["machines"]]
            wait_for(
                "served deployments", lambda: all(deployment_or_none(f"{n}-nightly") for n in names), log=log
            )
            yield {
                "p": p, "tmp": tmp, "tb": tb, "blk": blk, "proc": proc, "log": log, "machines": machines,
                "mailbox": mailbox, "watched": watched,
            }  # fmt: skip
    finally:
        mailbox.stop()


@pytest.mark.e2e
def test_served_deployment_runs_from_the_command_line(served: dict[str, Any]) -> None:
    p, tb = served["p"], served["tb"]
    started = time.monotonic()
    cli = run_deployment(f"{p}-tb-nightly", f"{p}-first")
    elapsed = time.monotonic() - started
    run = flow_run_named(f"{p}-first")
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:] + served["log"].read_text()[-3000:]
    assert run.state.is_completed(), run.state
    assert analysed(run) == ["RI.QA.Starshot_A.dcm", "RI.QA.Starshot_B.dcm"]  # one task run per acquisition
    for stem in ("RI.QA.Starshot_A", "RI.QA.Starshot_B"):
        for ext in (".pdf", ".png", ".txt", ".json"):
            assert (tb / f"{stem}_analysis{ext}").stat().st_size > 0
    assert run.parameters == {"directory": str(tb), "config": str(served["tmp"] / "tb.yml")}
    print(f"served run: {elapsed:.1f} s from `prefect deployment run` to Completed")


@pytest.mark.e2e
def test_stored_schedules_are_the_configured_crons_in_their_time_zones(served: dict[str, Any]) -> None:
    stored = {}
    for m in served["machines"]["machines"]:
        deployment = deployment_or_none(f"{m['name']}-nightly")
        stored[m["name"]] = [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules]
        assert one_at_a_time(deployment) and deployment.entrypoint == ENTRYPOINT
    assert stored == {m["name"]: [(m["cron"], m["timezone"], True)] for m in served["machines"]["machines"]}
    print("schedules read back:", stored)


@pytest.mark.e2e
def test_back_to_back_runs_queue_and_analyse_each_acquisition_once(served: dict[str, Any]) -> None:
    p, tb, mail = served["p"], served["tb"], served["mailbox"]
    qa_folder(tb, "RI.QA.Starshot_D.dcm", "RI.QA.Starshot_E.dcm")
    sent_before = len(mail.received)
    for name in ("a", "b"):
        cli = run_deployment(f"{p}-tb-nightly", f"{p}-{name}", watch=False)
        assert cli.returncode == 0, cli.stdout + cli.stderr
    first, second = finished(f"{p}-a"), finished(f"{p}-b")
    assert first.state.is_completed() and second.state.is_completed()
    with client() as c:
        waited = [s.name for s in c.read_flow_run_states(second.id)]
    assert "AwaitingConcurrencySlot" in waited, waited  # the second one waited for the slot ...
    assert second.start_time >= first.end_time  # ... until the first had finished
    assert analysed(first) == ["RI.QA.Starshot_D.dcm", "RI.QA.Starshot_E.dcm"]
    assert analysed(second) == []
    files = [f for f, _ in ledger_results(tb)]
    assert len(files) == len(set(files)) == 4  # A and B (first test), D and E: each exactly once
    assert not (tb / ".linac-qa" / "history").exists()  # nothing was re-analysed
    # One digest, from the run that analysed D and E; the second run had nothing to tell.
    assert len(mail.received) == sent_before + 1
    assert mail.mentioning("RI.QA.Starshot_D.dcm") == mail.mentioning("RI.QA.Starshot_E.dcm") == 1
    assert mail.mentioning("RI.QA.Starshot_A.dcm") == 1  # the first test's digest, not sent again


@pytest.mark.e2e
def test_a_run_uses_the_machine_config_block_its_deployment_names(served: dict[str, Any]) -> None:
    p, blk = served["p"], served["blk"]
    cli = run_deployment(f"{p}-blk-nightly", f"{p}-blk-run")
    run = flow_run_named(f"{p}-blk-run")
    assert cli.returncode == 0 and run.state.is_completed(), cli.stdout[-2000:]
    assert analysed(run) == ["RI.QA.Starshot_C.dcm"]  # settle-seconds 0 came from the block
    assert (blk / "RI.QA.Starshot_C_analysis.pdf").stat().st_size > 0
    assert run.parameters["config_block"] == f"{p}-blk-config"
    own = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))  # the server holds many
    with client() as c:
        keys = {a.key for a in c.read_artifacts(artifact_filter=own)}
    assert f"qa-results-block-{p}" in keys  # the unit came from the block


@pytest.mark.e2e
def test_missing_directory_is_a_clear_failure_retried_per_machine(served: dict[str, Any]) -> None:
    p = served["p"]
    cli = run_deployment(f"{p}-gone-nightly", f"{p}-gone-run")
    run = flow_run_named(f"{p}-gone-run")
    assert cli.returncode != 0
    assert run.state.is_failed() and run.run_count == 2  # retries: 1
    assert f"directory not found: {served['tmp'] / 'not-mounted'} (network share not mounted?)" in (
        run.state.message or ""
    )
    with client() as c:
        assert "AwaitingRetry" in [s.name for s in c.read_flow_run_states(run.id)]


@pytest.mark.e2e
def test_a_watch_machine_is_watched_from_the_moment_serve_starts(served: dict[str, Any]) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    p, watched = served["p"], served["watched"]
    with client() as c:
        watch_deployment = c.read_deployment_by_name(f"watch-directory/{p}-w-watch")
        assert watch_deployment.entrypoint == WATCH_ENTRYPOINT
        only = DeploymentFilter(name=DeploymentFilterName(any_=[f"{p}-w-watch"]))
        running = wait_for(
            "the watch's flow run",
            lambda: [r for r in c.read_flow_runs(deployment_filter=only) if r.state and r.state.is_running()],
            log=served["log"],
        )
    assert len(running) == 1
    qa_folder(watched, "RI.QA.Starshot_W.dcm")  # dropped in, nobody starts anything
    wait_for(
        "the watch's result",
        lambda: (watched / ".linac-qa" / "ledger.sqlite").exists() and ledger_results(watched),
        log=served["log"],
    )
    assert [f for f, _ in ledger_results(watched)] == ['["RI.QA.Starshot_W.dcm"]']
    assert (watched / "RI.QA.Starshot_W_analysis.pdf").stat().st_size > 0


@pytest.mark.e2e
def test_review_deployment_records_the_form_and_keeps_a_cli_review_before_it(served: dict[str, Any]) -> None:
    """Issue 17, acceptance 2 and 4: the nightly run lists what is pending with a link to the
    machine's review deployment; `prefect deployment run 'review-qa/<machine>-review' --param ...`
    (what the UI's form sends) records the reviews and names the run by how many; a comment given
    on the command line before it stays first in the trail."""
    p, tb = served["p"], served["tb"]
    ids = [f"review-{p}-{n}.json" for n in (1, 2)]
    trail = Trail(tb)
    try:
        for n, rid in enumerate(ids, 1):
            queue.record(trail, entry(n, machine=f"TB-{p}", level="tolerance", result_id=rid), T0)
    finally:
        trail.close()
    shorts = [queue.short_id(rid) for rid in ids]
    nightly = run_deployment(f"{p}-tb-nightly", f"{p}-before-review")
    assert nightly.returncode == 0, nightly.stdout[-2000:] + nightly.stderr[-2000:]
    own = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_named(f"{p}-before-review").id]))
    with client() as c:
        listed = {a.key: a.data for a in c.read_artifacts(artifact_filter=own)}[f"qa-review-tb-{p}"]
        review_deployment = c.read_deployment_by_name(f"review-qa/{p}-tb-review")
    assert all(f"| {s} |" in listed for s in shorts)
    assert f"/deployments/deployment/{review_deployment.id})" in listed
    assert review_deployment.parameter_openapi_schema["required"] == ["reviewer"]  # the form's fields
    assert not review_deployment.schedules

    said = run_cli(
        tb, "comment", shorts[0], "--by", "CLI Physicist", "--comment", "bank B?", module="flows.review"
    )
    assert said.code == 0, said.stderr
    cli = prefect(
        "deployment", "run", f"review-qa/{p}-tb-review", "--flow-run-name", f"{p}-review",
        "--param", "reviewer=UI Physicist", "--param", "decision=approve",
        "--param", f"results={json.dumps(shorts)}",
        "--watch", "--watch-interval", "1", "--watch-timeout", "170",
    )  # fmt: skip
    run = flow_run_named(f"{p}-review")
    assert cli.returncode == 0, cli.stdout[-2000:] + served["log"].read_text()[-3000:]
    assert run.state.name == "Completed: 2 approved"
    trail = Trail(tb)
    try:
        given = [(r.result_id, r.decision.value, r.reviewer) for r in trail.reviews(ids)]
    finally:
        trail.close()
    assert given == [
        (ids[0], "comment", "CLI Physicist"),
        (ids[0], "approve", "UI Physicist"),
        (ids[1], "approve", "UI Physicist"),
    ]


@pytest.mark.e2e
def test_stopping_serve_leaves_its_deployments_scheduled(served: dict[str, Any]) -> None:
    stop(served["proc"])
    assert served["proc"].returncode is not None
    for m in served["machines"]["machines"]:
        deployment = deployment_or_none(f"{m['name']}-nightly")
        assert deployment.paused is False
        assert all(s.active for s in deployment.schedules)


# --------------------------------------------------------------------------- work-pool path (e2e)


@pytest.mark.e2e
def test_work_pool_deployment_runs_from_the_command_line(tmp_path: Path, prefect_api: str) -> None:
    p = f"w{uuid.uuid4().hex[:6]}"
    pool = f"pool-{p}"
    data = tmp_path / "Clinac"
    qa_folder(data, "RI.QA.Starshot_A.dcm", "RI.QA.Starshot_B.dcm")
    quick_config(tmp_path / "clinac.yml", f"Clinac-{p}")
    machines = {
        "work-pool": pool,
        "machines": [
            {"name": f"{p}-cl", "directory": "Clinac", "config": "clinac.yml", "cron": "0 2 * * *",
             "timezone": "Europe/Berlin", "retries": 0},
            {"name": f"{p}-gone", "directory": "not-mounted", "config": "clinac.yml", "cron": "0 3 * * *",
             "timezone": "Europe/Berlin", "retries": 1, "retry-delay-seconds": 0},
        ],
    }  # fmt: skip
    (tmp_path / "machines.yml").write_text(yaml.safe_dump(machines, sort_keys=False), encoding="utf-8")
    generated = prefect_yaml(load_machines(tmp_path / "machines.yml"), base=tmp_path)
    (tmp_path / "prefect.yaml").write_text(generated, encoding="utf-8")
    assert "config: clinac.yml" in generated  # relative to the folder prefect deploy runs from

    created = prefect("work-pool", "create", pool, "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = prefect("deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml"), cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    log = tmp_path / "worker.log"
    worker_env = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    with background(cmd, log, worker_env, cwd=Path("/")):
        started = time.monotonic()
        gone = run_deployment(f"{p}-gone-nightly", f"{p}-gone-run", watch=False)
        assert gone.returncode == 0, gone.stdout + gone.stderr
        cli = run_deployment(f"{p}-cl-nightly", f"{p}-run")
        elapsed = time.monotonic() - started
        run = flow_run_named(f"{p}-run")
        assert cli.returncode == 0, cli.stdout[-3000:] + log.read_text()[-3000:]
        assert run.state.is_completed()
        assert analysed(run) == ["RI.QA.Starshot_A.dcm", "RI.QA.Starshot_B.dcm"]
        for stem in ("RI.QA.Starshot_A", "RI.QA.Starshot_B"):
            assert (data / f"{stem}_analysis.pdf").stat().st_size > 0
        failed = finished(f"{p}-gone-run")
        # The machine's retries reached the worker's flow run through the deployment's job variables.
        assert failed.state.is_failed() and failed.run_count == 2, log.read_text()[-3000:]
        assert "(network share not mounted?)" in (failed.state.message or "")
    deployment = deployment_or_none(f"{p}-cl-nightly")
    assert deployment.entrypoint == ENTRYPOINT and one_at_a_time(deployment)
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [
        ("0 2 * * *", "Europe/Berlin")
    ]
    print(f"work-pool run: {elapsed:.1f} s from `prefect deployment run` to Completed")


@pytest.mark.e2e
def test_serve_refuses_to_start_when_a_named_config_block_is_missing(
    tmp_path: Path, prefect_api: str
) -> None:
    """Checked at start-up against the server, not found missing at 02:00 by the first nightly run."""
    machines = tmp_path / "machines.yml"
    machines.write_text(
        "machines:\n  - name: clinac9\n    directory: /data/qa/Clinac9\n    config-block: lqa-absent-block\n"
        '    cron: "0 2 * * *"\n    timezone: Europe/Berlin\n',
        encoding="utf-8",
    )
    serve = run_cli("--machines", machines, module="deployments.serve", api=prefect_api, timeout=120)
    assert serve.code == 2, serve.stderr[-3000:]
    assert "lqa-absent-block" in serve.stderr and "blocks.setup machine-config" in serve.stderr
    assert "Traceback" not in serve.stderr
