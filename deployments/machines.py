"""`deployments/machines.yml`: the linacs that get a nightly deployment (docs/design.md section 2).

Validated like the analysis config: kebab-case keys, unknown keys refused, and every mistake
reported with the file, the line and the key. Relative paths resolve against the machines file's
folder, so the file means the same thing whichever folder a command is started from.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError

from linac_qa.config import ConfigError, _validate, failer, parse_yaml, read_config_file, shown
from linac_qa.intake.dicom_receiver import ReceiverSettings
from linac_qa.sections import Section

# The flow every machine deploys, as a module path: a file-path entrypoint would load
# flows/process.py as a top-level module named `process` and break its package imports
# (docs/design.md section 8). Prefect's module-path form is dotted, without a colon.
ENTRYPOINT = "flows.process.process_directory"
WATCH_ENTRYPOINT = "flows.watch.watch_directory"
RECEIVE_ENTRYPOINT = "flows.receive.receive_dicom"
REPORT_ENTRYPOINT = "flows.monthly.monthly_report"
REVIEW_ENTRYPOINT = "flows.review_flow.review_qa"
DEFAULT_WORK_POOL = "linac-qa"

# A deployment name is `<name>-nightly` and appears in URLs and shell commands: keep it plain.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Machine(Section):
    name: Annotated[str, StringConstraints(max_length=64)]
    directory: Path | None = None
    config: Path | None = None
    config_block: str | None = None
    cron: str
    timezone: str
    work_pool: str | None = None
    tags: list[str] = Field(default_factory=list)
    # A network share that is not mounted yet at 02:00 is the usual transient fault: the run fails
    # with "directory not found" and is retried this many times, this far apart.
    retries: int = Field(default=2, ge=0, le=20)
    retry_delay_seconds: int = Field(default=300, ge=0, le=86400)
    description: str | None = None
    # Also a `<name>-watch` deployment of the watch flow: started by `deployments.serve` at start-up
    # (or with `prefect deployment run`), it analyses each acquisition minutes after it arrives.
    watch: bool = False
    # Also a `<name>-receiver` deployment: a DICOM receiver for this machine, started by serve.
    receiver: ReceiverSettings | None = None
    # When the `<name>-monthly-report` deployment writes and mails the previous month's QA report
    # (in `timezone`); None: no such deployment.
    report_cron: str | None = "0 6 1 * *"

    @property
    def deployment_name(self) -> str:
        return f"{self.name}-nightly"

    @property
    def watch_deployment_name(self) -> str:
        return f"{self.name}-watch"

    @property
    def receiver_deployment_name(self) -> str:
        return f"{self.name}-receiver"

    @property
    def review_deployment_name(self) -> str:
        return f"{self.name}-review"

    def parameters(self) -> dict[str, str]:
        """The flow parameters this machine's deployment passes (only those it sets)."""
        params: dict[str, str] = {}
        if self.directory is not None:
            params["directory"] = str(self.directory)
        if self.config is not None:
            params["config"] = str(self.config)
        if self.config_block is not None:
            params["config_block"] = self.config_block
        return params

    @property
    def report_deployment_name(self) -> str:
        return f"{self.name}-monthly-report"

    def report_parameters(self) -> dict[str, str]:
        """The nightly run's, and the time zone whose months (and times) the report shows."""
        return {**self.parameters(), "timezone": self.timezone}

    def describe_report(self, directory: str | None = None) -> str:
        where = directory or (str(self.directory) if self.directory else "general.directory")
        return f"Monthly QA report of {self.name} (the previous month): {where}"

    def receiver_parameters(self) -> dict[str, Any]:
        assert self.receiver is not None and self.directory is not None  # checked when loaded
        return self.receiver.parameters(self.name, self.directory)

    def summary(self) -> str:
        config = f"block '{self.config_block}'" if self.config_block else str(self.config or "defaults")
        return f"{self.name}: {self.directory or 'general.directory'}, config {config}"

    def describe(self, directory: str | None = None) -> str:
        """The deployment's description in the UI (`directory`: the path as the caller writes it)."""
        where = directory or (str(self.directory) if self.directory else "general.directory")
        return self.description or f"Nightly QA of {self.name}: {where}"

    def describe_receiver(self) -> str:
        return f"DICOM receiver of {self.name}: into {self.directory}/received"

    def describe_review(self, directory: str | None = None) -> str:
        where = directory or (str(self.directory) if self.directory else "general.directory")
        return f"QA review of {self.name}: {where} (Run, then approve, reject or comment)"

    def describe_watch(self, directory: str | None = None) -> str:
        where = directory or (str(self.directory) if self.directory else "general.directory")
        return f"Continual QA of {self.name}: {where}"


class Machines(Section):
    """The whole file: the machines and the work pool `prefect deploy` puts them on by default."""

    machines: list[Machine]
    work_pool: str = DEFAULT_WORK_POOL
    source: str = "<machines>"

    def pool_of(self, machine: Machine) -> str:
        return machine.work_pool or self.work_pool


def load_machines(path: str | os.PathLike[str]) -> Machines:
    """Read and check a machines file; every mistake is a ConfigError naming the file, line and key."""
    source = str(path)
    return parse_machines(read_config_file(path, source), source, Path(path).resolve().parent)


def parse_machines(text: str, source: str, folder: Path) -> Machines:
    raw, lines = parse_yaml(text, source)
    fail = failer(source, lines)
    allowed = ["machines", "work-pool"]
    for key in raw:
        if key not in allowed:
            raise fail((key,), f"unknown key; allowed: {', '.join(allowed)}")
    entries = raw.get("machines")
    if not isinstance(entries, list) or not entries:
        raise fail(("machines",), "must be a list with one entry per machine (name, directory, cron, ...)")
    work_pool = raw.get("work-pool", DEFAULT_WORK_POOL)
    if not isinstance(work_pool, str) or not work_pool.strip():
        raise fail(("work-pool",), f"must be a work pool name (got {shown(work_pool)})")

    machines: list[Machine] = []
    for i, entry in enumerate(entries):
        where = ("machines", str(i))
        if not isinstance(entry, dict):
            raise fail(where, "must be a mapping (name:, directory:, config:, cron:, timezone:)")
        machine = _validate(Machine, entry, where, fail)
        machines.append(_check_machine(machine, where, folder, fail))
        if machine.name in {m.name for m in machines[:-1]}:
            raise fail((*where, "name"), f"{machine.name!r} is listed twice; names must be unique")
    return Machines(machines=machines, work_pool=work_pool, source=source)


def _check_machine(m: Machine, where: tuple[str | int, ...], folder: Path, fail: Any) -> Machine:
    from prefect.client.schemas.schedules import CronSchedule

    if not _NAME.match(m.name):
        raise fail((*where, "name"), f"{shown(m.name)}: use lower-case letters, digits, '-' and '_' only")
    if m.config is not None and m.config_block is not None:
        raise fail((*where, "config-block"), "give either config (a file) or config-block, not both")
    if m.config_block is not None and not m.config_block.strip():
        raise fail((*where, "config-block"), "must name a machine-config block")
    try:
        zoneinfo.ZoneInfo(m.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise fail(
            (*where, "timezone"),
            f"unknown time zone {shown(m.timezone)}; use an IANA name such as Europe/Berlin",
        ) from None
    for key, cron in (("cron", m.cron), ("report-cron", m.report_cron)):
        try:
            # The schedule model the server stores: what it accepts is exactly what will run.
            if cron is not None:
                CronSchedule(cron=cron, timezone=m.timezone)
        except ValidationError:
            example = '"0 6 1 * *": 06:00 on the 1st' if key == "report-cron" else '"0 2 * * *": 02:00 daily'
            raise fail(
                (*where, key), f"not a valid cron expression: {shown(cron)} (e.g. {example})"
            ) from None
    if m.receiver is not None and m.directory is None:
        raise fail((*where, "directory"), "required with receiver: received files go to <directory>/received")
    updates: dict[str, Any] = {}
    if m.directory is not None:
        updates["directory"] = _resolve(m.directory, folder)
    if m.config is not None:
        updates["config"] = _resolve(m.config, folder)
    return m.model_copy(update=updates)


def _resolve(path: Path, folder: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else folder / path


def check_configs(machines: Machines, *, blocks: bool = False) -> None:
    """Load every machine's config file now (and, with `blocks`, its machine-config block from the
    server), so that a mistake stops `serve` at start-up instead of failing every night."""
    from blocks.machine_config import MachineConfig
    from linac_qa.config import load_settings

    for i, m in enumerate(machines.machines):
        if m.config is not None:
            settings, named = load_settings(m.config), str(m.config)
        elif m.config_block is not None and blocks:
            settings, named = MachineConfig.settings_of(m.config_block), f"block '{m.config_block}'"
        else:
            continue
        if m.directory is None and settings.general.directory is None:
            raise ConfigError(
                machines.source,
                f"machines.{i}.directory",
                f"required: {named} has no general.directory either",
            )
