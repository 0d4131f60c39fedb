"""What a metric's series is keyed by beyond machine, analysis and metric: the acquisition's variant
(FFF, MLC, phantom or CatPhan model, imaging technique), as one canonical text; and the unit of
measure a metric's name carries."""

from __future__ import annotations

from typing import Any

# Grouping's bookkeeping, not what was measured: a series of 80 slices is the same test as one of 90.
NOT_VARIANTS = frozenset({"images", "series"})
# The variant options that choose the pylinac model: the series is keyed by the model actually used
# (the section's default model when the file named none).
MODEL_OPTIONS = frozenset({"model", "phantom", "test"})


def variant_text(options: dict[str, Any], model: str | None, model_chosen: bool) -> str:
    """`fff=true; mlc=HD Millennium`, sorted by key; "" for none. `model_chosen`: the analysis picks
    its pylinac model per acquisition (a phantom, a CatPhan, a VMAT test), which is then part of it."""
    parts = {k: v for k, v in options.items() if k not in NOT_VARIANTS and k not in MODEL_OPTIONS}
    if model_chosen and model:
        parts["model"] = model
    return "; ".join(f"{k}={_text(v)}" for k, v in sorted(parts.items()))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "x".join(_text(v) for v in value)
    return str(value)


# The end of a metric's name says its unit (criteria and analyses name them so).
_UNITS = (
    ("_lp_mm", "lp/mm"),
    ("_percent", "%"),
    ("_mm", "mm"),
    ("_deg", "deg"),
    ("_hu", "HU"),
    ("_difference", "HU"),
    ("_seconds", "s"),
)


def unit_of(metric: str) -> str:
    return next((unit for end, unit in _UNITS if metric.endswith(end)), "")
