"""What the benchmarks share: where the repository and the acceptance corpus are, how a run of
`python -m flows.process` is started (its command line and its environment, with a Prefect home of
its own), the corpora, reading a ledger that runs are writing, the machine's load, progress lines
and tables."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the scripts run as `python benchmarks/NAME.py`, from anywhere
    sys.path.insert(0, str(REPO))

from linac_qa.model import AnalysisResult  # noqa: E402
from linac_qa.notify.outbox import Outbox  # noqa: E402
from linac_qa.records.ledger import STATE_DIR, Ledger  # noqa: E402

PYTHON = sys.executable
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
# A corpus is a drop that arrived earlier: older than general.settle-seconds (30 s by default).
SETTLED_AGE_SECONDS = 3600
T = TypeVar("T")


def say(text: str, stream: TextIO | None = None) -> None:
    """A progress line, timed (standard error unless told: standard output is for the figures)."""
    print(f"[{dt.datetime.now():%H:%M:%S}] {text}", file=stream or sys.stderr, flush=True)


# ------------------------------------------------------------------ running the product
def flow_env(
    workdir: Path, api: str | None = None, *, repo: Path = REPO, home: str = "prefect-home"
) -> dict[str, str]:
    """The environment of a run: this checkout (or `repo`), PREFECT_API_URL only when `api` is given
    (else a temporary server, as for a user who has none running), and a PREFECT_HOME of its own in
    the workdir, so that other jobs on the machine neither share nor lock its database."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.pop("LINAC_QA_CRASH_AT", None)  # a fault to inject is a test's business, never a benchmark's
    if api:
        env["PREFECT_API_URL"] = api
    env["PREFECT_HOME"] = str(workdir / home)
    env["PYTHONPATH"] = str(repo)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def process_command(directory: Path, config: Path | None = None) -> list[str]:
    """`python -m flows.process DIR --json [--config CFG]`, as cron or a user runs it."""
    return [PYTHON, "-m", "flows.process", str(directory), "--json"] + (
        ["--config", str(config)] if config else []
    )


# ------------------------------------------------------------------ corpora
def settle(folder: Path) -> None:
    """Backdate every file, as a drop that arrived an hour ago (no waiting for settle-seconds)."""
    when = time.time() - SETTLED_AGE_SECONDS
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (when, when))


def acceptance_corpus(target: Path, *, scale: int = 1, seed: int = 0, no_cbct: bool = False) -> str:
    """The acceptance corpus (`../shared/corpus/make_corpus.py`) when that folder exists beside the
    repository, else the project's demo drop, one copy per `scale` step; settled. Returns which."""
    shutil.rmtree(target, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if (SHARED_CORPUS / "make_corpus.py").is_file():
        cmd = [PYTHON, str(SHARED_CORPUS / "make_corpus.py"), str(target), "--scale", str(scale)]
        cmd += ["--seed", str(seed), "--force", "-q"] + (["--no-cbct"] if no_cbct else [])
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL, env=env)
        source = "make_corpus.py"
    else:  # a fresh clone alone
        for i in range(max(1, scale)):
            subprocess.run(
                [PYTHON, "-m", "linac_qa.testing.demo", str(target / f"night-{i + 1:02d}"), "--force"],
                check=True,
                cwd=REPO,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        source = "linac_qa.testing.demo"
    settle(target)
    return source


# ------------------------------------------------------------------ the ledger runs write
def read_ledger(directory: Path, read: Callable[[Ledger], T], empty: T) -> T:
    """`read` of the ledger in `directory`, opened read-only; `empty` while a run has not yet
    created it or its tables."""
    path = directory / STATE_DIR / "ledger.sqlite"
    if not path.exists():
        return empty
    try:
        ledger = Ledger(path, read_only=True)
    except sqlite3.Error:
        return empty
    try:
        return read(ledger)
    except sqlite3.Error:  # created, not yet its tables
        return empty
    finally:
        ledger.close()


def recorded_results(directory: Path) -> list[AnalysisResult]:
    return read_ledger(directory, Ledger.results, [])


def run_counts(directory: Path) -> tuple[int, int]:
    """(runs started, runs finished) in the ledger of `directory`."""
    return read_ledger(directory, Ledger.run_counts, (0, 0))


def mail_states(directory: Path) -> list[str]:
    """The status of every message in the ledger of `directory`, in sending order."""
    return read_ledger(directory, lambda ledger: [m.status for m in Outbox(ledger).all()], [])


# ------------------------------------------------------------------ the machine
def load_average() -> float:
    """The 1-minute load average: other work on the machine stretches every wall time, and this
    is how a figure taken on a busy machine is recognised."""
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------ tables
def aligned(rows: Sequence[tuple[str, str]]) -> list[str]:
    """`label  value` lines, the values in one column."""
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
