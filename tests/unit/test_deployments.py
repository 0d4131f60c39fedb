"""Nightly deployments per linac without a server: machines.yml, the generated prefect.yaml and the
machine-config block. Both deployment paths on a real server are in tests/e2e/test_deployments.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.generate import prefect_yaml
from deployments.machines import (
    ENTRYPOINT,
    RECEIVE_ENTRYPOINT,
    REPORT_ENTRYPOINT,
    REVIEW_ENTRYPOINT,
    WATCH_ENTRYPOINT,
    load_machines,
    parse_machines,
)
from linac_qa.config import ConfigError, load_settings
from tests.conftest import ROOT

EXAMPLE = ROOT / "deployments" / "machines.yml"

# --------------------------------------------------------------------------- machines.yml


def machines_text(**overrides: Any) -> str:
    entry: dict[str, Any] = {
        "name": "truebeam1",
        "directory": "data/TrueBeam1",
        "config": "truebeam1.yml",
        "cron": "0 2 * * *",
        "timezone": "Europe/Berlin",
    }
    entry.update(overrides)
    return yaml.safe_dump({"machines": [{k: v for k, v in entry.items() if v is not None}]}, sort_keys=False)


def test_example_machines_file_is_valid_and_resolves_paths_against_its_folder() -> None:
    machines = load_machines(EXAMPLE)
    assert [m.deployment_name for m in machines.machines] == ["truebeam1-nightly", "clinac2-nightly"]
    truebeam1, clinac2 = machines.machines
    assert truebeam1.config == ROOT / "deployments" / "configs" / "truebeam1.yml"
    assert truebeam1.parameters() == {"directory": "/data/qa/TrueBeam1", "config": str(truebeam1.config)}
    assert clinac2.parameters() == {"directory": "/data/qa/Clinac2", "config_block": "clinac2"}
    assert (clinac2.retries, clinac2.retry_delay_seconds) == (3, 600)
    for config in (ROOT / "deployments" / "configs").glob("*.yml"):
        load_settings(config)  # the example configs are valid too


@pytest.mark.parametrize(
    ("overrides", "key", "hint"),
    [
        ({"crn": "0 2 * * *"}, "machines.0.crn", "allowed: name, directory, config, config-block, cron"),
        ({"cron": "0 25 * * *"}, "machines.0.cron", "not a valid cron expression"),
        ({"timezone": "Europe/Berlim"}, "machines.0.timezone", "unknown time zone 'Europe/Berlim'"),
        ({"config-block": "truebeam1"}, "machines.0.config-block", "not both"),
        ({"name": "TrueBeam 1"}, "machines.0.name", "lower-case letters"),
        ({"cron": None}, "machines.0.cron", "required"),
        ({"report-cron": "on the 1st"}, "machines.0.report-cron", "06:00 on the 1st"),
        ({"retries": -1}, "machines.0.retries", "greater than or equal to 0"),
        ({"receiver": {"ae-title": "QA", "port": 104}}, "machines.0.receiver.allowed-callers", "required"),
        (
            {"receiver": {"ae-title": "A\\B", "port": 104, "allowed-callers": ["EPID"]}},
            "machines.0.receiver.ae-title",
            "not an AE title",
        ),
        (
            {"receiver": {"ae-title": "QA", "port": 70000, "allowed-callers": ["EPID"]}},
            "machines.0.receiver.port",
            "less than or equal to 65535",
        ),
        (
            {
                "receiver": {
                    "ae-title": "QA",
                    "port": 104,
                    "allowed-callers": ["EPID"],
                    "allowed-addresses": ["ward 3"],
                }
            },
            "machines.0.receiver.allowed-addresses",
            "not an IP address or network",
        ),
        (
            {"directory": None, "receiver": {"ae-title": "QA", "port": 104, "allowed-callers": ["EPID"]}},
            "machines.0.directory",
            "required with receiver",
        ),
    ],
)
def test_machines_mistakes_name_file_line_and_key(
    tmp_path: Path, overrides: dict[str, Any], key: str, hint: str
) -> None:
    path = tmp_path / "machines.yml"
    path.write_text(machines_text(**overrides), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_machines(path)
    message = str(err.value)
    assert message.startswith(f"{path}, line ") and key in message and hint in message, message


def test_machines_file_level_mistakes(tmp_path: Path) -> None:
    twice = "machines:\n" + "".join(
        f"  - {{name: tb, cron: '0 2 * * *', timezone: UTC, directory: /d{i}}}\n" for i in range(2)
    )
    with pytest.raises(ConfigError, match=r"line 3: machines\.1\.name: 'tb' is listed twice"):
        parse_machines(twice, "m.yml", tmp_path)
    with pytest.raises(ConfigError, match="machines: must be a list"):
        parse_machines("machines: {}\n", "m.yml", tmp_path)
    with pytest.raises(ConfigError, match="line 1: workpool: unknown key; allowed: machines, work-pool"):
        parse_machines("workpool: x\nmachines: []\n", "m.yml", tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        load_machines(tmp_path / "nope.yml")


def test_serve_refuses_to_start_on_a_bad_config_or_without_a_server(tmp_path: Path, capsys: Any) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.serve import main

    (tmp_path / "truebeam1.yml").write_text("general:\n  settle-seconds: -1\n", encoding="utf-8")
    (tmp_path / "machines.yml").write_text(machines_text(), encoding="utf-8")
    assert main(["--machines", str(tmp_path / "machines.yml")]) == 2
    assert "truebeam1.yml, line 2: general.settle-seconds" in capsys.readouterr().err
    (tmp_path / "truebeam1.yml").write_text("general:\n  unit: TB1\n", encoding="utf-8")
    (tmp_path / "machines.yml").write_text(machines_text(directory=None), encoding="utf-8")
    assert main(["--machines", str(tmp_path / "machines.yml")]) == 2
    assert "machines.0.directory: required: " in capsys.readouterr().err
    (tmp_path / "machines.yml").write_text(machines_text(), encoding="utf-8")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["--machines", str(tmp_path / "machines.yml")]) == 2
    assert "PREFECT_API_URL is not set" in capsys.readouterr().err


# --------------------------------------------------------------------------- prefect.yaml


def test_committed_prefect_yaml_is_generated_from_machines_yml() -> None:
    from deployments.generate import main

    committed = (ROOT / "deployments" / "prefect.yaml").read_text(encoding="utf-8")
    assert main(["--check", str(ROOT / "deployments" / "prefect.yaml")]) == 0
    assert committed == prefect_yaml(load_machines(EXAMPLE)), (
        "deployments/prefect.yaml is stale: python -m deployments.generate > deployments/prefect.yaml"
    )


def test_prefect_yaml_registers_what_serve_serves() -> None:
    from deployments.serve import runner_deployments

    machines = load_machines(EXAMPLE)
    spec = yaml.safe_load(prefect_yaml(machines))["deployments"]
    served = runner_deployments(machines)
    assert [d["name"] for d in spec] == [d.name for d in served]
    watching = [m for m in machines.machines if m.watch]
    assert watching, "the example shows the watch option"
    nightly = len(machines.machines)
    watches = nightly + len(watching)
    for d, s, m in zip(spec[nightly:watches], served[nightly:watches], watching, strict=True):
        assert d["name"] == s.name == f"{m.name}-watch"
        assert d["entrypoint"] == s.entrypoint == WATCH_ENTRYPOINT
        assert d["schedules"] == [] and not s.schedules  # started once, runs until stopped
        assert s.parameters == m.parameters()
    receiving = [m for m in machines.machines if m.receiver]
    assert receiving, "the example shows the receiver option"
    receivers = watches + len(receiving)
    for d, s, m in zip(spec[watches:receivers], served[watches:receivers], receiving, strict=True):
        assert d["name"] == s.name == f"{m.name}-receiver"
        assert d["entrypoint"] == s.entrypoint == RECEIVE_ENTRYPOINT
        assert d["schedules"] == [] and not s.schedules
        assert d["parameters"] == s.parameters == m.receiver_parameters()
    reporting = [m for m in machines.machines if m.report_cron]
    assert reporting, "every machine has a monthly report by default"
    reports = receivers + len(reporting)
    for d, s, m in zip(spec[receivers:reports], served[receivers:reports], reporting, strict=True):
        assert d["name"] == s.name == f"{m.name}-monthly-report"
        assert d["entrypoint"] == s.entrypoint == REPORT_ENTRYPOINT
        assert (
            [(x["cron"], x["timezone"]) for x in d["schedules"]]
            == [("0 6 1 * *", m.timezone)]
            == [
                (x.schedule.cron, x.schedule.timezone)  # type: ignore[union-attr]
                for x in s.schedules or []
            ]
        )
        resolved = {k: str(ROOT / v) if k == "config" else v for k, v in d["parameters"].items()}
        assert resolved == s.parameters == {**m.parameters(), "timezone": m.timezone}
    for d, s, m in zip(spec[reports:], served[reports:], machines.machines, strict=True):
        assert d["name"] == s.name == f"{m.name}-review"  # every machine, beside its nightly run
        assert d["entrypoint"] == s.entrypoint == REVIEW_ENTRYPOINT
        assert d["schedules"] == [] and not s.schedules  # run from the UI
        assert s.parameters == m.parameters()
    for d, s, m in zip(spec[:nightly], served[:nightly], machines.machines, strict=True):
        assert d["entrypoint"] == s.entrypoint == ENTRYPOINT  # a module path, not a file path
        assert [(x["cron"], x["timezone"]) for x in d["schedules"]] == [
            (x.schedule.cron, x.schedule.timezone)  # type: ignore[union-attr]
            for x in s.schedules or []
        ]
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        assert s.concurrency_limit == 1 and s.concurrency_options is not None
        assert s.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert d["tags"] == s.tags
        # Same parameters; prefect.yaml writes paths inside the project relative to its root.
        resolved = {k: str(ROOT / v) if k == "config" else v for k, v in d["parameters"].items()}
        assert resolved == s.parameters == m.parameters()
        env = d["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_FLOWS_DEFAULT_RETRIES"] == str(m.retries)


# --------------------------------------------------------------------------- blocks and config


def test_machine_config_block_checks_its_yaml() -> None:
    from blocks.machine_config import MachineConfig, run_settings

    assert MachineConfig(yaml="general:\n  unit: Clinac2\n").settings("x").general.unit == "Clinac2"
    with pytest.raises(ConfigError, match=r"machine-config block, line 2: general\.colour: unknown key"):
        MachineConfig(yaml="general:\n  colour: red\n")
    with pytest.raises(ConfigError, match="not both"):
        run_settings("truebeam1.yml", "truebeam1")


def test_machine_config_command_checks_the_file_before_the_server(tmp_path: Path, capsys: Any) -> None:
    from blocks.setup import main

    bad = tmp_path / "clinac2.yml"
    bad.write_text("general:\n  colour: red\n", encoding="utf-8")
    assert main(["machine-config", "--name", "clinac2", "--file", str(bad)]) == 2
    assert f"{bad}, line 2: general.colour: unknown key" in capsys.readouterr().err


def test_load_settings_names_the_given_source() -> None:
    with pytest.raises(ConfigError, match=r"^block 'tb1', line 1: pickett-fence: unknown section"):
        load_settings(text="pickett-fence: {}\n", source="block 'tb1'")
