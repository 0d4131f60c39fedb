"""Exit statuses and the promises of --dry-run (docs/design.md section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linac_qa.testing import synthetic
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("config_text", "key"),
    [
        ("general:\n  unit: TB1\n  colour: red\n", "general.colour"),
        (
            "picket-fence:\n  analysis:\n    tolerance: 0.5\n    max_leaves: 3\n",
            "picket-fence.analysis.max_leaves",
        ),
    ],
)
def test_bad_config_exits_2_naming_the_key_before_any_work(
    tmp_path: Path, config_text: str, key: str
) -> None:
    data = tmp_path / "qa"
    synthetic.starshot(data / "RI.QA.Starshot_A.dcm")
    cfg = tmp_path / "bad.yml"
    cfg.write_text(config_text)
    run = run_cli(data, "--config", cfg, "--json")
    assert run.code == 2
    assert key in run.stderr and str(cfg) in run.stderr
    assert run.stdout == ""
    assert not (data / ".linac-qa").exists()


def test_missing_directory_exits_2(tmp_path: Path) -> None:
    run = run_cli(tmp_path / "not-mounted")
    assert run.code == 2 and "directory not found" in run.stderr
    assert not (tmp_path / "not-mounted").exists()


def test_dry_run_says_what_and_as_what_and_writes_nothing(tmp_path: Path, quick_config: Path) -> None:
    data = tmp_path / "qa"
    synthetic.picket_fence(data / "RI.QA.PF_A.dcm")
    synthetic.png_image(data / "team photo.png")
    before = sorted(p.name for p in data.rglob("*"))
    run = run_cli(data, "--config", quick_config, "--dry-run", "--json")
    assert run.code == 0, run.stderr
    plan = {tuple(row["files"]): row for row in json.loads(run.stdout)["plan"]}
    assert plan[("RI.QA.PF_A.dcm",)]["analysis"] == "picket-fence"
    assert plan[("team photo.png",)]["would"] == "ignored"
    assert sorted(p.name for p in data.rglob("*")) == before


def test_dry_run_names_every_file_counts_what_is_done_and_has_a_runs_document(
    tmp_path: Path, quick_config: Path
) -> None:
    data = tmp_path / "qa"
    images = synthetic.winston_lutz_set(data / "WL_2024")
    synthetic.picket_fence(data / "RI.QA.PF_A.dcm")
    (data / "RI.QA.PF_A_analysis.txt").write_text("an earlier run's output\n", encoding="utf-8")
    text = run_cli(data, "--config", quick_config, "--dry-run")
    assert text.code == 0, text.stderr
    assert f"and {len(images) - 5} more" in text.stdout  # one set: 5 named, then the count of the rest
    assert "1 our own outputs" in text.stdout.splitlines()[-1], text.stdout
    doc = run_cli(data, "--config", quick_config, "--dry-run", "--json").summary
    real_keys = {
        "directory",
        "unit",
        "started",
        "finished",
        "results",
        "skipped",
        "notifications",
        "warnings",
    }
    assert real_keys <= set(doc) and doc["dry_run"] is True and doc["plan"]
    assert doc["skipped"]["own-output"] == 1 and doc["skipped"]["done"] == 0
