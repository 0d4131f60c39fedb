"""A stop signal ends a run even when its exception is lost.

Python runs a signal's handler between two bytecodes of the main thread, and Prefect's handler (and
SIGINT's default one) raise there. When that moment falls inside code called back from C (an
`isinstance` check, a finaliser), the interpreter prints the exception and goes on: in about one stop
in seven the run analysed everything and ended with exit status 0, as if never stopped. The
interpreter's wakeup fd is written by the C-level handler whatever happens afterwards, so a thread
reading it sees every stop: it stops the analyses at once, and a run that returns anyway ends by the
signal it was sent (a shell sees 128 + n), with nothing more written.

A stop must end the run even when something on the way out blocks (a lock left held by the
interrupted bytecode, a thread that is joined at exit, an API that is itself stopping): once a stop
has gone unheeded for FORCE_AFTER_SECONDS, the listener writes every thread's stack to stderr, for
the bug report, and ends the process by that signal. That is as safe as a kill -9, which any moment
of a run survives: results and outputs are written atomically, and an unfinished analysis is
simply analysed by the next run.
"""

from __future__ import annotations

import ctypes
import faulthandler
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn, ParamSpec, TypeVar

from prefect.exceptions import CancelledRun, TerminationSignal
from prefect.states import Cancelled, State

from linac_qa.execution.pool_base import abandon_all

P = ParamSpec("P")
R = TypeVar("R")

STOPS = (signal.SIGINT, signal.SIGTERM)
_SAID = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}
FORCE_AFTER_SECONDS = 15.0


class StopSignals:
    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._abandoned = False
        self._previous_interrupt: Any = signal.default_int_handler

    def __enter__(self) -> StopSignals:
        if os.name == "nt" or threading.current_thread() is not threading.main_thread():
            return self  # Windows has no wakeup pipe for these; only the main thread may set one
        read, write = self._pipe = os.pipe()
        os.set_blocking(write, False)
        self._previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        threading.Thread(target=self._listen, args=(read,), name="stop-signals", daemon=True).start()
        # Ctrl-C's handler of our own, recording before it raises: with Python's default one in
        # place, an asyncio runner started on the main thread (Prefect's API calls) swaps in its own,
        # which only cancels that runner's task, and the stop can be lost with it.
        self._previous_interrupt = signal.signal(signal.SIGINT, self._interrupt)
        return self

    def _interrupt(self, number: int, frame: object) -> None:
        self.received = self.received or signal.Signals(number)
        raise KeyboardInterrupt

    def _listen(self, read: int) -> None:
        with open(read, "rb", buffering=0, closefd=True) as pipe:  # closed once __exit__ closes the other end
            while data := pipe.read(64):
                for number in data:
                    if number in STOPS and not self._abandoned:
                        self._abandoned = True
                        self.received = self.received or signal.Signals(number)
                        _say_stopping(self.received)
                        force = threading.Timer(FORCE_AFTER_SECONDS, _end_unheeded, args=(self.received,))
                        force.daemon = (
                            True  # a daemon still runs while the interpreter joins the others at exit
                        )
                        force.start()
                        abandon_all()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        signal.signal(signal.SIGINT, self._previous_interrupt)
        os.close(self._pipe[1])  # ends the listener
        if kind is None and self.received is not None:  # the stop's exception was lost on the way
            signal.signal(self.received, signal.SIG_DFL)
            os.kill(os.getpid(), self.received)


def _say_stopping(stop: signal.Signals) -> None:
    """Said at once, however the run then ends (Prefect's own SIGTERM handling ends it its way)."""
    sys.stderr.write(
        f"\nstopping on {_SAID.get(stop, stop.name)}: analyses in progress are ended; those that had"
        " finished are recorded with their outputs, and the next run analyses the rest\n"
    )
    sys.stderr.flush()


def _end_unheeded(stop: signal.Signals) -> None:
    sys.stderr.write(
        f"\n{stop.name} was not heeded within {FORCE_AFTER_SECONDS:g} s; ending the run now. Threads:\n"
    )
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    # Only the main thread may call signal.signal, and it is the one that is stuck: the C library
    # resets the disposition from here, so that the process ends by the stop itself.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.signal.restype = ctypes.c_void_p
    libc.signal(int(stop), 0)  # SIG_DFL
    os.kill(os.getpid(), stop)
    threading.Event().wait(5)
    os._exit(128 + int(stop))  # only if the signal is blocked in every thread


class Stopped(BaseException):
    """A subflow that a stop cancelled, carried through code that goes on after an Exception (a
    watch goes on after a batch that failed, not after one that was stopped)."""


# The stop that ended a flow body of this process (signals are the process's, as is this).
_stopped_by: signal.Signals | None = None


def cancelled_when_stopped(body: Callable[P, R]) -> Callable[P, R | State]:
    """A flow body that a stop interrupts ends Cancelled, saying by what. Prefect marks a flow run
    that a KeyboardInterrupt or its own SIGTERM exception leaves as Crashed, the state of a run
    that broke, and its UI shows it red; a stop is someone's decision. A subflow ended this way
    raises CancelledRun in its caller, which ends Cancelled in turn. The command line then ends by
    the signal (`end_as_stopped`)."""

    @functools.wraps(body)
    def ends_cancelled(*args: P.args, **kwargs: P.kwargs) -> R | State:
        global _stopped_by
        try:
            return body(*args, **kwargs)
        except (CancelledRun, Stopped) as exc:  # a subflow was stopped, so was its caller: by the same stop
            return Cancelled(message=str(exc) or "a subflow was cancelled")
        except (KeyboardInterrupt, TerminationSignal) as exc:
            stop = signal.Signals(exc.signal) if isinstance(exc, TerminationSignal) else signal.SIGINT
            _stopped_by = _stopped_by or stop
            return Cancelled(
                message=f"stopped by {_SAID.get(stop, stop.name)}: what had finished is recorded with its"
                " outputs; the next run analyses the rest"
            )

    return ends_cancelled


def end_as_stopped(received: signal.Signals | None = None) -> NoReturn:
    """Ends the process by the stop that cancelled its run, as an uncaught stop would have (a shell
    sees 128 + n), without a traceback."""
    stop = received or _stopped_by or signal.SIGINT
    sys.stdout.flush()
    signal.signal(stop, signal.SIG_DFL)
    os.kill(os.getpid(), stop)
    threading.Event().wait(5)
    os._exit(128 + int(stop))  # only if the signal is blocked
