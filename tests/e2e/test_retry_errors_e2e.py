"""Error retries through the real command line and flow: an analysis that timed out is retried once
the config gives it more time and appears as a new, passing result; a file that is still broken
waits for --retry-errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from linac_qa.testing import synthetic
from tests.conftest import register_inputs, run_cli

pytestmark = pytest.mark.e2e
QUICK = "general:\n  settle-seconds: 0\n"
STARSHOT, BROKEN = "RI.QA.Starshot_A.dcm", "RI.QA.PF_broken.dcm"


def test_errors_are_retried_after_a_config_change_or_on_request(tmp_path: Path, prefect_api: str) -> None:
    root = tmp_path / "qa"
    synthetic.starshot(root / STARSHOT, wobble_mm=0.1)
    (root / BROKEN).write_text("exported by mistake as text\n")
    register_inputs(root)
    hurried, usual = tmp_path / "hurried.yml", tmp_path / "usual.yml"
    hurried.write_text(QUICK + "  analysis-timeout-seconds: 0.01\n")
    usual.write_text(QUICK)

    def run(config: Path, *flags: str) -> dict[str, dict[str, object]]:
        cli = run_cli(root, "--config", config, "--json", *flags, api=prefect_api)
        assert cli.code in (0, 1), cli.stderr[-3000:]
        return {r["files"][0]: r for r in cli.summary["results"]}

    first = run(hurried)
    assert {f: r["status"] for f, r in first.items()} == {STARSHOT: "error", BROKEN: "error"}

    second = run(usual)  # the config changed: both errors are retried
    assert second[STARSHOT]["status"] == "passed" and second[STARSHOT]["outputs"]
    assert second[BROKEN]["status"] == "error"
    for result in second.values():
        (warning,) = result["warnings"]  # type: ignore[misc]
        assert warning.startswith("an earlier error retried: config "), warning

    assert run(usual) == {}  # still broken under the same release and config: left alone

    fourth = run(usual, "--retry-errors")
    assert list(fourth) == [BROKEN] and fourth[BROKEN]["status"] == "error"
    assert fourth[BROKEN]["warnings"] == ["an earlier error retried: --retry-errors"]
