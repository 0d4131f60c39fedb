"""Serve every machine's nightly deployment from one long-running process (docs/design.md section 2):
the simple path for a single QA workstation. Each machine also gets its `<name>-review` deployment
of the review-qa flow (no schedule: run from the UI), and with a `report-cron` (the default) its
monthly-report deployment. A machine with `watch: true` also gets its watch deployment, and one with
a `receiver:` its DICOM receiver deployment, each started at once. Needs
`PREFECT_API_URL` of a running `prefect server start`: a temporary server has no scheduler, so no
nightly run would ever start.

    python -m deployments.serve [--machines FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, cast

from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from deployments.machines import Machine, Machines, check_configs, load_machines

DEFAULT_MACHINES = Path(__file__).resolve().parent / "machines.yml"
logger = logging.getLogger("deployments.serve")


def one_at_a_time() -> ConcurrencyLimitConfig:
    """At most one run per deployment; a second one (a manual run while the nightly one is busy)
    waits for the slot instead of failing on the directory lock or processing the same files."""
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def nightly_flow(machine: Machine) -> Flow[..., Any]:
    """The flow with this machine's retries (a share not mounted yet is worth another try)."""
    from flows.process import process_directory

    return process_directory.with_options(
        retries=machine.retries, retry_delay_seconds=machine.retry_delay_seconds
    )


def deployment_options(machine: Machine) -> dict[str, Any]:
    """What the server stores for this machine's deployment; prefect.yaml is generated to match."""
    return {
        "name": machine.deployment_name,
        "schedules": [Cron(machine.cron, timezone=machine.timezone)],
        "parameters": machine.parameters(),
        "concurrency_limit": one_at_a_time(),
        "description": machine.describe(),
        "tags": machine.tags,
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def watch_options(machine: Machine) -> dict[str, Any]:
    """No schedule and no concurrency limit: serve starts the watch once, and a second watch of the
    same directory stops at once on its lock (a concurrency slot held by a watch that died with its
    host would keep every later one queued)."""
    return {
        "name": machine.watch_deployment_name,
        "parameters": machine.parameters(),
        "description": machine.describe_watch(),
        "tags": machine.tags,
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def receiver_options(machine: Machine) -> dict[str, Any]:
    """Like the watch: no schedule, started once by serve; a second one stops at once (its port
    is taken)."""
    return {
        "name": machine.receiver_deployment_name,
        "parameters": machine.receiver_parameters(),
        "description": machine.describe_receiver(),
        "tags": machine.tags,
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def report_options(machine: Machine) -> dict[str, Any]:
    """On the 1st of each month (report-cron, in the machine's time zone): the previous month."""
    assert machine.report_cron is not None
    return {
        "name": machine.report_deployment_name,
        "schedules": [Cron(machine.report_cron, timezone=machine.timezone)],
        "parameters": machine.report_parameters(),
        "concurrency_limit": one_at_a_time(),
        "description": machine.describe_report(),
        "tags": machine.tags,
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def review_options(machine: Machine) -> dict[str, Any]:
    """No schedule: a physicist runs it from the UI, filling the form. No concurrency limit either:
    reviews are appended to the trail one at a time by SQLite, whoever gives them."""
    return {
        "name": machine.review_deployment_name,
        "parameters": machine.parameters(),
        "description": machine.describe_review(),
        "tags": machine.tags,
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def runner_deployments(machines: Machines) -> list[RunnerDeployment]:
    """The deployments `serve_machines` registers, as objects (for checks; nothing is sent)."""
    from flows.monthly import monthly_report
    from flows.receive import receive_dicom
    from flows.review_flow import review_qa
    from flows.watch import watch_directory

    nightly = [nightly_flow(m).to_deployment(**deployment_options(m)) for m in machines.machines]
    watches = [watch_directory.to_deployment(**watch_options(m)) for m in machines.machines if m.watch]
    receivers = [receive_dicom.to_deployment(**receiver_options(m)) for m in machines.machines if m.receiver]
    reports = [monthly_report.to_deployment(**report_options(m)) for m in machines.machines if m.report_cron]
    reviews = [review_qa.to_deployment(**review_options(m)) for m in machines.machines]
    return [
        cast(RunnerDeployment, d) for d in [*nightly, *watches, *receivers, *reports, *reviews]
    ]  # sync: not awaited


def serve_machines(machines: Machines) -> None:
    """Register and serve every machine's deployment until SIGTERM or Ctrl-C.

    Prefect's `serve(*deployments)` runs each flow run through `python -m prefect.engine`, which
    imports the flow from its entrypoint and so loses the retries set with `with_options`; a
    Runner given the flow objects themselves (what `Flow.serve` does) runs exactly these, each
    machine with its own retries. `pause_on_shutdown=False`: stopping or restarting the service must
    not pause the nightly schedules.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    from flows.monthly import monthly_report
    from flows.receive import receive_dicom
    from flows.review_flow import review_qa
    from flows.watch import watch_directory

    runner = Runner(name="linac-qa-flows", pause_on_shutdown=False)
    for machine in machines.machines:
        runner.add_flow(nightly_flow(machine), **deployment_options(machine))
        runner.add_flow(review_qa, **review_options(machine))
        print(f"serving process-directory/{machine.deployment_name}: {machine.summary()}", file=sys.stderr)
        print(f"serving review-qa/{machine.review_deployment_name}", file=sys.stderr)
    for machine in machines.machines:
        if machine.watch:
            runner.add_flow(watch_directory, **watch_options(machine))
            # Started now, so that a restart of the workstation restarts the watch.
            run_deployment(f"watch-directory/{machine.watch_deployment_name}", timeout=0)
            print(f"watching with watch-directory/{machine.watch_deployment_name}", file=sys.stderr)
        if machine.receiver:
            runner.add_flow(receive_dicom, **receiver_options(machine))
            run_deployment(f"receive-dicom/{machine.receiver_deployment_name}", timeout=0)
            print(
                f"receiving DICOM with receive-dicom/{machine.receiver_deployment_name}: "
                f"AE title {machine.receiver.ae_title}, port {machine.receiver.port}",
                file=sys.stderr,
            )
    for machine in machines.machines:
        if machine.report_cron:
            runner.add_flow(monthly_report, **report_options(machine))
            print(f"reporting monthly with monthly-report/{machine.report_deployment_name}", file=sys.stderr)
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal) as exc:
        logger.info("%s: shutting down", type(exc).__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m deployments.serve",
        description=__doc__.split("\n\n")[0],
        epilog="""exit status:
  0  stopped (SIGTERM or Ctrl-C)
  2  the machines file, a machine's config or config block is wrong or missing, or
     PREFECT_API_URL is not set (nothing served)

example:
  PREFECT_API_URL=http://127.0.0.1:4200/api linac-qa serve --machines deployments/machines.yml""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--machines", metavar="FILE", default=str(DEFAULT_MACHINES), help="default: %(default)s")
    args = p.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import get_current_settings

    from linac_qa.config import ConfigError

    try:
        machines = load_machines(args.machines)
        check_configs(machines)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not get_current_settings().api.url:
        print(
            "error: PREFECT_API_URL is not set: start a server (prefect server start) and point "
            "PREFECT_API_URL at it (e.g. http://127.0.0.1:4200/api); a temporary server runs no schedules",
            file=sys.stderr,
        )
        return 2
    try:
        check_configs(machines, blocks=True)  # the blocks live on that server
    except ConfigError as exc:
        print(f"error: {args.machines}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the server does not answer
        print(f"error: cannot read the machine-config blocks from the Prefect API: {exc}", file=sys.stderr)
        return 2
    serve_machines(machines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
