"""Small, deterministic synthetic VMAT QA image pairs (Varian DRGS and DRMLC tests).

The DMLC image is the open field times a per-segment response: every segment of the test (7 bands
20 mm wide for DRGS, 4 bands 30 mm wide for DRMLC, where pylinac puts its ROIs) gets the same dose,
with the dips a moving MLC leaves at the junctions between segments. pylinac divides the DMLC image
by the open one and compares the segments' mean ratios, so a segment given 5 % more dose fails.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pylinac.core.image_generator import AS1000Image, FilteredFieldLayer, GaussianFilterLayer
from pylinac.core.image_generator.layers import Layer
from scipy.special import erf

from linac_qa.testing.synthetic import DEFAULT_WHEN, SeededNoiseLayer, _key, _rng, _save, stamp_rt_image

__all__ = ["DmlcContent", "VmatTest", "vmat_pair"]

VmatTest = Literal["drgs", "drmlc"]
# What the DMLC image shows: the test's segments; an open field (the open delivery twice); no beam.
DmlcContent = Literal["segments", "open", "none"]

# Segment centres (mm from the field centre, along x) as pylinac's DRGS and DRMLC roi configs
# place them, and each segment's width.
_SEGMENTS: dict[str, tuple[tuple[float, ...], float]] = {
    "drgs": ((-60, -40, -20, 0, 20, 40, 60), 20.0),
    "drmlc": ((-45, -15, 15, 45), 30.0),
}
_FAILING_SEGMENT = 1  # the second from the left (ROI 2) gets the extra dose when `fail`
_FAIL_GAIN = 1.05
_OPEN_FIELD_MM = (120.0, 150.0)  # (y, x): pylinac's ROIs are 100 mm high and reach x = +-62.5 mm


class _SegmentLayer(Layer):
    """Multiplies the field by the DMLC response along x: `gains` per segment, dipping 20 % (sd 2 mm)
    at each junction, falling to nothing outside the segments with a 1.5 mm penumbra."""

    def __init__(self, centres: Sequence[float], width: float, gains: Sequence[float]) -> None:
        self.centres = centres
        self.width = width
        self.gains = gains

    def apply(self, image: np.ndarray, pixel_size: float, mag_factor: float) -> np.ndarray:
        cols = image.shape[1]
        x = (np.arange(cols) - (cols - 1) / 2) * pixel_size / mag_factor  # mm at isocentre
        edge = 1.5 * math.sqrt(2)
        response = np.zeros(cols)
        for centre, gain in zip(self.centres, self.gains, strict=True):
            lo, hi = centre - self.width / 2, centre + self.width / 2
            response += gain * 0.5 * (erf((x - lo) / edge) - erf((x - hi) / edge))
        for junction in self.centres[1:]:
            response *= 1 - 0.2 * np.exp(-((x - junction + self.width / 2) ** 2) / (2 * 2.0**2))
        out = image.astype(np.float64) * response[None, :]
        return np.clip(np.round(out), 0, np.iinfo(image.dtype).max).astype(image.dtype)


def vmat_pair(
    folder: Path | str,
    *,
    test: VmatTest = "drgs",
    fail: bool = False,
    machine: str = "TrueBeam1",
    when: dt.datetime = DEFAULT_WHEN,
    order: Literal["open-first", "dmlc-first"] = "open-first",
    dmlc: DmlcContent = "segments",
    seed: int = 0,
) -> tuple[Path, Path]:
    """The open and DMLC images of a VMAT test in `folder`; returns (open, DMLC) whatever the `order`.

    Named `RI.QA.VMAT_<TEST>_Open.dcm` and `..._DMLC.dcm`, labelled "Open" and "DMLC", in one series,
    acquired a minute apart in `order` starting at `when`. `DRGS(image_paths=(open, dmlc))` (or
    `DRMLC` for test="drmlc") `.analyze(tolerance=1.5)` passes; with `fail` one segment has 5 % more
    dose than the rest, a deviation of about 4 %, and fails. `dmlc` other than "segments" writes a
    faulty pair that pylinac still passes: "open" an open field as the DMLC image, "none" an image
    of no beam at all (noise).
    """
    folder = Path(folder)
    name = test.upper()
    faults = () if dmlc == "segments" else (dmlc,)  # the default pair keeps its bytes
    set_key = _key("vmat", seed, folder.name, machine, when, test, fail, order, *faults)
    rng = _rng(set_key)
    centres, width = _SEGMENTS[test]
    gains = [_FAIL_GAIN if fail and i == _FAILING_SEGMENT else 1.0 for i in range(len(centres))]
    labels = ("Open", "DMLC") if order == "open-first" else ("DMLC", "Open")
    paths: dict[str, Path] = {}
    for instance, label in enumerate(labels, start=1):
        sim = AS1000Image(sid=1000)
        if label == "Open" or dmlc != "none":
            sim.add_layer(FilteredFieldLayer(field_size_mm=_OPEN_FIELD_MM, alpha=0.6))
        if label == "DMLC" and dmlc == "segments":
            sim.add_layer(_SegmentLayer(centres, width, gains))
        sim.add_layer(GaussianFilterLayer(sigma_mm=1.0))
        sim.add_layer(SeededNoiseLayer(rng, sigma=0.0005))
        ds = stamp_rt_image(
            sim.as_dicom(),
            machine=machine,
            when=when + dt.timedelta(minutes=instance - 1),
            key=_key(set_key, label),
            label=label,
            description=f"VMAT {name} {label}",
            series_key=set_key,
            series_start=when,
            instance=instance,
        )
        paths[label] = _save(ds, folder / f"RI.QA.VMAT_{name}_{label}.dcm")
    return paths["Open"], paths["DMLC"]
