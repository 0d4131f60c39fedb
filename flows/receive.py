"""`receive-dicom`: each machine's DICOM receiver (`receiver:` in the machines file), filing what
the EPID workstation, ARIA or an iView/XVI sends into `<directory>/received/`; the nightly run (or
the watch) analyses it like any exported file.

    python -m flows.receive --machines deployments/machines.yml [--machine NAME]

The command runs every listed receiver in one process without Prefect: a sender must find the
receiver up even while the Prefect server is down or restarting. `deployments.serve` runs each
machine's receiver as the long-running `<machine>-receiver` deployment of the flow below instead.
Ctrl-C or SIGTERM stops it between two instances: an instance being written is either whole under
its final name or not there (and the sender, told nothing, sends it again).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from linac_qa.intake.dicom_receiver import DicomReceiver, ReceiverSpec, networks

EXIT_OK, EXIT_USAGE, EXIT_PORT_IN_USE = 0, 2, 3
log = logging.getLogger("flows.receive")


def receiver_spec(machine: str, directory: str | Path, receiver: dict[str, Any]) -> ReceiverSpec:
    """The plain receiver of a machine's `receiver:` section (as `Receiver.parameters` passes it)."""
    from deployments.machines import Receiver

    r = Receiver.model_validate(receiver)
    return ReceiverSpec(
        name=machine,
        ae_title=r.ae_title,
        port=r.port,
        directory=Path(directory),
        allowed_callers=frozenset(r.allowed_callers),
        allowed_networks=networks(r.allowed_addresses),
        listen=r.listen,
    )


@flow(name="receive-dicom", persist_result=False, log_prints=False)
def receive_dicom(machine: str, directory: str, receiver: dict[str, Any]) -> None:
    """One machine's receiver, until the run is cancelled (SIGTERM ends it through Prefect)."""
    logger = get_run_logger()
    r = DicomReceiver(receiver_spec(machine, directory, receiver))
    r.start()
    logger.info("receiving as %s on port %d into %s", r.spec.ae_title, r.port, r.store.root)
    try:
        threading.Event().wait()  # until cancelled: Prefect raises its termination signal here
    finally:
        r.stop()


def run_receivers(specs: list[ReceiverSpec], stop: threading.Event) -> int:
    """Start every receiver, serve until `stop` is set, stop them all. Exit status."""
    started: list[DicomReceiver] = []
    try:
        for spec in specs:
            r = DicomReceiver(spec)
            try:
                r.start()
            except OSError as exc:  # the port is taken: most likely this receiver is running already
                print(
                    f"error: {spec.name}: cannot listen on {spec.listen}:{spec.port}: {exc}", file=sys.stderr
                )
                return EXIT_PORT_IN_USE
            started.append(r)
            print(
                f"{spec.name}: receiving as AE title {spec.ae_title} on port {r.port} into {r.store.root}",
                file=sys.stderr,
            )
        while not stop.wait(0.5):
            pass
    finally:
        for r in started:
            r.stop()
    return EXIT_OK


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flows.receive",
        description="Receive DICOM images (C-STORE) for every machine with a `receiver:` in the machines "
        "file; they are written to <directory>/received/<date>/<series>/ for the next run to analyse.",
        epilog="""exit status:
  0  stopped (Ctrl-C or SIGTERM)
  2  the machines file is wrong, or no machine (or not the one named) has a receiver
  3  a receiver's port is in use (is the receiver running already?)

example:
  linac-qa receive --machines deployments/machines.yml --machine truebeam1""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--machines", metavar="FILE", default=str(_default_machines()), help="default: %(default)s"
    )
    p.add_argument("--machine", metavar="NAME", help="only this machine's receiver (default: every one)")
    return p


def _default_machines() -> Path:
    return Path(__file__).resolve().parents[1] / "deployments" / "machines.yml"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from deployments.machines import load_machines
    from linac_qa.config import ConfigError

    try:
        machines = load_machines(args.machines)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    chosen = [m for m in machines.machines if m.receiver is not None and args.machine in (None, m.name)]
    if not chosen:
        which = f"machine {args.machine!r}" if args.machine else "no machine"
        print(f"error: {args.machines}: {which} has no receiver: section", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    specs = [receiver_spec(**m.receiver_parameters()) for m in chosen]
    stop = threading.Event()
    _stop_on_signals(stop)
    return run_receivers(specs, stop)


if __name__ == "__main__":
    raise SystemExit(main())
