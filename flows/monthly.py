"""`monthly-report`: each machine's QA report of the previous month (linac_qa.review.monthly), the
`<machine>-monthly-report` deployment that `deployments.serve` schedules on the 1st of each month
(machines file: `report-cron`, in the machine's time zone). The same as `python -m flows.report DIR
--email`: the PDF and the QuAAC export beside the data, e-mailed to the configured recipients."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, State

from blocks.machine_config import run_settings
from linac_qa.notify.send import MailError
from linac_qa.records.reporting import artifact_key
from linac_qa.review import monthly, publish
from linac_qa.run import resolve_directory


@flow(name="monthly-report", persist_result=False)
def monthly_report(
    directory: str | None = None,
    config: str | None = None,
    config_block: str | None = None,
    timezone: str = "UTC",
    month: str | None = None,
) -> State:
    """`month`: YYYY-MM; by default the one before today's in `timezone`, which also bounds the
    month and shows its times."""
    logger = get_run_logger()
    settings = run_settings(config, config_block)
    root = resolve_directory(directory, settings)
    tz = monthly.timezone(timezone)
    now = dt.datetime.now(tz)
    month = month or monthly.previous_month(now)
    machines = publish.machines_of(root, settings, None)
    done = publish.publish(root, settings, month, machines, now, tz)
    lines = [f"- `{p.files[0].name}`: {monthly.summary_line(p.report)}" for p in done]
    for p in done:
        logger.info("%s: %s", p.files[0], monthly.summary_line(p.report))
    create_markdown_artifact(
        "\n".join([f"# QA reports for {month}", "", *lines])
        if lines
        else f"No machine to report on in {root}.",
        key=artifact_key(f"monthly-report-{month}", settings.general.unit),
        description=f"The monthly QA reports of {root} for {month}",
    )
    try:
        sent = publish.mail(root, settings, done, f"monthly-report-{month}-{now:%Y%m%dT%H%M%S}", logger)
        mailed = f", {sent} e-mailed" if sent else ""
    except MailError as exc:  # the reports are written: the e-mail waits in the outbox for the next run
        logger.warning("the report e-mail was kept for the next run: %s", exc)
        mailed = ", e-mail kept for the next run"
    return Completed(name=f"Completed: {len(done)} report{'s' if len(done) != 1 else ''}{mailed}",
                     message=f"{month}: {len(done)} report(s){mailed}")  # fmt: skip
