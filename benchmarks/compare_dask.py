"""The Dask path against the local one on a whole corpus: same verdicts?

    python benchmarks/compare_dask.py [--corpus DIR] [--workdir DIR] [--workers 2]

Copies the corpus twice (default: the acceptance corpus of ../shared/corpus, else the project's demo
folder), runs `python -m flows.process --json` on one copy with local worker processes and on the
other with `general.executor.dask-address` pointing at a `LocalCluster` on 127.0.0.1 (each run with
a temporary Prefect server and a PREFECT_HOME of its own in the workdir), and compares (files,
analysis, status, reason) of every result. Prints both times and any difference; exit 1 when the
verdicts differ.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import REPO, acceptance_corpus, flow_env, process_command


def run(directory: Path, config: Path, workdir: Path) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    proc = subprocess.run(
        process_command(directory, config),
        cwd=REPO,
        env=flow_env(workdir),
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"flows.process failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, json.loads(proc.stdout)


def verdicts(summary: dict[str, Any]) -> dict[tuple[str, ...], tuple[Any, ...]]:
    return {tuple(r["files"]): (r["analysis"], r["status"], r["reason"]) for r in summary["results"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, help="an existing corpus to copy (default: build one)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/linac-qa-compare-dask"))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    from distributed import LocalCluster

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    source = args.corpus or args.workdir / "corpus"
    if args.corpus is None:
        acceptance_corpus(source)
    local, remote = args.workdir / "local", args.workdir / "dask"
    ignore = shutil.ignore_patterns(".linac-qa", "*_analysis.*")
    shutil.copytree(source, local, ignore=ignore)
    shutil.copytree(source, remote, ignore=ignore)
    with LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        plain = args.workdir / "local.yml"
        plain.write_text(f"general:\n  settle-seconds: 0\n  workers: {args.workers}\n", encoding="utf-8")
        on_dask = args.workdir / "dask.yml"
        on_dask.write_text(
            f"general:\n  settle-seconds: 0\n  executor:\n    dask-address: {cluster.scheduler_address}\n",
            encoding="utf-8",
        )
        local_s, ours = run(local, plain, args.workdir)
        dask_s, theirs = run(remote, on_dask, args.workdir)
    a, b = verdicts(ours), verdicts(theirs)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    counts = {s: sum(v[1] == s for v in a.values()) for s in ("passed", "failed", "error", "ignored")}
    print(f"results: {len(a)} local, {len(b)} dask; local verdicts {counts}")
    print(f"time: local {local_s:.1f} s, dask {dask_s:.1f} s")
    for key in differ:
        print(f"DIFFERENT {key[0]}: local {a.get(key)} / dask {b.get(key)}")
    print("same verdicts" if not differ else f"{len(differ)} verdict(s) differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
