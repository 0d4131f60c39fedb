"""Pass criteria as numbers, so every verdict can say why in numbers: `max CAX-BB 1.42 mm > 1.00 mm`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from linac_qa.model import Status


@dataclass(frozen=True)
class Limit:
    """One measured value against one limit. `ok` overrides the comparison where pylinac decides
    itself (e.g. picket fence's own `passed`), so the reason still shows the numbers."""

    label: str
    value: float
    limit: float
    unit: str = "mm"
    kind: Literal["max", "min"] = "max"
    ok: bool | None = None
    digits: int = 2

    @property
    def passed(self) -> bool:
        if self.ok is not None:
            return self.ok
        return self.value <= self.limit if self.kind == "max" else self.value >= self.limit

    def describe(self) -> str:
        good, bad = ("<=", ">") if self.kind == "max" else (">=", "<")
        unit = f" {self.unit}" if self.unit else ""
        sign = good if self.passed else bad
        return f"{self.label} {self.value:.{self.digits}f}{unit} {sign} {self.limit:.{self.digits}f}{unit}"


@dataclass(frozen=True)
class Flag:
    """A criterion pylinac decides itself without one number to compare (e.g. HU linearity over
    several ROIs); `detail` carries the numbers that explain it."""

    label: str
    passed: bool
    detail: str = ""

    def describe(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.label} {'passed' if self.passed else 'FAILED'}{detail}"


def judge(limits: Iterable[Limit | Flag], notes: Iterable[str] = ()) -> tuple[Status, str]:
    """Failed when any limit fails; the reason names the failing limits first, then the notes
    (criteria that could not be judged, and why)."""
    limits = list(limits)
    failing = [lim for lim in limits if not lim.passed]
    shown = failing or limits
    parts = [lim.describe() for lim in shown] + list(notes)
    status = Status.FAILED if failing else Status.PASSED
    return status, "; ".join(parts) if parts else "no criteria configured"
