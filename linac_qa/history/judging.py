"""A result's metrics judged against the levels and baseline in force at its acquisition time, and
against its drift chart, as the run records it: the status, reason and warnings say what was found,
with the numbers, and the record keeps each value's judgement (what the views draw)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from linac_qa.history import drift
from linac_qa.history.baselines import Baseline, Baselines, auto_baseline
from linac_qa.history.levels import LevelSpec, describe, level_of, worst
from linac_qa.history.record import Record, Row, rows_of
from linac_qa.history.series import Level, Window
from linac_qa.model import AnalysisResult, MetricLevel, Status
from linac_qa.records.outputs import staged_outputs
from linac_qa.sections import AnalysisSettings


@dataclass
class History:
    """A directory's record and baselines, opened once for a run."""

    directory: Path
    record: Record
    baselines: Baselines
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, directory: Path) -> History:
        return cls(directory, Record(directory), Baselines(directory))

    def close(self) -> None:
        self.record.close()
        self.baselines.close()


def record_result(
    history: History, result: AnalysisResult, sources: dict[str, str], settings: AnalysisSettings
) -> None:
    """Into the record, then judged: the result's status, reason, warnings, `level` and `levels`
    are set, and its `.json` says the same."""
    with history.lock:
        _record_and_judge(history, result, sources, settings)


def _record_and_judge(
    history: History, result: AnalysisResult, sources: dict[str, str], settings: AnalysisSettings
) -> None:
    rows = rows_of(result, sources)
    if not rows:
        return
    history.record.add(rows)
    judgements: dict[str, MetricLevel] = {}
    for row in rows:
        spec = settings.levels.get(row.key.metric)
        if spec is not None:  # counts and geometry that no level judges get no baseline of their own
            auto_baseline(history.record, history.baselines, row.key, settings.auto_baseline)
        judged = judge_value(history, row, spec)
        if judged is not None:
            judgements[row.key.metric] = judged
    if judgements:
        apply(result, judgements)
        history.record.add(rows_of(result, sources))  # with its judgement and final status
        rewrite_document(result, history.directory)


def judge_value(history: History, row: Row, spec: LevelSpec | None) -> MetricLevel | None:
    """The value against the baseline in force at its acquisition time: its level (None when a
    relative level has no baseline yet) and the drift rule it completes. None: nothing applies."""
    baseline = history.baselines.in_force(row.key, row.acquired)
    if spec is None and baseline is None:
        return None
    windows = spec.windows(baseline.value if baseline else None) if spec else None
    level = level_of(row.value, *windows) if windows else None
    control, rule = _drift(history.record, row, baseline)
    return MetricLevel(
        level=level,
        value=row.value,
        baseline=baseline.value if baseline else None,
        tolerance=_pair(windows[0]) if windows else None,
        action=_pair(windows[1]) if windows else None,
        control=_pair(control) if control else None,
        drift=rule,
    )


def _drift(record: Record, row: Row, baseline: Baseline | None) -> tuple[Window | None, str | None]:
    """The control limits of the chart that judges this value, and the rule it breaks. The chart's
    window: the results the baseline is the mean of, else the first results it judged; the values
    inside it only teach the chart, and are never flagged."""
    if baseline is None:
        return None, None
    since, window_end = baseline.window or (baseline.effective_from, None)
    history = record.points(row.key, after=_before(since), until=row.acquired)
    window = drift.DEFAULT_WINDOW if window_end is None else sum(a <= window_end for a, _ in history)
    values = [v for _, v in history]
    c = drift.chart(values, window)
    return (c.limits, drift.broken_rule(values[window:], c)) if c else (None, None)


def _before(when: str) -> str:
    """A store time just before `when`: `after=` is exclusive."""
    return when[:-1] + chr(ord(when[-1]) - 1) if when else when


def _pair(w: Window) -> tuple[float | None, float | None]:
    return (w.low, w.high)


def apply(result: AnalysisResult, judgements: dict[str, MetricLevel]) -> None:
    """An action level fails a passed result, its reason naming the metric, value, baseline and
    level; a tolerance level and drift (while within tolerance) are warnings on a result that stays."""
    result.levels = judgements
    result.level = worst([j.level for j in judgements.values() if j.level is not None])
    if result.level is not None:
        result.judged = True
    actions = [_said(m, j, "action") for m, j in judgements.items() if j.level is Level.ACTION]
    said = "action level: " + "; ".join(actions)
    if actions and said not in result.reason:  # a result adopted from its judged `.json`: said once
        result.reason = f"{said}; {result.reason}" if result.reason else said
    if actions:
        result.status = Status.FAILED
    warnings = [
        *(f"tolerance level: {_said(m, j, 'tolerance')}" for m, j in judgements.items() if _tolerance(j)),
        *(f"drift: {m} {j.value:g}: {j.drift}" + _limits(j) for m, j in judgements.items() if _drifting(j)),
    ]
    result.warnings.extend(w for w in warnings if w not in result.warnings)


def _tolerance(j: MetricLevel) -> bool:
    return j.level is Level.TOLERANCE


def _drifting(j: MetricLevel) -> bool:
    """Drift is the early warning: said while the value is still within tolerance."""
    return j.drift is not None and j.level in (None, Level.OK)


def _limits(j: MetricLevel) -> str:
    return f" (control limits {describe(Window(*j.control))})" if j.control else ""


def _said(metric: str, j: MetricLevel, which: str) -> str:
    window = j.tolerance if which == "tolerance" else j.action
    allowed = describe(Window(*window)) if window else "no limit"
    base = f"baseline {j.baseline:g}, " if j.baseline is not None else ""
    return f"{metric} {j.value:g} ({base}{which} {allowed})"


def rewrite_document(result: AnalysisResult, directory: Path) -> None:
    """The result's `.json` gains its judgement (atomically), so that it says what the summary says
    and a rebuilt record has it."""
    document = next((o for o in result.outputs if o.endswith(".json")), None)
    if document is None:
        return
    path = directory / document if not Path(document).is_absolute() else Path(document)
    if not path.is_file():  # moved away since (a result written straight into the record)
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    ours = data["linac-qa-flows"]
    ours |= {
        "status": result.status.value,
        "reason": result.reason,
        "judged": result.judged,
        "warnings": result.warnings,
        "level": result.level.value if result.level else None,
        "levels": {m: j.model_dump(mode="json") for m, j in result.levels.items()},
    }
    with staged_outputs([path]) as tmp:
        tmp[path].write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
