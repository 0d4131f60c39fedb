"""Sessions: images that belong together (a Winston-Lutz set, a CT series, a VMAT pair) as one
acquisition. A folder holding one session is the session; otherwise images are grouped by series,
then by acquisition times no further apart than a window."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter, defaultdict
from pathlib import PurePosixPath

from linac_qa.keywords import normalise
from linac_qa.model import Acquisition, ClassifiedFile


def session_acquisitions(
    section: str, files: list[ClassifiedFile], *, window: dt.timedelta, unit: str | None
) -> list[Acquisition]:
    """Loose images: a folder holding nothing but one session is the session; otherwise images are
    grouped by series, then by acquisition times no further apart than the session window."""
    by_folder: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in files:
        by_folder[str(PurePosixPath(cf.path).parent)].append(cf)
    out = []
    for folder, members in by_folder.items():
        series = {cf.header.series_uid for cf in members if cf.header and cf.header.series_uid}
        if folder != "." and len(series) <= 1:
            out.append(_session(section, sorted(members, key=lambda c: c.path), unit, whole_folder=True))
            continue
        split = [
            _session(section, group, unit, whole_folder=False) for group in _split_sessions(members, window)
        ]
        out.extend(_distinct_stems(split))
    return out


def _distinct_stems(acquisitions: list[Acquisition]) -> list[Acquisition]:
    """Two series of one folder acquired in the same minute: their outputs add the series number."""
    stems = Counter(a.output_stem for a in acquisitions)
    return [
        a.model_copy(update={"output_stem": f"{a.output_stem}_s{a.variant['series']}"})
        if stems[a.output_stem] > 1 and a.variant.get("series") is not None
        else a
        for a in acquisitions
    ]


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
    section: str, members: list[ClassifiedFile], unit: str | None, *, whole_folder: bool
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
        variant={"images": len(members), "series": _series_number(members)},
        warnings=tuple(unit_warnings(members, unit)),
    )


def _series_number(members: list[ClassifiedFile]) -> str:
    numbers = {cf.header.series_number for cf in members if cf.header and cf.header.series_number is not None}
    return str(min(numbers)) if numbers else "0"


def _common_prefix(stems: list[str]) -> str:
    """The shared start of the names, cut back to a whole token: `RI.QA.WL_0900`, never `..._G`."""
    prefix = os.path.commonprefix(stems)  # noqa: RUF071  (file names, compared character by character)
    if any(len(s) > len(prefix) and s[len(prefix)].isalnum() for s in stems):
        prefix = re.sub(r"[0-9A-Za-z]+$", "", prefix)
    prefix = re.sub(r"(?:\.\d+){2,}\.?$", "", prefix)  # a UID-named series (CT.1.2.840...) keeps its word
    return re.sub(r"[^0-9A-Za-z]+$", "", prefix)


def unit_warnings(members: list[ClassifiedFile], unit: str | None) -> list[str]:
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
