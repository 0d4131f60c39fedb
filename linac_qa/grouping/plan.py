"""From classified files to acquisitions: one per image, or one per Winston-Lutz session (a whole
folder, a zip, or loose images of one series or one sitting). Files that classification already
decided become results here, so every file leaves in exactly one place."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.base import AnalysisType, GroupContext, Grouping
from linac_qa.config import Settings
from linac_qa.grouping.image_sets import session_acquisitions, unit_warnings
from linac_qa.intake.classify import classify_files
from linac_qa.intake.discovery import Discovery, discover
from linac_qa.model import Acquisition, AnalysisResult, ClassifiedFile, Status
from linac_qa.records.ledger import Known
from linac_qa.sections import AnalysisSettings


@dataclass
class Plan:
    acquisitions: list[Acquisition] = field(default_factory=list)
    decided: list[AnalysisResult] = field(default_factory=list)  # ignored and error, from classification
    waiting: int = 0  # files of incomplete groups, held back for a later run
    routed: dict[str, str] = field(default_factory=dict)  # what routed each file to its analysis


def by_analysis(acquisitions: Iterable[Acquisition]) -> dict[str, list[Acquisition]]:
    out: dict[str, list[Acquisition]] = defaultdict(list)
    for acq in acquisitions:
        out[acq.analysis].append(acq)
    return dict(out)


class Discover(Protocol):
    def __call__(
        self, directory: Path, settings: Settings, known: dict[str, Known], *, force: bool, retry_errors: bool
    ) -> Discovery: ...


Classify = Callable[[Path, list[str], Settings], list[ClassifiedFile]]


@dataclass(frozen=True)
class Planned:
    """What a run of a directory would do: what discovery found, and the plan made of it."""

    found: Discovery
    plan: Plan

    def skipped(self, stopped: int = 0) -> Counter[str]:
        """Files counted, not listed: discovery's, those waiting for a partner, and those a stop
        kept from their analysis."""
        waiting = Counter({"waiting-for-partner": self.plan.waiting, "stopped": stopped})
        return Counter(self.found.skipped) + waiting


def plan_directory(
    directory: Path,
    settings: Settings,
    known: dict[str, Known],
    *,
    force: bool = False,
    retry_errors: bool = False,
    discover: Discover = discover,
    classify: Classify = classify_files,
) -> Planned:
    """Discover -> classify -> plan: what is new under `directory`, as what, and in which
    acquisitions. `known`: the ledger's files (none: everything is new). The flow passes its
    Prefect tasks as `discover` and `classify`, so that each step is a task run."""
    found = discover(directory, settings, known, force=force, retry_errors=retry_errors)
    classified = classify(directory, [s.path for s in found.new], settings)
    ctx = group_context(directory, settings, busy_folders=frozenset(found.busy_folders))
    return Planned(found, plan([*found.decided(), *classified], settings, ctx))


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
    classified = list(classified)
    errors = [cf for cf in classified if cf.status is Status.ERROR]
    result.decided.extend(AnalysisResult.classified(cf) for cf in classified if cf.status is Status.IGNORED)
    by_section: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in classified:
        if cf.status is None:
            assert cf.analysis is not None
            by_section[cf.analysis].append(cf)
    _one_file_per_image(by_section, result)
    _adopt_partners(by_section, classified, result)
    result.routed = {cf.path: cf.reason for files in by_section.values() for cf in files}
    members: dict[str, ClassifiedFile] = {cf.path: cf for cf in classified}
    for section, files in by_section.items():
        analysis = REGISTRY[section]
        options = settings.section(section)
        # A zip is one acquisition as it is (a Winston-Lutz set, a CT series, a VMAT pair).
        result.acquisitions.extend(_single(cf, settings, ctx.unit) for cf in files if cf.zip_members)
        loose = [cf for cf in files if not cf.zip_members]
        own = analysis.group(loose, options, ctx)
        if own is not None:
            grouped = own.acquisitions
            result.decided.extend(own.decided)
            result.waiting += own.waiting
        elif analysis.grouping is Grouping.SESSION:
            grouped = session_acquisitions(
                section, loose, window=analysis.session_window(options), unit=ctx.unit
            )
        else:
            grouped = [_single(cf, settings, ctx.unit) for cf in loose]
        result.acquisitions.extend(
            _with_variant(acq, [members[f] for f in acq.files], analysis, options) for acq in grouped
        )
    _one_error_per_set(result, errors, members, settings)
    if ctx.busy_folders:
        growing = [a for a in result.acquisitions if len(a.files) > 1 and _in_busy_folder(a, ctx)]
        result.acquisitions = [a for a in result.acquisitions if a not in growing]
        result.waiting += sum(len(a.files) for a in growing)
    return result


def _one_file_per_image(by_section: dict[str, list[ClassifiedFile]], result: Plan) -> None:
    """The same image exported twice (two files, one SOP Instance UID) is analysed once: a set with
    an image twice over would be judged on a duplicate. The one among most images of its own series
    stays, then the one among most of its section's files (a stray copy, even in a busy folder, never
    takes a set's image away); the others say so."""
    for section, files in by_section.items():
        first: dict[str, str] = {}
        kept = []
        for cf in _most_accompanied_first(files):
            uid = cf.header.instance_uid if cf.header and not cf.zip_members else None
            if uid is None or uid not in first:
                if uid is not None:
                    first[uid] = cf.path
                kept.append(cf)
                continue
            reason = f"the same image as {first[uid]} (same SOP Instance UID): analysed once, with that file"
            result.decided.append(AnalysisResult.ignored(section, [cf.path], reason))
        by_section[section] = kept


def _most_accompanied_first(files: list[ClassifiedFile]) -> list[ClassifiedFile]:
    per_folder = Counter(folder_of(cf.path) for cf in files)
    per_series = Counter((folder_of(cf.path), _series(cf)) for cf in files if _series(cf))

    def company(cf: ClassifiedFile) -> tuple[int, int, str]:
        folder = folder_of(cf.path)
        return (-per_series.get((folder, _series(cf)), 0), -per_folder[folder], cf.path)

    return sorted(files, key=company)


def _series(cf: ClassifiedFile) -> str | None:
    return (cf.header.series_uid or cf.header.study_uid) if cf.header else None


def _adopt_partners(
    by_section: dict[str, list[ClassifiedFile]], classified: list[ClassifiedFile], result: Plan
) -> None:
    """Images that nothing names but whose test is clear from their neighbours (the open image of a
    VMAT test beside its named DMLC image) move to that test's section."""
    for section in list(by_section):
        spare = [
            cf
            for cf in classified
            if cf.by_content and cf.analysis != section and cf.status in (None, Status.IGNORED)
        ]
        for cf in REGISTRY[section].partners(by_section[section], spare):
            original = next(c for c in classified if c.path == cf.path)
            if original.status is Status.IGNORED:
                result.decided = [r for r in result.decided if r.files != [cf.path]]
            elif original.analysis is not None:
                by_section[original.analysis].remove(original)
            by_section[section].append(cf)


def _with_variant(
    acq: Acquisition, members: list[ClassifiedFile], analysis: AnalysisType, options: AnalysisSettings
) -> Acquisition:
    """What the grouping found (images, series, the VMAT test, the beam energy its images share),
    then what the files name (the first file's wins), then what a routing rule says: an explicit
    rule has the last word. The energy keys the QA record's baselines: a 10X flatness is never
    judged against the 6X baseline."""
    named: dict[str, Any] = {}
    ruled: dict[str, Any] = {}
    for cf in reversed(members):
        named.update(analysis.variant(cf, options))
        ruled.update(cf.variant)
    energies = {cf.header.energy if cf.header else None for cf in members}
    shared = {"energy": energies.pop()} if len(energies) == 1 and None not in energies else {}
    return acq.model_copy(update={"variant": {**acq.variant, **shared, **named, **ruled}})


def _one_error_per_set(
    result: Plan, errors: list[ClassifiedFile], members: dict[str, ClassifiedFile], settings: Settings
) -> None:
    """A damaged file of a set (a CT slice, a Winston-Lutz image) makes the whole set one error that
    lists every file, never one row per file: the set cannot be analysed without it."""
    by_series: dict[str, list[ClassifiedFile]] = defaultdict(list)
    for cf in errors:
        series = cf.header.series_uid if cf.header else None
        if series and (cf.analysis is None or REGISTRY[cf.analysis].grouping is Grouping.SESSION):
            by_series[series].append(cf)
        else:
            result.decided.append(AnalysisResult.classified(cf))
    if not by_series:
        return
    kept = []
    for acq in result.acquisitions:
        sets = {s for f in acq.files if (h := members[f].header) and (s := h.series_uid)}
        hit = sorted(sets & by_series.keys())
        if not hit or REGISTRY[acq.analysis].grouping is not Grouping.SESSION:
            kept.append(acq)
            continue
        broken = [cf for s in hit for cf in by_series.pop(s)]
        result.decided.append(_set_error(acq.analysis, [*acq.files], broken))
    result.acquisitions = kept
    for broken in by_series.values():
        if len(broken) == 1:
            result.decided.append(AnalysisResult.classified(broken[0]))
        else:
            section = next((cf.analysis for cf in broken if cf.analysis), None)
            result.decided.append(_set_error(section, [], broken))


def _set_error(section: str | None, good: list[str], broken: list[ClassifiedFile]) -> AnalysisResult:
    reasons = Counter(cf.reason for cf in broken)
    listed = "; ".join(f"{n} x {why}" if n > 1 else why for why, n in reasons.most_common(3))
    more = f"; and {len(reasons) - 3} other reasons" if len(reasons) > 3 else ""
    files = sorted({*good, *(cf.path for cf in broken)})
    return AnalysisResult.error(
        section, files, f"{len(broken)} of {len(files)} files of this set cannot be read: {listed}{more}"
    )


def _in_busy_folder(acq: Acquisition, ctx: GroupContext) -> bool:
    return any(folder_of(f) in ctx.busy_folders for f in acq.files)


def folder_of(rel_path: str) -> str:
    return PurePosixPath(rel_path).parent.as_posix()


def _single(cf: ClassifiedFile, settings: Settings, unit: str | None) -> Acquisition:
    assert cf.analysis is not None
    variant: dict[str, Any] = {}
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
