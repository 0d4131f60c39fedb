"""The one hook through which production code reaches fault injection: named points where a test
can kill the run (`checkpoint`) or make an analysis hang (`stall`).

Both do nothing unless the test's environment variable is set (`LINAC_QA_CRASH_AT`,
`LINAC_QA_STALL_ON`). The catalogue of checkpoints and what each one models, for the tests that
drive them, is `linac_qa.testing.faults`; production code imports only this module.

`checkpoint(name)` SIGKILLs the run where it stands when `LINAC_QA_CRASH_AT` equals `name`, as a
power cut or the OOM killer would: no `finally`, no `atexit`, no flushing. Inside a worker process it
kills the parent run first, so the test models "the run was killed", not "a worker died" (which the
pool already turns into an `error`).

`stall(name)` makes an analysis hang (as a stuck share or a pathological image would) when
`LINAC_QA_STALL_ON` is a part of the acquisition's name, so that a test can kill the worker
mid-analysis or watch the time limit act.
"""

from __future__ import annotations

import os
import signal
import sys
import time

CRASH_AT = "LINAC_QA_CRASH_AT"
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
