"""What a caller hands a run that is no parameter of it. Prefect records every parameter of a flow
run, shows it in the UI and offers it in a deployment's run form; a terminal's progress display
(`listener`) and a watch's pool (`batch`) mean nothing there. An `AttendedFlow` takes them at the
call and passes them in context variables, which the flow reads.

Flows read them as `attended.LISTENER`, through this module: serve pickles a flow's function by
value with the globals it names, and a context variable cannot be pickled (a module can)."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from prefect import Flow

from linac_qa.run import Listener

if TYPE_CHECKING:
    from flows.process import WatchBatch

P = ParamSpec("P")
R = TypeVar("R")

LISTENER: ContextVar[Listener | None] = ContextVar("listener", default=None)
BATCH: ContextVar[WatchBatch | None] = ContextVar("batch", default=None)


class AttendedFlow(Flow[P, R]):
    """A flow that also takes `listener=` and `batch=` at the call, kept out of its parameters."""

    def __call__(  # type: ignore[override]
        self, *args: Any, listener: Listener | None = None, batch: WatchBatch | None = None, **kwargs: Any
    ) -> Any:
        given = LISTENER.set(listener), BATCH.set(batch)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            BATCH.reset(given[1])
            LISTENER.reset(given[0])


def attended_flow(**options: Any) -> Callable[[Callable[P, R]], AttendedFlow[P, R]]:
    """`@flow(**options)`, making an `AttendedFlow`."""
    return lambda fn: AttendedFlow(fn=fn, **options)
