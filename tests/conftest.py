"""What unit and end-to-end tests share: a helper that runs the command line in a subprocess exactly
as a user or cron would, a quick config, a Dask `LocalCluster`, and the check, when the session
finishes, that no input of an end-to-end run changed. The Prefect server is in tests/e2e/conftest.py."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from distributed import LocalCluster

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def run_cli(
    *args: str | Path,
    api: str | None = None,
    timeout: float = 600,
    module: str = "flows.process",
    env_overrides: dict[str, str | None] | None = None,
) -> CliRun:
    """`python -m MODULE ARGS`; `env_overrides` sets variables, or removes those given as None."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if api:
        env["PREFECT_API_URL"] = api
    for name, value in (env_overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    proc = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def quick_config(tmp_path: Path) -> Path:
    """Fixtures are written moments before the run: no settling wait."""
    cfg = tmp_path / "config.yml"
    cfg.write_text("general:\n  settle-seconds: 0\n", encoding="utf-8")
    return cfg


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A Dask cluster of two spawned worker processes on 127.0.0.1."""
    distributed = pytest.importorskip("distributed")
    os.environ.setdefault("MPLBACKEND", "Agg")  # inherited by the spawned workers
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as lc:
        yield lc


# --------------------------------------------------------------------------- inputs never change
# Acceptance of issue 8: every input file of the end-to-end runs is byte-identical at the end of the
# session. End-to-end tests register their input folders right after building them; when the
# session finishes, `pytest_sessionfinish` compares and fails the run if any changed.
OWN_OUTPUT_MARK = "_analysis."
REGISTERED_INPUTS: dict[Path, dict[str, str]] = {}


def input_checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every input under `root`: not our outputs, not `.linac-qa/`, not temporaries. Links
    are described, never followed; named pipes are not opened."""
    from linac_qa.records.ledger import STATE_DIR
    from linac_qa.records.outputs import is_temporary

    found: dict[str, str] = {}
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d != STATE_DIR]
        for name in [*filenames, *(d for d in dirnames if (Path(folder) / d).is_symlink())]:
            path = Path(folder) / name
            if OWN_OUTPUT_MARK in name or is_temporary(name):
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}"
            elif not path.is_file():
                found[rel] = "special file"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def register_inputs(root: Path) -> None:
    REGISTERED_INPUTS[Path(root)] = input_checksums(Path(root))


def changed_inputs() -> dict[str, dict[str, tuple[str, str | None]]]:
    """Per registered folder, each file that changed or vanished: (checksum then, checksum now).
    Tests may add files after registering (new arrivals); none registered may change or vanish."""
    changed = {}
    for root, before in REGISTERED_INPUTS.items():
        after = input_checksums(root)
        differ = {rel: (sha, after.get(rel)) for rel, sha in before.items() if after.get(rel) != sha}
        if differ:
            changed[str(root)] = differ
    return changed


def inputs_problem() -> str | None:
    """What is wrong with the inputs registered in this session, or None (also when none were)."""
    if not REGISTERED_INPUTS:
        return None
    if sum(len(files) for files in REGISTERED_INPUTS.values()) == 0:
        return "the registered input folders hold no file: nothing was checked"
    changed = changed_inputs()
    if not changed:
        return None
    lines = ["an end-to-end run modified, moved or deleted its inputs (issue 8: originals are sacred):"]
    for root, files in changed.items():
        lines.append(f"  {root}")
        lines += [f"    {rel}: {then} -> {now or 'gone'}" for rel, (then, now) in files.items()]
    return "\n".join(lines)


@pytest.hookimpl(tryfirst=True)  # before temporary folders may be removed
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Acceptance of issue 8, checked whatever the order of the tests: a changed input fails the run."""
    problem = inputs_problem()
    if problem is None:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.line("")  # the progress line is not ended yet
        reporter.write_sep("=", "inputs untouched: FAILED", red=True, bold=True)
        reporter.write_line(problem)
    else:
        print(problem, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
