"""The installed `linac-qa` command and the help of every command it runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.console import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
# What looks like a file of the repository in a help text: `docs/design.md`, `deployments/machines.yml`.
REPO_PATH = re.compile(
    r"\b((?:docs|deployments|flows|blocks|linac_qa|benchmarks)/[\w./-]*\w\.(?:md|yml|yaml|py))"
)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_lists_its_exit_statuses_and_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        main([command, "--help"])
    assert ended.value.code == 0
    text = capsys.readouterr().out
    assert "exit status" in text and re.search(r"^examples?:$", text, re.MULTILINE), text
    for path in REPO_PATH.findall(text):
        assert (ROOT / path).exists(), f"{command} --help names {path}, which the repository lacks"


def test_the_installed_command_runs_each_entry_point(tmp_path: Path) -> None:
    script = shutil.which("linac-qa", path=str(Path(sys.executable).parent))
    assert script, "linac-qa is not installed beside this Python: pip install -e ."
    listed = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and all(name in listed.stdout for name in COMMANDS)
    unknown = subprocess.run([script, "analyse"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown command 'analyse'" in unknown.stderr
    # A real command through it: an empty demo folder, then a dry run (no Prefect needed).
    demo = subprocess.run(
        [script, "demo", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    dry = subprocess.run(
        [script, "process", str(tmp_path / "demo"), "--dry-run"], capture_output=True, text=True, timeout=300
    )
    assert dry.returncode == 0 and "dry run:" in dry.stdout, dry.stderr[-2000:]
