"""Sessions: images that belong together (a Winston-Lutz set, a CT series, a VMAT pair) as one
acquisition. A folder holding one session is the session; otherwise images are grouped by series,
then by acquisition times no further apart than a window."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter, defaultdict
from pathlib import PurePosixPath

from linac_qa.intake.keywords import normalise
from linac_qa.model import EARLIEST, Acquisition, ClassifiedFile


def session_acquisitions(
    section: str, files: list[ClassifiedFile], *, window: dt.timedelta, unit: str | None
) -> list[Acquisition]:
    """Loose images as sets (`session_sets`), each one acquisition."""
    folders: dict[str, int] = Counter(_folder(cf) for cf in files)
    out = []
    for members in session_sets(files, window):
        folder = _folder(members[0])
        whole = (
            folder != "." and folders[folder] == len(members) and all(_folder(cf) == folder for cf in members)
        )
        out.append(session_acquisition(section, members, unit, whole_folder=whole))
    return _distinct_stems(out)


def session_sets(files: list[ClassifiedFile], window: dt.timedelta) -> list[list[ClassifiedFile]]:
    """Which images belong together. A folder holding one series (or none) is one set, and folders
    holding images of the same series are one set together (an Elekta export puts each image in a
    folder of its own). In a folder of several series, or loose at the top, images are split by
    series, then (without a series) where their acquisition times are further apart than the window.
    Last, images alone in a folder of their own that share a study and lie within the window of each
    other join (one series per image, as some consoles write)."""
    series_of = {cf.path: cf.header.series_uid for cf in files if cf.header and cf.header.series_uid}
    by_folder: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in files:
        by_folder[_folder(cf)].append(cf)
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    def join(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    loose: list[ClassifiedFile] = []
    for folder, members in by_folder.items():
        one_set = folder != "." and len({series_of.get(cf.path) for cf in members} - {None}) <= 1
        for cf in members:
            series = series_of.get(cf.path)
            if one_set:  # the folder is the set, joined with other such folders of its series
                join(f"file:{cf.path}", f"folder:{folder}")
                if series is not None:
                    join(f"file:{cf.path}", f"series:{series}")
            elif series is not None:  # split by series within this folder only
                join(f"file:{cf.path}", f"series:{series}:{folder}")
            else:
                loose.append(cf)
    sets: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in files:
        if cf not in loose:
            sets[find(f"file:{cf.path}")].append(cf)
    groups = [*sets.values(), *_split_by_time(loose, window)]
    alone = {cf.path for cf in files if len(by_folder[_folder(cf)]) == 1 and _folder(cf) != "."}
    return [sorted(g, key=lambda c: c.path) for g in _join_images_alone(groups, alone, window)]


def _join_images_alone(
    groups: list[list[ClassifiedFile]], alone: set[str], window: dt.timedelta
) -> list[list[ClassifiedFile]]:
    singles = [
        g[0] for g in groups if len(g) == 1 and g[0].path in alone and g[0].header and g[0].header.study_uid
    ]
    if len(singles) < 2:
        return groups
    out = [g for g in groups if not (len(g) == 1 and g[0] in singles)]
    by_study: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in singles:
        assert cf.header is not None and cf.header.study_uid is not None
        by_study[cf.header.study_uid].append(cf)
    for members in by_study.values():
        out.extend(_split_by_time(members, window))
    return out


def _folder(cf: ClassifiedFile) -> str:
    return str(PurePosixPath(cf.path).parent)


def _distinct_stems(acquisitions: list[Acquisition]) -> list[Acquisition]:
    """Two series of one folder acquired in the same minute: their outputs add the series number."""
    stems = Counter(a.output_stem for a in acquisitions)
    return [
        a.model_copy(update={"output_stem": f"{a.output_stem}_s{a.variant['series']}"})
        if stems[a.output_stem] > 1 and a.variant.get("series") is not None
        else a
        for a in acquisitions
    ]


def _split_by_time(members: list[ClassifiedFile], window: dt.timedelta) -> list[list[ClassifiedFile]]:
    """In acquisition order, a new set wherever two images are further apart than the window (or
    either has no time)."""
    stamped = sorted(
        members,
        key=lambda c: (c.header.acquired if c.header and c.header.acquired else EARLIEST, c.path),
    )
    groups: list[list[ClassifiedFile]] = []
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
    return groups


def session_acquisition(
    section: str, members: list[ClassifiedFile], unit: str | None, *, whole_folder: bool
) -> Acquisition:
    first = PurePosixPath(members[0].path)
    acquired = min((cf.header.acquired for cf in members if cf.header and cf.header.acquired), default=None)
    if whole_folder:
        stem, name = str(first.parent), first.parent.name + "/"
    else:
        stamp = acquired.strftime("%Y%m%d_%H%M") if acquired else f"s{_series_number(members)}"
        prefix = _common_prefix([PurePosixPath(cf.path).stem for cf in members]) or section
        # A set over several folders (one per image) is filed in the folder that holds them all.
        common = os.path.commonpath([str(PurePosixPath(cf.path).parent) for cf in members])
        stem = str(PurePosixPath(common) / f"{prefix}_{stamp}")
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
