"""From classified files to acquisitions: one per image, or one per Winston-Lutz session (a whole
folder, a zip, or loose images of one series or one sitting). Files that classification already
decided become results here, so every file leaves in exactly one place."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import GroupContext, Grouping
from linac_qa.config import Settings
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile
from linac_qa.sessions import session_acquisitions, unit_warnings


@dataclass
class Plan:
    acquisitions: list[Acquisition] = field(default_factory=list)
    decided: list[AnalysisResult] = field(default_factory=list)  # ignored and error, from classification
    waiting: int = 0  # files of incomplete groups, held back for a later run

    def by_analysis(self) -> dict[str, list[Acquisition]]:
        out: dict[str, list[Acquisition]] = defaultdict(list)
        for acq in self.acquisitions:
            out[acq.analysis].append(acq)
        return dict(out)


def group_context(
    directory: Path, settings: Settings, now: float | None = None, busy_folders: frozenset[str] = frozenset()
) -> GroupContext:
    return GroupContext(
        directory=directory,
        unit=settings.general.unit,
        wait_seconds=settings.general.group_wait_hours * 3600,
        now=time.time() if now is None else now,
        busy_folders=busy_folders,
    )


def plan(classified: Iterable[ClassifiedFile], settings: Settings, ctx: GroupContext) -> Plan:
    result = Plan()
    by_section: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in classified:
        if cf.status is not None:
            result.decided.append(decided_result(cf))
        else:
            assert cf.analysis is not None
            by_section[cf.analysis].append(cf)
    for section, files in by_section.items():
        analysis = REGISTRY[section]
        own = analysis.group(files, settings.section(section), ctx)
        if own is not None:
            result.acquisitions.extend(own.acquisitions)
            result.decided.extend(own.decided)
            result.waiting += own.waiting
            continue
        loose = [cf for cf in files if analysis.grouping is Grouping.SESSION and not cf.zip_members]
        result.acquisitions.extend(_single(cf, settings, ctx.unit) for cf in files if cf not in loose)
        if loose:
            window = analysis.session_window(settings.section(section))
            result.acquisitions.extend(session_acquisitions(section, loose, window=window, unit=ctx.unit))
    if ctx.busy_folders:
        growing = [a for a in result.acquisitions if len(a.files) > 1 and _in_busy_folder(a, ctx)]
        result.acquisitions = [a for a in result.acquisitions if a not in growing]
        result.waiting += sum(len(a.files) for a in growing)
    return result


def _in_busy_folder(acq: Acquisition, ctx: GroupContext) -> bool:
    return any(folder_of(f) in ctx.busy_folders for f in acq.files)


def folder_of(rel_path: str) -> str:
    return PurePosixPath(rel_path).parent.as_posix()


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
        warnings=tuple(unit_warnings([cf], unit)),
    )
