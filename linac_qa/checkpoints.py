"""Fault injection for the crash-safety tests: a named checkpoint that kills the run on request.

`checkpoint(name)` does nothing unless the environment variable `LINAC_QA_CRASH_AT` equals `name`;
then it SIGKILLs the run where it stands, as a power cut or the OOM killer would: no `finally`, no
`atexit`, no flushing. Inside a worker process it kills the parent run first, so the test models
"the run was killed", not "a worker died" (which the pool already turns into an `error`).

The checkpoints, in the order a run passes them:
- `analysis` (worker): during the pylinac analysis;
- `outputs` (worker): while the outputs are written, some complete and some not;
- `before-ledger` (main process): a result has arrived and its outputs exist, the ledger has no row;
- `queue-email` (main process): every result is recorded, the run's e-mail is not yet written;
- `email` (main process): the message is in the ledger, about to be handed to the SMTP server;
- `email-sent` (main process): the SMTP server has accepted the message, the ledger does not know.

`stall(name)` makes an analysis hang (as a stuck share or a pathological image would) when the
environment variable `LINAC_QA_STALL_ON` is a part of the acquisition's name, so that a test can
kill the worker mid-analysis or watch the time limit act.
"""

from __future__ import annotations

import os
import signal
import sys
import time

CRASH_AT = "LINAC_QA_CRASH_AT"
CHECKPOINTS = ("analysis", "outputs", "before-ledger", "queue-email", "email", "email-sent")
STALL_ON = "LINAC_QA_STALL_ON"


def checkpoint(name: str, *, in_worker: bool = False) -> None:
    if os.environ.get(CRASH_AT) != name:
        return
    if in_worker:
        os.kill(os.getppid(), _KILL)
    os.kill(os.getpid(), _KILL)


def stall(name: str) -> None:
    fragment = os.environ.get(STALL_ON)
    if fragment and fragment in name:
        # On standard error (the run's log): a test kills the worker only once it is in the analysis.
        print(stall_mark(name), file=sys.stderr, flush=True)
        time.sleep(3600)


def stall_mark(name: str) -> str:
    return f"{STALL_ON}: the analysis of {name} stalls"


# Windows has no SIGKILL; TerminateProcess (what os.kill does there with any signal) is the same
# "no cleanup" death.
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)
