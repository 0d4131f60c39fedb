"""Tolerance and action levels (TG-142's two levels): how far a metric may lie from its baseline, or
within which absolute limits, before a physicist looks (tolerance) or acts (action)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from linac_qa.history.series import Level, Window

# Floats a hair beyond a limit are on it: 101.0 - 100 against 1 % of 100 must be exactly "ok".
_EPSILON = 1e-9
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _amount(value: object) -> object:
    """`0.5` (in the metric's own unit) or `"1%"` (of the baseline value); kept as given, checked below."""
    if isinstance(value, str) and not _PERCENT.match(value):
        raise ValueError(f"must be a number in the metric's unit or a percentage like '1%' (got {value!r})")
    return value


Amount = Annotated[float | str | list[float | None], BeforeValidator(_amount)]


class LevelSpec(BaseModel):
    """One metric's two levels. Relative to the baseline (the default): `tolerance`/`action` are the
    largest change allowed either way, a number in the metric's unit (flatness in % changes by 1
    percentage point: `1`) or a percentage of the baseline value (`"2%"`). Absolute: `[low, high]`
    limits (null: none on that side), or a number for an upper limit."""

    model_config = ConfigDict(
        alias_generator=lambda n: n.replace("_", "-"), populate_by_name=True, extra="forbid", frozen=True
    )

    tolerance: Amount
    action: Amount
    relative_to: Literal["baseline", "absolute"] = "baseline"

    @model_validator(mode="after")
    def _consistent(self) -> LevelSpec:
        for name in ("tolerance", "action"):
            value = getattr(self, name)
            if self.relative_to == "baseline":
                if isinstance(value, list):
                    raise ValueError(f"{name}: relative to a baseline is a change (0.5 or '1%'), not limits")
                if isinstance(value, float | int) and value < 0:
                    raise ValueError(f"{name}: a change from the baseline must be 0 or more (got {value})")
            elif isinstance(value, str):
                raise ValueError(f"{name}: absolute limits are numbers, not percentages (got {value!r})")
            elif isinstance(value, list) and len(value) != 2:
                raise ValueError(f"{name}: absolute limits are [low, high] (got {value!r})")
        return self

    @property
    def needs_baseline(self) -> bool:
        return self.relative_to == "baseline"

    def windows(self, baseline: float | None) -> tuple[Window, Window] | None:
        """(tolerance, action) windows, or None when relative and no baseline is in force."""
        if self.needs_baseline and baseline is None:
            return None
        return self._window(self.tolerance, baseline), self._window(self.action, baseline)

    def _window(self, amount: float | str | list[float | None], baseline: float | None) -> Window:
        if isinstance(amount, list):
            return Window(amount[0], amount[1])
        if baseline is None:  # absolute, a single number: an upper limit
            return Window(None, float(amount))
        change = percent_of(amount, baseline)
        return Window(baseline - change, baseline + change)


def relative(tolerance: float | str, action: float | str) -> LevelSpec:
    """Levels as a change from the baseline, for a section's defaults."""
    return LevelSpec(tolerance=tolerance, action=action)


def percent_of(amount: float | str, baseline: float) -> float:
    match = _PERCENT.match(amount) if isinstance(amount, str) else None
    return abs(baseline) * float(match.group(1)) / 100 if match else float(amount)


def within(value: float, window: Window) -> bool:
    """On a limit is within it."""
    slack = _EPSILON * max(1.0, abs(value))
    low_ok = window.low is None or value >= window.low - slack
    high_ok = window.high is None or value <= window.high + slack
    return low_ok and high_ok


def level_of(value: float, tolerance: Window, action: Window) -> Level:
    """ok inside the tolerance window, tolerance inside the action window, else action."""
    if math.isnan(value):
        return Level.ACTION
    if within(value, tolerance):
        return Level.OK
    return Level.TOLERANCE if within(value, action) else Level.ACTION


WORST = {Level.OK: 0, Level.TOLERANCE: 1, Level.ACTION: 2}


def worst(levels: list[Level]) -> Level | None:
    return max(levels, key=WORST.__getitem__) if levels else None


def describe(window: Window) -> str:
    """`[0.5, 1.5]`, `<= 1`, `>= 2`: as the reason says it."""
    if window.low is None and window.high is None:
        return "no limit"
    if window.low is None:
        return f"<= {window.high:g}"
    if window.high is None:
        return f">= {window.low:g}"
    return f"[{window.low:g}, {window.high:g}]"


LevelMap = Annotated[dict[str, LevelSpec], Field(default_factory=dict)]
