"""Receive DICOM images for every machine with a `receiver:` in the machines file, in one process
and without Prefect (a sender must find the receiver up even while the Prefect server is down or
restarting). `deployments.serve` runs the same receivers as `<machine>-receiver` deployments.

    python -m deployments.receive [--machines FILE] [--machine NAME]

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

EXIT_OK, EXIT_USAGE, EXIT_PORT_IN_USE = 0, 2, 3
DEFAULT_MACHINES = Path(__file__).resolve().parent / "machines.yml"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deployments.receive",
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
    p.add_argument("--machines", metavar="FILE", default=str(DEFAULT_MACHINES), help="default: %(default)s")
    p.add_argument("--machine", metavar="NAME", help="only this machine's receiver (default: every one)")
    return p


def main(argv: list[str] | None = None, stop: threading.Event | None = None) -> int:
    """`stop`: set it to stop (tests); by default Ctrl-C and SIGTERM set it."""
    args = parser().parse_args(argv)
    from deployments.machines import load_machines
    from linac_qa.config import ConfigError
    from linac_qa.intake.dicom_receiver import ReceiverUnavailable, receive_until

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
    specs = [m.receiver.spec(m.name, m.directory) for m in chosen if m.receiver and m.directory]
    if stop is None:
        stop = threading.Event()
        _stop_on_signals(stop)
    try:
        receive_until(specs, stop, lambda line: print(line, file=sys.stderr, flush=True))
    except ReceiverUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PORT_IN_USE
    return EXIT_OK


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
