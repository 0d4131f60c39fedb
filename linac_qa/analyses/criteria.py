"""Pass criteria as numbers, so every verdict can say why in numbers: `max CAX-BB 1.42 mm > 1.00 mm`.

Three rules keep a verdict honest (a pass is only as good as what it checked):
- a configured criterion whose value pylinac did not give (None, NaN) makes the result an `error`
  naming the criterion, never a silent skip;
- an analysis that did not find what it must (one picket, no low-contrast ROI, a flat DMLC image)
  raises `Implausible` before any verdict; the runner makes that an `error` "implausible: ...";
- a result on which no criterion was judged says "not judged" and carries `judged=False`, so that
  reports show it apart from the passes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from linac_qa.model import Metric, Status


@dataclass(frozen=True)
class Limit:
    """One measured value against one limit. `ok` overrides the comparison where pylinac decides
    itself (e.g. picket fence's own `passed`), so the reason still shows the numbers. `key` is the
    config key that sets the limit: named when pylinac gave no value to judge."""

    label: str
    value: float | None
    limit: float
    unit: str = "mm"
    kind: Literal["max", "min"] = "max"
    ok: bool | None = None
    digits: int = 2
    key: str = ""

    @property
    def measured(self) -> bool:
        return self.value is not None and math.isfinite(self.value)

    @property
    def passed(self) -> bool:
        if not self.measured:
            return False
        assert self.value is not None
        if self.ok is not None:
            return self.ok
        return self.value <= self.limit if self.kind == "max" else self.value >= self.limit

    def describe(self) -> str:
        good, bad = ("<=", ">") if self.kind == "max" else (">=", "<")
        unit = f" {self.unit}" if self.unit else ""
        limit = f"{self.limit:.{self.digits}f}{unit}"
        if not self.measured:
            key = f" ({self.key})" if self.key else ""
            return f"{self.label}{key} not judged: pylinac gave no value (limit {good} {limit})"
        sign = good if self.passed else bad
        return f"{self.label} {self.value:.{self.digits}f}{unit} {sign} {limit}"


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


@dataclass
class Verdict:
    """What an analysis concluded. `judged` is True only when at least one criterion decided the
    status; a `passed` verdict that judged nothing is reported as "not judged", never as a pass."""

    status: Status
    reason: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    judged: bool = False

    def __post_init__(self) -> None:
        self.metrics = finite_metrics(self.metrics)


class Implausible(Exception):
    """The analysis did not find what it must: its numbers are not a verdict. Raised by an analysis
    (usually from its judge, before any criterion); the runner makes the result an `error` whose
    reason is "implausible: " and the problems, and keeps the metrics that show them."""

    def __init__(self, problems: list[str], metrics: Mapping[str, Metric] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.metrics = finite_metrics(metrics or {})


def require_plausible(
    checks: Iterable[tuple[bool, str]], metrics: Mapping[str, Metric] | None = None
) -> None:
    """Raise `Implausible` with every problem whose check is False; `metrics` go with the error."""
    problems = [problem for ok, problem in checks if not ok]
    if problems:
        raise Implausible(problems, metrics)


def expected_count(what: str, found: int, expected: int | None, minimum: int, key: str) -> tuple[bool, str]:
    """A plausibility check on a count of features (pickets, spokes): exactly `expected` when the
    config sets it (`key`), else at least `minimum`."""
    if expected is not None:
        return found == expected, f"{found} {what} found, {expected} expected ({key})"
    return found >= minimum, f"{found} {what} found, at least {minimum} expected"


def is_number(value: object) -> bool:
    """A finite number, numpy's included (pylinac reports what it could not measure as None or NaN)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def rounded(value: object, digits: int) -> float | None:
    """A metric: the value rounded, or None when pylinac gave no number."""
    return round(float(value), digits) if isinstance(value, numbers.Real) and is_number(value) else None


def finite_metrics(metrics: Mapping[str, Metric]) -> dict[str, Metric]:
    """NaN and infinity as None: they are not JSON, and the summary must stay a JSON document."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}


def judge(
    checks: Iterable[Limit | Flag], notes: Iterable[str] = (), metrics: Mapping[str, Metric] | None = None
) -> Verdict:
    """An error when a criterion could not be judged (named first); else failed when any criterion
    fails, naming the failing ones; else passed. Then the notes: criteria not applicable to this
    acquisition, and why. With no criterion at all the result passes as "not judged"."""
    checks, notes = list(checks), list(notes)
    metrics = dict(metrics or {})
    missing = [c for c in checks if isinstance(c, Limit) and not c.measured]
    judged = [c for c in checks if not (isinstance(c, Limit) and not c.measured)]
    failing = [c for c in judged if not c.passed]
    shown = [c.describe() for c in missing + (failing or judged)] + notes
    if missing:
        return Verdict(Status.ERROR, "; ".join(shown), metrics)
    if not judged:
        return Verdict(
            Status.PASSED, "not judged: " + ("; ".join(notes) or "no criteria configured"), metrics
        )
    return Verdict(Status.FAILED if failing else Status.PASSED, "; ".join(shown), metrics, judged=True)
