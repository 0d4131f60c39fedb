"""A run that cannot be done is not a QA result (issue 12, point 12): the command line with Prefect
out of reach, its temporary server given 1 s to start, or a PREFECT_API_URL where nothing listens.
A run's processes ending with it: tests/e2e/test_run_lifetime.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linac_qa.testing import synthetic
from tests.conftest import CliRun, free_port, run_cli


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def assert_not_done(run: CliRun, data: Path, before: list[str], reason: str) -> None:
    assert run.code == 4, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    said = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and reason in said[0], said
    assert listing(data) == before  # no .linac-qa state folder, no output


def test_a_temporary_server_that_cannot_start_exits_4_with_a_json_error(
    tmp_path: Path, quick_config: Path
) -> None:
    data = tmp_path / "qa"
    synthetic.starshot(data / "RI.QA.Starshot_A.dcm")
    before = listing(data)
    run = run_cli(
        data,
        "--config",
        quick_config,
        "--json",
        env_overrides={"PREFECT_API_URL": None, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "1"},
    )
    assert_not_done(run, data, before, "temporary API server did not start within 1 s, 2 tries")
    documents = run.stdout.splitlines()
    assert len(documents) == 1
    doc = json.loads(documents[0])
    assert doc["results"] == [] and doc["directory"] == str(data.resolve())
    assert "did not start within 1 s" in doc["error"]


@pytest.mark.parametrize("module", ["flows.process", "flows.watch"])
def test_an_unreachable_prefect_api_exits_4(tmp_path: Path, quick_config: Path, module: str) -> None:
    data = tmp_path / "qa"
    synthetic.starshot(data / "RI.QA.Starshot_A.dcm")
    before = listing(data)
    url = f"http://127.0.0.1:{free_port()}/api"
    json_flag = ["--json"] if module == "flows.process" else []
    run = run_cli(data, "--config", quick_config, *json_flag, api=url, module=module)
    assert_not_done(run, data, before, f"the Prefect API at {url} (PREFECT_API_URL) could not be reached")
    if json_flag:
        doc = json.loads(run.stdout)
        assert doc["results"] == [] and url in doc["error"]
    else:
        assert run.stdout == ""
