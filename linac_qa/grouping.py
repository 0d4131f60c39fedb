"""From classified files to acquisitions: one per image, or one per Winston-Lutz session (a whole
folder, a zip, or loose images of one series or one sitting). Files that classification already
decided become results here, so every file leaves in exactly one place."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import Grouping
from linac_qa.config import Settings
from linac_qa.keywords import normalise
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile


@dataclass
class Plan:
    acquisitions: list[Acquisition] = field(default_factory=list)
    decided: list[AnalysisResult] = field(default_factory=list)  # ignored and error, from classification

    def by_analysis(self) -> dict[str, list[Acquisition]]:
        out: dict[str, list[Acquisition]] = defaultdict(list)
        for acq in self.acquisitions:
            out[acq.analysis].append(acq)
        return dict(out)


def plan(classified: Iterable[ClassifiedFile], settings: Settings, unit: str | None = None) -> Plan:
    result = Plan()
    sessions: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in classified:
        if cf.status is not None:
            result.decided.append(decided_result(cf))
            continue
        assert cf.analysis is not None
        analysis = REGISTRY[cf.analysis]
        if analysis.grouping is Grouping.SESSION and not cf.zip_members:
            sessions[cf.analysis].append(cf)
        else:
            result.acquisitions.append(_single(cf, settings, unit))
    for section, files in sessions.items():
        result.acquisitions.extend(_sessions(section, files, settings, unit))
    return result


def decided_result(cf: ClassifiedFile) -> AnalysisResult:
    assert cf.status is not None
    return AnalysisResult(
        analysis=cf.analysis, model=None, files=[cf.path], status=cf.status, reason=cf.reason
    )


def _single(cf: ClassifiedFile, settings: Settings, unit: str | None) -> Acquisition:
    assert cf.analysis is not None
    section = settings.section(cf.analysis)
    variant: dict[str, Any] = dict(REGISTRY[cf.analysis].variant(cf, section))
    if cf.zip_members:
        variant["images"] = len(cf.zip_members)
    path = PurePosixPath(cf.path)
    return Acquisition(
        analysis=cf.analysis,
        files=(cf.path,),
        name=path.name,
        output_stem=str(path.with_suffix("")) if path.suffix else cf.path,
        machine=cf.header.machine if cf.header else None,
        acquired=cf.header.acquired if cf.header else None,
        variant=variant,
        warnings=tuple(_warnings([cf], unit)),
    )


def _sessions(
    section: str, files: list[ClassifiedFile], settings: Settings, unit: str | None
) -> list[Acquisition]:
    """Loose images: a folder holding nothing but one session is the session; otherwise images are
    grouped by series, then by acquisition times no further apart than the session window."""
    window = dt.timedelta(minutes=getattr(settings.section(section), "session_window_minutes", 30))
    by_folder: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in files:
        by_folder[str(PurePosixPath(cf.path).parent)].append(cf)
    out = []
    for folder, members in by_folder.items():
        series = {cf.header.series_uid for cf in members if cf.header and cf.header.series_uid}
        if folder != "." and len(series) <= 1:
            out.append(
                _session(section, sorted(members, key=lambda c: c.path), settings, unit, whole_folder=True)
            )
            continue
        for group in _split_sessions(members, window):
            out.append(_session(section, group, settings, unit, whole_folder=False))
    return out


def _split_sessions(members: list[ClassifiedFile], window: dt.timedelta) -> list[list[ClassifiedFile]]:
    by_series: dict[str, list[ClassifiedFile]] = defaultdict(list)
    unseried: list[ClassifiedFile] = []
    for cf in members:
        if cf.header and cf.header.series_uid:
            by_series[cf.header.series_uid].append(cf)
        else:
            unseried.append(cf)
    groups = list(by_series.values())
    stamped = sorted(
        unseried,
        key=lambda c: (c.header.acquired if c.header and c.header.acquired else dt.datetime.min, c.path),
    )
    current: list[ClassifiedFile] = []
    for cf in stamped:
        when = cf.header.acquired if cf.header else None
        last = current[-1].header.acquired if current and current[-1].header else None
        if current and (when is None or last is None or when - last > window):
            groups.append(current)
            current = []
        current.append(cf)
    if current:
        groups.append(current)
    return [sorted(g, key=lambda c: c.path) for g in groups]


def _session(
    section: str, members: list[ClassifiedFile], settings: Settings, unit: str | None, *, whole_folder: bool
) -> Acquisition:
    first = PurePosixPath(members[0].path)
    acquired = min((cf.header.acquired for cf in members if cf.header and cf.header.acquired), default=None)
    if whole_folder:
        stem, name = str(first.parent), first.parent.name + "/"
    else:
        stamp = acquired.strftime("%Y%m%d_%H%M") if acquired else f"s{_series_number(members)}"
        prefix = _common_prefix([PurePosixPath(cf.path).stem for cf in members]) or section
        stem = str(first.parent / f"{prefix}_{stamp}")
        name = PurePosixPath(stem).name
    machines = Counter(cf.header.machine for cf in members if cf.header and cf.header.machine)
    return Acquisition(
        analysis=section,
        files=tuple(cf.path for cf in members),
        name=name,
        output_stem=stem,
        machine=machines.most_common(1)[0][0] if machines else None,
        acquired=acquired,
        variant={"images": len(members)},
        warnings=tuple(_warnings(members, unit)),
    )


def _series_number(members: list[ClassifiedFile]) -> str:
    numbers = {cf.header.series_number for cf in members if cf.header and cf.header.series_number is not None}
    return str(min(numbers)) if numbers else "0"


def _common_prefix(stems: list[str]) -> str:
    """The shared start of the names, cut back to a whole token: `RI.QA.WL_0900`, never `..._G`."""
    prefix = os.path.commonprefix(stems)  # noqa: RUF071  (file names, compared character by character)
    if any(len(s) > len(prefix) and s[len(prefix)].isalnum() for s in stems):
        prefix = re.sub(r"[0-9A-Za-z]+$", "", prefix)
    return re.sub(r"[^0-9A-Za-z]+$", "", prefix)


def _warnings(members: list[ClassifiedFile], unit: str | None) -> list[str]:
    """Misfiled data must not pass silently as another linac's QA."""
    if not unit:
        return []
    wanted = normalise(unit)
    foreign = sorted(
        {
            cf.header.machine or "?"
            for cf in members
            if cf.header
            and cf.header.machine_ids
            and wanted not in {normalise(m) for m in cf.header.machine_ids}
        }
    )
    return [f"acquired on {', '.join(foreign)}, not on the configured unit {unit}"] if foreign else []
