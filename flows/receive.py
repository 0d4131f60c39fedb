"""`receive-dicom`: one machine's DICOM receiver as a long-running flow run, the
`<machine>-receiver` deployment that `deployments.serve` starts for each machine with a `receiver:`
in the machines file. What it receives goes to `<directory>/received/`, where the nightly run (or
the watch) analyses it like any exported file.

Without Prefect, `python -m deployments.receive --machines deployments/machines.yml` (`linac-qa
receive`) runs the same receivers in one process: a sender then finds the receiver up even while
the Prefect server is down.
"""

from __future__ import annotations

import threading
from typing import Any

from prefect import flow, get_run_logger

from linac_qa.intake.dicom_receiver import ReceiverSettings, receive_until


@flow(name="receive-dicom", persist_result=False, log_prints=False)
def receive_dicom(machine: str, directory: str, receiver: dict[str, Any]) -> None:
    """Until the run is cancelled: the cancellation (SIGTERM, through Prefect) ends the wait, and
    the receiver is stopped on the way out."""
    spec = ReceiverSettings.model_validate(receiver).spec(machine, directory)
    receive_until([spec], threading.Event(), get_run_logger().info)
