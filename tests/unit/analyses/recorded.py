"""Judging recorded results without running pylinac: pylinac's own results objects, built with
chosen numbers, handed to an analysis's `judge` as the analysed object hands them over.

`model_construct` builds a results object from the fields a judge reads, without validating the
others that a real analysis fills in (images, plots, every ROI)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from linac_qa.analyses import REGISTRY
from linac_qa.analyses.criteria import Verdict
from linac_qa.config import load_settings
from linac_qa.model import Acquisition
from linac_qa.sections import AnalysisSettings


@dataclass(eq=False)  # hashed by identity, as results_data() caches per analysed object
class Recorded:
    """An analysed object reduced to its results: what `judge` reads of it."""

    results: Any

    def results_data(self, as_json: bool = False) -> Any:
        return self.results.model_dump_json() if as_json else self.results


def section(analysis: str, config: str = "") -> AnalysisSettings:
    """The settings of `analysis` from the defaults and `config` (a user's YAML)."""
    return load_settings(text=config).section(analysis)


def acquisition(analysis: str, *files: str, **variant: Any) -> Acquisition:
    files = files or ("RI.QA.recorded.dcm",)
    return Acquisition(analysis=analysis, files=files, name=files[0], output_stem="recorded", variant=variant)


def verdict(analysis: str, results: Any, config: str = "", *files: str, **variant: Any) -> Verdict:
    """`analysis`'s verdict on the recorded `results`, with the defaults and `config`."""
    return REGISTRY[analysis].judge(
        Recorded(results), acquisition(analysis, *files, **variant), section(analysis, config)
    )
