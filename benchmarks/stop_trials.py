"""Runs stopped and killed at random moments, then run again (issue 13, acceptance 2 and 3).

    python benchmarks/stop_trials.py stops [--trials 10] [--signals term,kill] [--acquisitions 30]
    python benchmarks/stop_trials.py mail  [--trials 10] [--acquisitions 30] [--reply-delay 1.0]
        common: [--workdir DIR] [--api URL] [--seed S] [--workers N]

A corpus of synthetic starshots and FC-2 light/radiation images (`linac_qa.testing.synthetic`; every fourth
one fails) is built once into the workdir with the verdict each acquisition must get. Every trial runs
`python -m flows.process COPY --json --config CFG` on a fresh copy, exactly as cron would, signals
its main process (only that one) at a random moment, waits for it to end, then runs the same
command again without a signal.

`stops`: for each signal of `--signals`, `--trials` runs get it at a moment drawn uniformly over the
duration of an uninterrupted run (measured first, on its own copy). A trial passes when:
- every acquisition has exactly one result in the ledger (the stopped run's plus the re-run's), with
  the verdict it should have, and no reason is BrokenProcessPool;
- the stopped run's exit status is not one of a finished run (0, 1), of bad usage (2) or a busy
  directory (3); the re-run's is 1 when its own results hold a failure, else 0, with one JSON
  document on standard output;
- no process the stopped run started is alive 120 s after it ended (they are listed, then killed
  by PID; how long the last one took is reported), and none of the re-run's; no temporary output is
  left.

`mail`: e-mail on (a real SMTP server, aiosmtpd on 127.0.0.1, that keeps each message and then
waits `--reply-delay` seconds before its 250, as a slow relay does: a kill in that moment leaves a
delivered message that the run never heard about), `email.resend-unknown-after-minutes: 0`.
SIGKILL at a moment drawn around the end of the run: from a few seconds before its last verdict to
its exit (both measured on an uninterrupted run). A trial passes when, besides the checks above,
every failure is in exactly one delivered message, or in one message delivered more than once with
the same Message-ID and the re-run's summary saying "possibly delivered twice"; never in none; and
nothing is left pending.

Prefect: `--api URL` uses a running `prefect server start`; without it one is started for the
trials (127.0.0.1, its own PREFECT_HOME in the workdir) and stopped at the end, by PID. With
`--api none` every run starts its own temporary server, as a user without a server has it (slow:
about 20 s each); a SIGKILLed run's temporary server is then reported among the processes left.

A trial whose run ended before its moment came (the machine ran faster than during the reference
run) was not signalled: it is listed, checked like the others, and does not count; trials go on
until `--trials` of them were signalled, at most three times as many in all.

Everything goes to the workdir: the corpus, each trial's folder and logs, `figures-<mode>.json`.
The table is printed on standard output; the exit status is 0 only when every trial passed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from harness import (
    PYTHON,
    REPO,
    flow_env,
    load_average,
    mail_states,
    markdown_table,
    process_command,
    recorded_results,
    say,
    settle,
)
from process_tree import TreeSampler

SIGNALS = {"term": signal.SIGTERM, "kill": signal.SIGKILL}
LINGER_LIMIT = 120.0  # a process of a run still alive this long after the run ended is left behind
RUN_TIMEOUT = 1200.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("stops", "mail"))
    p.add_argument("--trials", type=int, default=10, help="per signal (stops) or in all (mail)")
    p.add_argument("--signals", default="term,kill", help="stops: term, kill or both")
    p.add_argument("--acquisitions", type=int, default=30)
    p.add_argument("--workdir", type=Path, help="default: a new folder under the temporary folder")
    p.add_argument("--api", help="PREFECT_API_URL of a running server; 'none': a temporary server per run")
    p.add_argument("--seed", type=int, default=0, help="for the moments of the signals")
    p.add_argument("--workers", type=int, help="general.workers (default: every core)")
    p.add_argument("--reply-delay", type=float, default=1.0, help="mail: seconds the server waits to answer")
    args = p.parse_args(argv)
    args.signals = [s.strip() for s in args.signals.split(",") if s.strip()]
    if not args.signals or any(s not in SIGNALS for s in args.signals):
        p.error("--signals: term, kill or both")
    if args.trials < 1 or args.acquisitions < 3:
        p.error("--trials must be at least 1 and --acquisitions at least 3")
    return args


# ------------------------------------------------------------------------------------ the corpus
def build_corpus(folder: Path, n: int) -> dict[str, str]:
    """Starshots and FC-2 light/radiation images (the fast analyses: a picket fence takes minutes
    on a busy machine); every fourth acquisition fails. Returns each file's expected verdict.
    Backdated, so that no run waits for them to settle. Kept for the next invocation with the same
    count."""
    from linac_qa.testing import synthetic

    expected_file = folder / "EXPECTED.json"
    if expected_file.exists():
        expected: dict[str, str] = json.loads(expected_file.read_text(encoding="utf-8"))
        if len(expected) == n:
            return expected
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    expected = {}
    for i in range(n):
        fails = i % 4 == 3
        if i % 3 == 1:
            name = f"RI.QA.LightRad_FC2_{i:03d}_10x10.dcm"
            synthetic.light_rad(folder / name, offset_mm=(2.8, 0.0) if fails else (0.4, -0.3), seed=i)
        else:
            name = f"RI.QA.Starshot_{i:03d}.dcm"
            synthetic.starshot(folder / name, wobble_mm=0.9 if fails else 0.1, seed=i)
        expected[name] = "failed" if fails else "passed"
    settle(folder)
    expected_file.write_text(json.dumps(expected, indent=1), encoding="utf-8")
    return expected


def fresh_copy(template: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("EXPECTED.json"))
    return target


def write_config(path: Path, unit: str, workers: int | None, email: dict[str, Any] | None) -> Path:
    doc: dict[str, Any] = {"general": {"unit": unit, "settle-seconds": 0}}
    if workers:
        doc["general"]["workers"] = workers
    if email:
        doc["email"] = email
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return path


# ---------------------------------------------------------------------------------- Prefect server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    (workdir / "prefect-home").mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [PYTHON, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=flow_env(workdir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"prefect server did not start; see {workdir / 'server.log'}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------ a run
@dataclass
class Run:
    code: int | None = None
    seconds: float = 0.0  # from start to exit
    signalled_at: float | None = None  # seconds after start; None: it ended first
    exit_after_signal: float | None = None
    summary: dict[str, Any] | None = None
    stdout_ok: bool = False
    left_behind: list[str] = field(default_factory=list)
    last_process_gone_s: float = 0.0  # after the run ended
    verdict_times: list[float] = field(default_factory=list)  # [i]: when the ledger held i + 1 results


@dataclass(frozen=True)
class Moment:
    """When to signal: `then` seconds after the ledger holds `after_rows` results (0: after the
    start). Counting results rather than seconds keeps the moment inside the run however busy the
    machine is."""

    after_rows: int
    then: float


def run_once(
    root: Path,
    config: Path,
    env: dict[str, str],
    logs: Path,
    tag: str,
    *,
    moment: Moment | None = None,
    sig: int = signal.SIGKILL,
) -> Run:
    out, err = logs / f"{tag}.out", logs / f"{tag}.err"
    started = time.monotonic()
    proc = subprocess.Popen(
        process_command(root, config),
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out.open("w"),
        stderr=err.open("w"),
    )
    tree = TreeSampler(psutil.Process(proc.pid), "run")
    run = Run()
    while proc.poll() is None:
        now = time.monotonic() - started
        tree.follow()
        rows = len(recorded_results(root))
        while len(run.verdict_times) < rows:
            run.verdict_times.append(now)
        if moment is not None and run.signalled_at is None:
            since = 0.0 if moment.after_rows == 0 else _nth(run.verdict_times, moment.after_rows)
            if since is not None and now >= since + moment.then:
                proc.send_signal(sig)
                run.signalled_at = now
        if now > RUN_TIMEOUT:
            proc.kill()
            say(f"{tag}: still running after {RUN_TIMEOUT:g} s, killed")
        time.sleep(0.1)
    ended = time.monotonic() - started
    run.code, run.seconds = proc.returncode, round(ended, 2)
    if sig == signal.SIGKILL and run.code in (0, 1):  # no process survives a SIGKILL: it had ended
        run.signalled_at = None
    if run.signalled_at is not None:
        run.exit_after_signal = round(ended - run.signalled_at, 2)
        run.signalled_at = round(run.signalled_at, 2)
    # A worker of a killed run that was still starting sees that its run is gone only once it has
    # imported the run's modules (its spawn start-up imports Prefect): seconds on a quiet machine,
    # tens of seconds on a busy one.
    run.left_behind, run.last_process_gone_s = tree.end_outlivers(LINGER_LIMIT)
    text = out.read_text(encoding="utf-8")
    try:
        run.summary = json.loads(text)
        run.stdout_ok = text.count("\n") == 1
    except ValueError:
        run.summary = None
    return run


def _nth(times: list[float], n: int) -> float | None:
    return times[n - 1] if len(times) >= n else None


def temporaries(root: Path) -> list[str]:
    from linac_qa.records.outputs import is_temporary

    return [p.name for p in root.rglob("*") if is_temporary(p.name)]


# ------------------------------------------------------------------------------------- the checks
def check_results(root: Path, expected: dict[str, str], killed: Run, rerun: Run) -> list[str]:
    problems = []
    rows = recorded_results(root)
    seen = Counter(f for r in rows for f in r.files)
    for name in expected:
        if seen[name] != 1:
            problems.append(f"{name}: {seen[name]} results")
    extra = sorted(set(seen) - set(expected))
    if extra:
        problems.append(f"results for unknown files: {extra[:3]}")
    wrong = [f"{r.files[0]} {r.status}" for r in rows if expected.get(r.files[0]) not in (None, r.status)]
    if wrong:
        problems.append(f"wrong verdicts: {wrong[:3]}")
    broken = [r.files[0] for r in rows if "BrokenProcessPool" in r.reason]
    if broken:
        problems.append(f"BrokenProcessPool: {len(broken)}")
    if killed.signalled_at is not None and killed.code in (0, 1, 2, 3):
        problems.append(f"signalled run exited {killed.code}")
    if killed.signalled_at is None and killed.code != 1:
        problems.append(f"unsignalled first run exited {killed.code}")
    if rerun.summary is None or not rerun.stdout_ok:
        problems.append(f"re-run: no single JSON document (exit {rerun.code})")
    else:
        wanted = 1 if any(r["status"] in ("failed", "error") for r in rerun.summary["results"]) else 0
        if rerun.code != wanted:
            problems.append(f"re-run exited {rerun.code}, should be {wanted}")
    for what, run in (("stopped run", killed), ("re-run", rerun)):
        if run.left_behind:
            problems.append(f"{what} left {len(run.left_behind)} process(es): {run.left_behind[0]}")
    left = temporaries(root)
    if left:
        problems.append(f"temporaries left: {left[:3]}")
    return problems


def body_text(message: Any) -> str:
    return "\n".join(str(p.get_content()) for p in message.walk() if p.get_content_maintype() == "text")


def check_mail(expected: dict[str, str], received: list[Any], rerun: Run) -> tuple[list[str], dict[int, int]]:
    """Every failure in exactly one message (by Message-ID); a message delivered more than once only
    with the re-run's summary saying so. Returns the problems and how many copies arrived."""
    problems = []
    bodies = [(str(r.message["Message-ID"]), body_text(r.message)) for r in received]
    copies = Counter(mid for mid, _ in bodies)
    notes = (rerun.summary or {}).get("notifications", [])
    for name, verdict in expected.items():
        if verdict != "failed":
            continue
        ids = {mid for mid, body in bodies if name in body}
        if len(ids) != 1:
            problems.append(f"{name} in {len(ids)} messages")
            continue
        [mid] = ids
        if copies[mid] > 1 and not any(
            "possibly delivered twice" in n["detail"] and mid in n["detail"] for n in notes
        ):
            problems.append(f"{name}: {copies[mid]} copies of {mid}, the summary does not say so")
    unsent = [n["status"] for n in notes if n["status"] not in ("sent", "none")]
    if unsent:
        problems.append(f"re-run left e-mail {unsent}")
    return problems, dict(Counter(copies.values()))


# --------------------------------------------------------------------------------------- the modes
def stops(args: argparse.Namespace, workdir: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    expected = build_corpus(workdir / "corpus", args.acquisitions)
    logs = workdir / "logs"
    config = write_config(workdir / "stops.yml", "Stops", args.workers, None)
    say("an uninterrupted run, to measure how long a run takes")
    reference = run_once(
        fresh_copy(workdir / "corpus", workdir / "reference"), config, env, logs, "reference"
    )
    say(f"uninterrupted: {reference.seconds} s, exit {reference.code}")
    rng = random.Random(args.seed)
    trials: list[dict[str, Any]] = []
    for name in args.signals:
        for k in attempts(args.trials, trials, name):
            tag = f"{name}-{k:02d}"
            root = fresh_copy(workdir / "corpus", workdir / "trials" / tag)
            moment = stop_moment(rng, reference, len(expected))
            killed = run_once(root, config, env, logs, f"{tag}-stopped", moment=moment, sig=SIGNALS[name])
            recorded = len(recorded_results(root))
            rerun = run_once(root, config, env, logs, f"{tag}-rerun")
            problems = check_results(root, expected, killed, rerun)
            trial = {
                "trial": tag,
                "signal": name,
                "signalled": killed.signalled_at is not None,
                "after_results": moment.after_rows,
                "then_s": round(moment.then, 2),
                "at_s": killed.signalled_at,
                "stopped_exit": killed.code,
                "exit_after_signal_s": killed.exit_after_signal,
                "recorded_before_rerun": recorded,
                "rerun_exit": rerun.code,
                "rerun_results": len((rerun.summary or {}).get("results", [])),
                "left_behind": killed.left_behind + rerun.left_behind,
                "last_process_gone_s": killed.last_process_gone_s,
                "problems": problems,
                "reference_s": reference.seconds,
            }
            say(f"{tag}: {'; '.join(problems) or 'ok'}  {trial}")
            trials.append(trial)
    return trials


def mail(args: argparse.Namespace, workdir: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    from tests.mailbox import Mailbox

    expected = build_corpus(workdir / "corpus", args.acquisitions)
    logs = workdir / "logs"
    box = Mailbox(after_keeping=lambda _: time.sleep(args.reply_delay))
    box.start()
    try:
        block = f"stop-trials-{os.getpid()}"
        setup = subprocess.run(
            [PYTHON, "-m", "blocks.setup", "email", "--name", block, "--server", "127.0.0.1", "--port",
             str(box.port), "--security", "none"],
            cwd=REPO, env={**env, "LINAC_QA_SMTP_PASSWORD": ""}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if setup.returncode != 0:
            raise SystemExit(f"could not make the e-mail block: {setup.stderr[-2000:]}")
        email = {
            "credentials-block": block,
            "from": "qa@clinic.test",
            "recipients": ["physics@clinic.test"],
            "retries": 0,
            "resend-unknown-after-minutes": 0,
        }
        say("an uninterrupted run, to measure when its last verdict comes and when it ends")
        config = write_config(workdir / "mail-reference.yml", "Reference", args.workers, email)
        root = fresh_copy(workdir / "corpus", workdir / "reference-mail")
        reference = run_once(root, config, env, logs, "reference-mail")
        n = len(expected)
        before_last, last = reference.verdict_times[n - 2], reference.verdict_times[n - 1]
        say(f"uninterrupted: last verdicts at {before_last:.1f}, {last:.1f} s; exit {reference.seconds} s")
        rng = random.Random(args.seed)
        trials: list[dict[str, Any]] = []
        for k in attempts(args.trials, trials, "mail"):
            tag = f"mail-{k:02d}"
            unit = f"Trial-{k:02d}"
            config = write_config(workdir / f"{tag}.yml", unit, args.workers, email)
            root = fresh_copy(workdir / "corpus", workdir / "trials" / tag)
            # From the last verdict but one to a moment past the end of the reference run.
            moment = Moment(n - 1, rng.uniform(0, reference.seconds - before_last + 1))
            killed = run_once(root, config, env, logs, f"{tag}-killed", moment=moment, sig=signal.SIGKILL)
            phase = kill_phase(len(recorded_results(root)), len(expected), mail_states(root), killed)
            delivered_before = len(of_unit(box.received, unit))
            rerun = run_once(root, config, env, logs, f"{tag}-rerun")
            received = of_unit(box.received, unit)
            problems = check_results(root, expected, killed, rerun)
            mail_problems, copies = check_mail(expected, received, rerun)
            trial: dict[str, Any] = {
                "trial": tag,
                "signal": "mail",
                "signalled": killed.signalled_at is not None,
                "at_s": killed.signalled_at,
                "after_last_verdict_s": after_last_verdict(killed, n),
                "phase": phase,
                "killed_exit": killed.code,
                "delivered_before_rerun": delivered_before,
                "delivered": len(received),
                "copies": copies,
                "rerun_exit": rerun.code,
                "rerun_notifications": [n["status"] for n in (rerun.summary or {}).get("notifications", [])],
                "possibly_twice": any(
                    "possibly delivered twice" in n["detail"]
                    for n in (rerun.summary or {}).get("notifications", [])
                ),
                "problems": problems + mail_problems,
                "reference_s": reference.seconds,
            }
            say(f"{tag}: {'; '.join(trial['problems']) or 'ok'}  {trial}")
            trials.append(trial)
        return trials
    finally:
        box.stop()


def attempts(wanted: int, trials: list[dict[str, Any]], signal_name: str) -> Iterator[int]:
    """Trial numbers until `wanted` trials of this signal were really signalled (at most three
    times as many): the list is read afresh before each one."""
    for k in range(3 * wanted):
        if sum(t["signalled"] for t in trials if t["signal"] == signal_name) >= wanted:
            return
        yield k


def stop_moment(rng: random.Random, reference: Run, n: int) -> Moment:
    """Uniform over the run as the reference run spent it: before its first verdict (start-up,
    discovery, the first analyses), between two verdicts, or after the last one (the end)."""
    times = [0.0, *reference.verdict_times[:n], reference.seconds]
    at = rng.uniform(0, reference.seconds)
    rows = max(i for i, t in enumerate(times[:-1]) if t <= at)
    return Moment(rows, at - times[rows])


def after_last_verdict(run: Run, n: int) -> float | None:
    """How long after its last verdict the run was killed; None: before it, or not killed."""
    if run.signalled_at is None or len(run.verdict_times) < n:
        return None
    return round(run.signalled_at - run.verdict_times[n - 1], 2)


def of_unit(received: list[Any], unit: str) -> list[Any]:
    return [r for r in received if str(r.message["Subject"]).startswith(f"{unit} QA")]


def kill_phase(rows: int, total: int, mail_states: list[str], killed: Run) -> str:
    if killed.signalled_at is None:
        return "ended before the kill"
    if rows < total:
        return "analysing"
    if not mail_states:
        return "recorded, e-mail not written"
    if "sending" in mail_states:
        return "handed to the server, no answer"
    if "pending" in mail_states:
        return "e-mail written, not sent"
    return "e-mail sent"


def table(trials: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[t[c] if c != "problems" else ("; ".join(t[c]) or "ok") for c in columns] for t in trials]
    return markdown_table(columns, cells)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = (args.workdir or Path(tempfile.gettempdir()) / "linac-qa-stop-trials").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    server = None
    api = None if args.api == "none" else args.api
    if args.api is None:
        say("starting prefect server on 127.0.0.1")
        server, api = start_server(workdir)
    # Without a server, each run's temporary one keeps its database here.
    env = flow_env(workdir, api, home="prefect-home-temporary")
    started = time.monotonic()
    load = load_average()
    try:
        if args.mode == "stops":
            trials = stops(args, workdir, env)
            columns = ["trial", "at_s", "stopped_exit", "exit_after_signal_s", "last_process_gone_s",
                       "recorded_before_rerun", "rerun_exit", "rerun_results", "problems"]  # fmt: skip
        else:
            trials = mail(args, workdir, env)
            columns = ["trial", "after_last_verdict_s", "phase", "killed_exit", "delivered_before_rerun",
                       "delivered", "copies", "possibly_twice", "rerun_notifications",
                       "problems"]  # fmt: skip
    finally:
        if server is not None:
            stop_server(server)
    passed = sum(not t["problems"] for t in trials)
    signalled = sum(t["signalled"] for t in trials)
    figures = {
        "mode": args.mode,
        "acquisitions": args.acquisitions,
        "trials": trials,
        "passed": passed,
        "total": len(trials),
        "signalled": signalled,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "load_average_at_start": load,
        "load_average_at_end": load_average(),
        "api": "temporary server per run" if api is None else "running server",
    }
    (workdir / f"figures-{args.mode}.json").write_text(json.dumps(figures, indent=1, default=str))
    print(table(trials, columns))
    print(
        f"\n{passed}/{len(trials)} trials passed, {signalled} of them signalled, in {figures['minutes']} min"
    )
    print(f"figures in {workdir}")
    return 0 if passed == len(trials) else 1


if __name__ == "__main__":
    raise SystemExit(main())
