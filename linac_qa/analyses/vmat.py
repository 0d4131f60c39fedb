"""VMAT tests (DRGS, DRMLC, DRCS): an open-field image and a DMLC image, in either order (pylinac
tells them apart). Varian writes a whole VMAT session (several energies, an open and a DMLC image
each) in one folder and one series: images are paired by beam energy, test and acquisition order. An
open image that nothing names, beside a named DMLC image of its series and energy, is its partner. A
lone image waits for its partner for `general.group-wait-hours`, then is an error. Pass/fail is
pylinac's own `passed`."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from linac_qa.analyses.base import (
    AnalysisType,
    GroupContext,
    Grouped,
    Grouping,
    Inputs,
    VariantChecks,
    Verdict,
    one_of,
    results_data,
)
from linac_qa.analyses.criteria import Limit, judge, require_plausible, rounded
from linac_qa.grouping.image_sets import session_acquisition, session_sets
from linac_qa.intake.keywords import best_match
from linac_qa.model import EARLIEST, Acquisition, AnalysisResult, ClassifiedFile
from linac_qa.sections import AnalysisSettings, Keyword

TESTS = {"DRGS": "DRGS", "DRMLC": "DRMLC", "DRCS": "vmat.DRCS"}  # by name under pylinac
# What names each test: Varian's RapidArc QA calls DRMLC "T3 MLC speed" and DRGS "T2 DR GS".
TEST_KEYWORDS = (("DRGS", "drgs"), ("DRMLC", "drmlc"), ("DRCS", "drcs"), ("DRMLC", "mlc speed"))
PAIR = 2
# Evidence that both images show the test, measured on real pairs (three ARIA DRGS/DRMLC exports)
# and on synthetic faults. Dose: each segment's mean as a fraction of the image's range (1st to
# 99th percentile); real 0.83-0.99, an image of noise 0.17. Pattern: how far the DMLC-to-open
# ratio varies between the first and last segment centres; real 5.3-49 %, the same image twice 0,
# two open fields of different sizes 0.8 %. Below either, pylinac's deviations compare nothing.
MIN_SEGMENT_DOSE = 0.5
MIN_SEGMENT_PATTERN = 0.02


class VMATSettings(AnalysisSettings):
    keywords: list[Keyword] = Field(default_factory=lambda: ["vmat", "drgs", "drmlc", "drcs", "mlc speed"])
    test: Literal["DRGS", "DRMLC", "DRCS"] = "DRGS"  # when only "vmat" names the test
    analysis: dict[str, Any] = Field(default_factory=lambda: {"tolerance": 1.5})
    session_window_minutes: float = Field(default=30, gt=0)


class VMATAnalysis(AnalysisType[VMATSettings]):
    section = "vmat"
    settings_model = VMATSettings
    grouping = Grouping.SESSION
    accepts_images = False
    pylinac_names = tuple(TESTS.values())
    variant_options: ClassVar[VariantChecks] = {"test": one_of(TESTS)}

    def pylinac_name(self, acq: Acquisition, settings: VMATSettings) -> str:
        return TESTS[acq.variant.get("test", settings.test)]

    def session_window(self, settings: VMATSettings) -> dt.timedelta:
        return dt.timedelta(minutes=settings.session_window_minutes)

    def partners(self, own: list[ClassifiedFile], spare: list[ClassifiedFile]) -> list[ClassifiedFile]:
        """For each DMLC image without an open image of its series and energy, the unnamed image of
        that series and energy nearest in time."""
        wanted: dict[tuple[str, str | None], list[ClassifiedFile]] = defaultdict(list)
        for cf in own:
            wanted[_series_and_energy(cf)].append(cf)
        taken: list[ClassifiedFile] = []
        for key, files in wanted.items():
            dmlc = [cf for cf in files if _is_dmlc(cf)]
            missing = len(dmlc) - (len(files) - len(dmlc))
            candidates = [cf for cf in spare if _series_and_energy(cf) == key and cf not in taken]
            for image in dmlc[len(dmlc) - missing :] if missing > 0 else []:
                if not candidates:
                    break
                nearest = min(candidates, key=lambda c: _seconds_apart(c, image))
                candidates.remove(nearest)
                taken.append(nearest)
        return [
            cf.model_copy(
                update={
                    "analysis": self.section,
                    "status": None,
                    "by_content": False,  # named now, by its DMLC neighbour
                    "reason": f"open image of a VMAT test: unnamed, beside a DMLC image of its series "
                    f"({_series_and_energy(cf)[1] or 'energy unknown'})",
                }
            )
            for cf in taken
        ]

    def group(self, files: list[ClassifiedFile], settings: VMATSettings, ctx: GroupContext) -> Grouped:
        out = Grouped()
        per_folder = Counter(_folder(cf) for cf in files)
        for members in session_sets(files, self.session_window(settings)):
            pairs, alone = _pairs(members)
            for pair in pairs:
                folders = {_folder(cf) for cf in pair}
                whole = len(folders) == 1 and "." not in folders and per_folder[_folder(pair[0])] == len(pair)
                acq = session_acquisition(self.section, pair, ctx.unit, whole_folder=whole)
                energy = pair[0].header.energy if pair[0].header else None
                if len(pairs) > 1 and energy:  # a session of several pairs: each named by its energy
                    acq = acq.model_copy(
                        update={"output_stem": f"{acq.output_stem}_{energy.replace(' ', '')}"}
                    )
                test = _test_of(pair)
                out.acquisitions.append(
                    acq.model_copy(update={"variant": {**acq.variant, **({"test": test} if test else {})}})
                )
            for cf in alone:
                if ctx.still_waiting([cf.path]):
                    out.waiting += 1
                    continue
                waited = f"{ctx.wait_seconds / 3600:g} h"
                reason = f"a VMAT test needs an open and a DMLC image; no partner arrived in {waited}"
                out.decided.append(AnalysisResult.error(self.section, [cf.path], reason))
        return out

    def check_group(self, acq: Acquisition, settings: VMATSettings) -> str | None:
        images = acq.variant.get("images", len(acq.files))
        return (
            None if images == PAIR else f"a VMAT test is one open and one DMLC image; found {images} images"
        )

    def load(self, inputs: Inputs, acq: Acquisition, settings: VMATSettings) -> Any:
        return self.pylinac_class(acq, settings)(image_paths=[str(p) for p in inputs.paths])

    def judge(self, analysed: Any, acq: Acquisition, settings: VMATSettings) -> Verdict:
        doses = {name: _segment_dose(image, analysed.segments) for name, image in _images(analysed)}
        return judge_segments(
            results_data(analysed), len(analysed.roi_config), doses, _segment_pattern(analysed)
        )

    def save_image(self, analysed: Any, path: Path) -> None:
        # pylinac's VMAT classes have no save_analyzed_image: save the figure they plot.
        import matplotlib.pyplot as plt

        analysed.plot_analyzed_image(show=False)
        plt.savefig(str(path))


def judge_segments(r: Any, expected: int, doses: dict[str, float], pattern: float | None) -> Verdict:
    """The verdict on pylinac's results `r` and on what the images show: `expected` segments, each
    image's least-dosed segment (`doses`, a fraction of its range), and the spread of the DMLC-to-open
    ratio over the segments (`pattern`, None where the segments are not on one row). Apart from the
    images so that recorded results can be judged again."""
    metrics = {
        "max_deviation_percent": rounded(r.max_deviation_percent, 3),
        "abs_mean_deviation_percent": rounded(r.abs_mean_deviation, 3),
        "tolerance_percent": r.tolerance_percent,
        "segments": len(r.segment_data),
        "segment_pattern_percent": rounded(100 * pattern, 2) if pattern is not None else None,
    }
    require_plausible(
        [
            (
                len(r.segment_data) == expected,
                f"{len(r.segment_data)} segments analysed, {expected} expected",
            ),
            (
                all(np.isfinite([s.r_corr, s.r_dev]).all() for s in r.segment_data),
                "segment ratio not measured",
            ),
            *(
                (
                    dose >= MIN_SEGMENT_DOSE,
                    f"no dose over the segments in the {name} image ({dose:.2f} of its range)",
                )
                for name, dose in doses.items()
            ),
            (
                pattern is None or pattern >= MIN_SEGMENT_PATTERN,
                "the DMLC image shows no segments: its ratio to the open image varies"
                f" {100 * (pattern or 0):.1f} % across them (the same image twice, or two open fields?)",
            ),
        ],
        metrics,
    )
    limit = Limit(
        "max segment deviation",
        abs(r.max_deviation_percent),
        r.tolerance_percent,
        unit="%",
        ok=r.passed,
        key="vmat.analysis.tolerance",
    )
    return judge([limit], metrics=metrics)


def _pairs(members: list[ClassifiedFile]) -> tuple[list[list[ClassifiedFile]], list[ClassifiedFile]]:
    """(pairs, images left alone): per beam energy, each DMLC image with the open image nearest in
    time; where nothing tells DMLC from open (both named only by their folder), in time order."""
    by_energy: dict[str | None, list[ClassifiedFile]] = defaultdict(list)
    for cf in members:
        by_energy[cf.header.energy if cf.header else None].append(cf)
    pairs: list[list[ClassifiedFile]] = []
    alone: list[ClassifiedFile] = []
    for images in by_energy.values():
        images = sorted(images, key=_when)
        dmlc = [cf for cf in images if _is_dmlc(cf)]
        opens = [cf for cf in images if cf not in dmlc]
        if dmlc and opens:
            for image in dmlc:
                if not opens:
                    alone.append(image)
                    continue
                partner = min(opens, key=lambda c: _seconds_apart(c, image))
                opens.remove(partner)
                pairs.append([partner, image])
            alone.extend(opens)
        else:
            pairs.extend(images[i : i + PAIR] for i in range(0, len(images) - 1, PAIR))
            alone.extend(images[len(images) - len(images) % PAIR :])
    return pairs, alone


def _is_dmlc(cf: ClassifiedFile) -> bool:
    """Named as a DMLC test in its own name or labels, or recognised as one by its content."""
    if cf.by_content:  # routed here by what it holds: a row of DMLC segments
        return True
    own = [PurePosixPath(cf.path).name, *(cf.header.texts if cf.header else ())]
    return best_match(own, [(test, kw) for test, kw in TEST_KEYWORDS]) is not None


def _test_of(members: list[ClassifiedFile]) -> str | None:
    texts = [t for cf in members for t in cf.texts]
    match = best_match(texts, list(TEST_KEYWORDS))
    return match[0] if match else None


def _series_and_energy(cf: ClassifiedFile) -> tuple[str, str | None]:
    header = cf.header
    where = header.series_uid if header and header.series_uid else str(PurePosixPath(cf.path).parent)
    return where, header.energy if header else None


def _when(cf: ClassifiedFile) -> dt.datetime:
    return cf.header.acquired if cf.header and cf.header.acquired else EARLIEST


def _seconds_apart(a: ClassifiedFile, b: ClassifiedFile) -> float:
    return abs((_when(a) - _when(b)).total_seconds())


def _folder(cf: ClassifiedFile) -> str:
    return str(PurePosixPath(cf.path).parent)


def _images(analysed: Any) -> list[tuple[str, Any]]:
    return [("open", analysed.open_image), ("DMLC", analysed.dmlc_image)]


def _segment_dose(image: Any, segments: list[Any]) -> float:
    """The least-dosed segment's mean as a fraction of the image's range (1st to 99th percentile):
    near 1 where the field covers every segment, far below for an image of noise."""
    pixels = image.array
    low, high = np.percentile(pixels, [1, 99])
    if high <= low:
        return 0.0
    means = [float(pixels[_span(s.center.y, s.height), _span(s.center.x, s.width)].mean()) for s in segments]
    return (min(means) - low) / (high - low)


def _segment_pattern(analysed: Any) -> float | None:
    """The spread (max - min) of the DMLC-to-open ratio profile, normalised to its median, from the
    first to the last segment centre of a test whose segments lie on one row (DRGS, DRMLC): the
    junctions between segments always show in it. None for other layouts (DRCS)."""
    segments = analysed.segments
    if len({round(s.center.y) for s in segments}) != 1:
        return None
    xs = [s.center.x for s in segments]
    rows, cols = _span(segments[0].center.y, segments[0].height), slice(int(min(xs)), int(max(xs)) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = analysed.dmlc_image.array[rows, cols].mean(axis=0) / analysed.open_image.array[
            rows, cols
        ].mean(axis=0)
        ratio = ratio / np.median(ratio)
    spread = float(np.max(ratio) - np.min(ratio))
    return spread if np.isfinite(spread) else None


def _span(centre: float, size: float) -> slice:
    return slice(max(int(centre - size / 2), 0), int(centre + size / 2) + 1)
