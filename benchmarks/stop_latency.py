"""How long a stop takes: SIGTERM or SIGINT to a running `python -m flows.process` until its whole
process tree (the run, its analysis workers, Prefect's temporary server, anything else it started)
is gone (issue 13, point 11).

    python benchmarks/stop_latency.py [--acquisitions 8] [--after 5] [--signals TERM,INT]
                                      [--to main,group] [--trials 1] [--workdir DIR] [--api URL]

It builds a folder of synthetic acquisitions (starshots, picket fences, open fields), then for each
signal, target and trial: copies it, starts the command line on the copy exactly as a user would
(no PREFECT_API_URL unless `--api` gives one, so Prefect starts its temporary server), waits until
the run has found its files (the flow's "new file(s)" log line) and `--after` seconds more, so that
analyses are running, and sends the signal:

- `main`: to the run's process alone (`kill PID`, a cancel from Prefect's runner);
- `group`: to its whole process group (Ctrl-C on a terminal, `systemctl stop` with systemd's
  default KillMode=control-group, a container stopping).

The process tree is sampled every 0.05 s from the start, so that every process the run started is
known; the figure is the time from the signal until the last of them has exited. Also reported:
when the run's own process exited, its exit status, how many acquisitions its ledger recorded and
whether the stop left any process behind (after 120 s the rest is killed and counted).

PREFECT_HOME is a folder of the workdir (created by one warm-up run), so that other jobs on the
machine neither share nor lock its database. Figures go to `WORKDIR/stop_latency.json`, each run's
standard error to `WORKDIR/logs/`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from harness import REPO, flow_env, load_average, process_command, recorded_results, say
from process_tree import TreeSampler

SAMPLE_SECONDS = 0.05
GIVE_UP_SECONDS = 120.0
STARTED_MARK = "new file(s) in"  # the flow's log line once discovery is done


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--acquisitions", type=int, default=8)
    p.add_argument("--after", type=float, default=5.0, help="seconds after discovery to send the signal")
    p.add_argument("--signals", default="TERM,INT", help="comma-separated: TERM, INT")
    p.add_argument("--to", default="main,group", help="comma-separated: main, group")
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--workdir", type=Path)
    p.add_argument("--api", metavar="URL", help="PREFECT_API_URL (default: a temporary server per run)")
    p.add_argument("--repo", type=Path, default=REPO, help="checkout to run (default: this one), to compare")
    args = p.parse_args(argv)
    args.signals = [getattr(signal, f"SIG{s.strip().upper()}") for s in args.signals.split(",") if s.strip()]
    args.to = [t.strip() for t in args.to.split(",") if t.strip()]
    if any(t not in ("main", "group") for t in args.to):
        p.error("--to: main and/or group")
    return args


def build_corpus(folder: Path, n: int) -> None:
    from linac_qa.testing import synthetic

    makers: list[tuple[str, Callable[..., Path]]] = [
        ("RI.QA.Starshot_{i:03d}.dcm", synthetic.starshot),
        ("RI.QA.PF_{i:03d}.dcm", synthetic.picket_fence),
        ("RI.QA.Open_Field_6X_{i:03d}.dcm", synthetic.open_field),
    ]
    for i in range(n):
        name, make = makers[i % len(makers)]
        make(folder / name.format(i=i), seed=i)


def trial(
    corpus: Path, workdir: Path, config: Path, sig: int, to: str, after: float, env: dict[str, str], n: int
) -> dict[str, Any]:
    repo = env["PYTHONPATH"]
    folder = workdir / f"run-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(corpus, folder)
    log_path = workdir / "logs" / f"{n}-{signal.Signals(sig).name}-{to}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            process_command(folder, config),
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group, so that `group` reaches the run's tree only
        )
        tree = TreeSampler(psutil.Process(proc.pid), "run")
        start = time.monotonic()
        discovered = None
        signalled = None
        main_exit = None
        roles: list[str] = []
        while True:
            tree.follow()
            now = time.monotonic()
            if main_exit is None and proc.poll() is not None:
                main_exit = now
            if discovered is None and STARTED_MARK in log_path.read_text(errors="replace"):
                discovered = now
            if signalled is None and discovered is not None and now - discovered >= after:
                roles = sorted(tree.role(p) for p in tree.alive())
                if to == "main":
                    os.kill(proc.pid, sig)
                else:
                    os.killpg(proc.pid, sig)
                signalled = now
            if main_exit is not None and signalled is None:
                break  # finished before the signal: too few acquisitions for --after
            if signalled is not None and now - signalled > GIVE_UP_SECONDS:
                break
            if signalled is not None and not tree.alive():
                break
            time.sleep(SAMPLE_SECONDS)
    gone = time.monotonic()
    left, _ = tree.end_outlivers(grace=0)
    proc.wait()
    result: dict[str, Any] = {
        "signal": signal.Signals(sig).name,
        "to": to,
        "signalled_after_start_s": round(signalled - start, 1) if signalled else None,
        "tree_at_signal": roles,
        "stop_seconds": round(gone - signalled, 2) if signalled else None,
        "run_exit_seconds": round(main_exit - signalled, 2) if signalled and main_exit else None,
        "exit_status": proc.returncode,
        "recorded": len(recorded_results(folder)),
        "left_behind": left,
        "log": str(log_path),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="linac-qa-stop-"))
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = workdir / "corpus"
    if not corpus.exists():
        say(f"building {args.acquisitions} acquisitions in {corpus}")
        build_corpus(corpus, args.acquisitions)
    config = workdir / "config.yml"
    config.write_text("general:\n  settle-seconds: 0\n", encoding="utf-8")
    env = flow_env(workdir, args.api, repo=args.repo)
    empty = workdir / "empty"
    empty.mkdir(exist_ok=True)
    say("warm-up run (creates the Prefect database)")
    subprocess.run(process_command(empty, config), cwd=args.repo, env=env, capture_output=True, check=False)
    results = []
    n = 0
    for sig in args.signals:
        for to in args.to:
            for _ in range(args.trials):
                n += 1
                r = trial(corpus, workdir, config, sig, to, args.after, env, n)
                results.append(r)
                say(
                    f"{r['signal']} to {r['to']}: run exited {r['run_exit_seconds']} s, tree gone "
                    f"{r['stop_seconds']} s after the signal "
                    f"(sent {r['signalled_after_start_s']} s after start; {', '.join(r['tree_at_signal'])}), "
                    f"exit {r['exit_status']}, {r['recorded']} recorded, "
                    f"left behind: {r['left_behind'] or 'none'}",
                    sys.stdout,
                )
    figures = {"load_average": load_average(), "cores": os.cpu_count(), "trials": results}
    (workdir / "stop_latency.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    say(f"figures in {workdir / 'stop_latency.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
