"""Write `deployments/prefect.yaml` from `deployments/machines.yml`, so that the work-pool path
(`prefect deploy --all --prefect-file deployments/prefect.yaml`) registers exactly what
`python -m deployments.serve` serves. A test regenerates it and compares: the two cannot drift.

    python -m deployments.generate [--machines FILE] [--base DIR] > deployments/prefect.yaml
    python -m deployments.generate --check deployments/prefect.yaml

Relative paths are written relative to BASE (default: the project root), the folder to run
`prefect deploy` from: with no `pull:` section, `prefect deploy` records a pull step that makes the
folder it was run from the working directory of every flow run, on whichever host the worker runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from deployments.machines import (
    ENTRYPOINT,
    RECEIVE_ENTRYPOINT,
    REPORT_ENTRYPOINT,
    REVIEW_ENTRYPOINT,
    WATCH_ENTRYPOINT,
    Machine,
    Machines,
    load_machines,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MACHINES = PROJECT_ROOT / "deployments" / "machines.yml"

HEADER = """\
# Generated from {machines} by `python -m deployments.generate`: do not edit.
# Edit machines.yml and regenerate (tests/test_deployments.py fails when the two differ).
# Register on a process work pool, from the folder relative paths below start from (the project root):
#   prefect work-pool create {pool} --type process   (once)
#   prefect deploy --all --prefect-file {prefect_file}
#   prefect worker start --pool {pool}
# A `<name>-watch` deployment has no schedule: start it once with
#   prefect deployment run 'watch-directory/<name>-watch'
# and a `<name>-receiver` one (a DICOM receiver) with
#   prefect deployment run 'receive-dicom/<name>-receiver'
# A `<name>-monthly-report` deployment writes and e-mails the previous month's QA report on the 1st.
# A `<name>-review` deployment has no schedule either: a physicist runs it from the UI (the form
# asks for the reviewer, the decision, a comment and which results), or
#   prefect deployment run 'review-qa/<name>-review' --param reviewer="A. Physicist"
"""


def _path(path: Path, base: Path) -> str:
    """Relative to `base` when inside it (portable across checkouts), else as given."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def deployment(machine: Machine, machines: Machines, base: Path) -> dict[str, Any]:
    params: dict[str, Any] = dict(machine.parameters())
    for key in ("directory", "config"):
        if key in params:
            params[key] = _path(Path(params[key]), base)
    return {
        "name": machine.deployment_name,
        "entrypoint": ENTRYPOINT,
        "description": machine.describe(params.get("directory")),
        "tags": list(machine.tags),
        "parameters": params,
        "schedules": [{"cron": machine.cron, "timezone": machine.timezone, "active": True}],
        # One run at a time; a second one waits for the slot (see deployments.serve.one_at_a_time).
        "concurrency_limit": {"limit": 1, "collision_strategy": "ENQUEUE"},
        "work_pool": {
            "name": machines.pool_of(machine),
            # A worker loads the flow from its entrypoint, so the machine's flow retries reach it as
            # Prefect's default-retries settings in the flow run's environment.
            "job_variables": {
                "env": {
                    "PREFECT_FLOWS_DEFAULT_RETRIES": str(machine.retries),
                    "PREFECT_FLOWS_DEFAULT_RETRY_DELAY_SECONDS": str(machine.retry_delay_seconds),
                }
            },
        },
    }


def watch_deployment(machine: Machine, machines: Machines, base: Path) -> dict[str, Any]:
    """No schedule: started once (`prefect deployment run 'watch-directory/<name>-watch'`), it runs
    until cancelled; a second one exits at once (one watch per directory)."""
    nightly = deployment(machine, machines, base)
    return {
        "name": machine.watch_deployment_name,
        "entrypoint": WATCH_ENTRYPOINT,
        "description": machine.describe_watch(nightly["parameters"].get("directory")),
        "tags": nightly["tags"],
        "parameters": nightly["parameters"],
        "schedules": [],
        "work_pool": {"name": machines.pool_of(machine)},
    }


def receiver_deployment(machine: Machine, machines: Machines) -> dict[str, Any]:
    """No schedule, like the watch: started once, it receives until cancelled."""
    return {
        "name": machine.receiver_deployment_name,
        "entrypoint": RECEIVE_ENTRYPOINT,
        "description": machine.describe_receiver(),
        "tags": list(machine.tags),
        "parameters": machine.receiver_parameters(),
        "schedules": [],
        "work_pool": {"name": machines.pool_of(machine)},
    }


def report_deployment(machine: Machine, machines: Machines, base: Path) -> dict[str, Any]:
    """On the 1st of each month, the previous month's QA report (see deployments.serve.report_options)."""
    nightly = deployment(machine, machines, base)
    return {
        "name": machine.report_deployment_name,
        "entrypoint": REPORT_ENTRYPOINT,
        "description": machine.describe_report(nightly["parameters"].get("directory")),
        "tags": nightly["tags"],
        "parameters": {**nightly["parameters"], "timezone": machine.timezone},
        "schedules": [{"cron": machine.report_cron, "timezone": machine.timezone, "active": True}],
        "concurrency_limit": nightly["concurrency_limit"],
        "work_pool": {"name": machines.pool_of(machine)},
    }


def review_deployment(machine: Machine, machines: Machines, base: Path) -> dict[str, Any]:
    """No schedule and no concurrency limit: run from the UI, its form filled by a physicist."""
    nightly = deployment(machine, machines, base)
    return {
        "name": machine.review_deployment_name,
        "entrypoint": REVIEW_ENTRYPOINT,
        "description": machine.describe_review(nightly["parameters"].get("directory")),
        "tags": nightly["tags"],
        "parameters": nightly["parameters"],
        "schedules": [],
        "work_pool": {"name": machines.pool_of(machine)},
    }


def prefect_yaml(machines: Machines, base: Path = PROJECT_ROOT) -> str:
    base = base.resolve()
    machines_file = _path(Path(machines.source).resolve(), base)
    pools = sorted({machines.pool_of(m) for m in machines.machines})
    header = HEADER.format(
        machines=machines_file,
        pool=pools[0] if len(pools) == 1 else "POOL",
        prefect_file=_path(Path(machines.source).resolve().parent / "prefect.yaml", base),
    )
    body = {
        "name": "linac-qa-flows",
        "prefect-version": "3.8.8",
        # The code is installed on every worker host (pip install), so nothing is built or pushed.
        "build": None,
        "push": None,
        "deployments": [deployment(m, machines, base) for m in machines.machines]
        + [watch_deployment(m, machines, base) for m in machines.machines if m.watch]
        + [receiver_deployment(m, machines) for m in machines.machines if m.receiver]
        + [report_deployment(m, machines, base) for m in machines.machines if m.report_cron]
        + [review_deployment(m, machines, base) for m in machines.machines],
    }
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m deployments.generate",
        description="Write prefect.yaml from machines.yml.",
        epilog="""exit status:
  0  written (or, with --check, the file is up to date)
  1  with --check: the file differs
  2  the machines file is wrong

example:
  python -m deployments.generate > deployments/prefect.yaml""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--machines", metavar="FILE", default=str(DEFAULT_MACHINES), help="default: %(default)s")
    p.add_argument(
        "--base",
        metavar="DIR",
        default=str(PROJECT_ROOT),
        help="relative paths are written relative to DIR, the folder to run prefect deploy from "
        "(default: the project root)",
    )
    p.add_argument("--check", metavar="PREFECT_YAML", help="exit 1 when this file differs from the output")
    args = p.parse_args(argv)
    from linac_qa.config import ConfigError

    try:
        text = prefect_yaml(load_machines(args.machines), Path(args.base))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = Path(args.check).read_text(encoding="utf-8") if os.path.exists(args.check) else ""
        if current != text:
            print(f"{args.check} differs from {args.machines}: regenerate it", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
