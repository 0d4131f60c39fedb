"""A small, deterministic synthetic MV image of a Standard Imaging QC-3 phantom.

The phantom is drawn from the geometry pylinac's `StandardImagingQC3` samples: a plate on its stand
at 45 degrees, five line-pair groups (0.1 to 0.76 lp/mm) along its long axis and five low-contrast
discs around them. Everything is in mm at isocentre, scaled from pylinac's "radius" of the phantom
(0.0896 of the side of its 168 mm bounding box).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
from pylinac.core.image_generator import AS1000Image, GaussianFilterLayer
from pylinac.core.image_generator.layers import Layer, clip_add

from linac_qa.testing.synthetic import DEFAULT_WHEN, SeededNoiseLayer, _key, _rng, _save, stamp_rt_image

__all__ = ["qc3_image"]

_RADIUS = 168 * 0.0896  # mm: pylinac's unit of distance on the QC-3
_ANGLE = 45.0  # deg, the long axis; pylinac angles run clockwise from +x on screen (y down)
_PLATE = (150.0, 88.0)  # mm; rotated 45 deg its bounding box is the 168 mm pylinac expects
_PLATE_TRANSMISSION = 0.75
# (distance along the long axis in radii, lp/mm), as pylinac's high-contrast ROIs
_LINE_PAIRS = ((2.8, 0.1), (-2.8, 0.2), (1.45, 0.25), (-1.45, 0.45), (0.0, 0.76))
_BAR_TRANSMISSION = 0.5  # relative to the plate
# (distance in radii, angle from the long axis, transmission relative to the plate), as pylinac's
# low-contrast ROIs; the two faintest stay below pylinac's visibility threshold (100), the rest are seen.
_LOW_CONTRAST = ((2.0, -90, 1.003), (2.4, 55, 1.006), (2.4, -55, 1.02), (2.4, 128, 1.03), (2.4, -128, 1.05))


class _QC3Layer(Layer):
    """A flood field (80 % of full scale) through the phantom, anti-aliased by sampling each pixel
    3 x 3 times; without its line pairs or its low-contrast discs when told."""

    def __init__(self, line_pairs: bool, low_contrast: bool) -> None:
        self.line_pairs = _LINE_PAIRS if line_pairs else ()
        self.low_contrast = _LOW_CONTRAST if low_contrast else ()

    def apply(self, image: np.ndarray, pixel_size: float, mag_factor: float) -> np.ndarray:
        px = pixel_size / mag_factor  # mm at isocentre
        ss = 3
        rows, cols = image.shape
        # Only the phantom's bounding box (168 mm) needs drawing: outside it the flood is open.
        half = min(round(90 / px), rows // 2, cols // 2)
        r0, c0 = rows // 2 - half, cols // 2 - half
        y = ((np.arange(2 * half * ss) + 0.5) / ss + r0 - rows / 2) * px
        x = ((np.arange(2 * half * ss) + 0.5) / ss + c0 - cols / 2) * px
        a = math.radians(_ANGLE)
        # (u along the long axis, v across it): pylinac's ROI at (distance d, angle phi) is at
        # u = d cos(phi), v = d sin(phi) relative to the phantom angle.
        u = x[None, :] * math.cos(a) + y[:, None] * math.sin(a)
        v = -x[None, :] * math.sin(a) + y[:, None] * math.cos(a)
        transmission = np.ones_like(u)
        transmission[(np.abs(u) <= _PLATE[0] / 2) & (np.abs(v) <= _PLATE[1] / 2)] = _PLATE_TRANSMISSION
        for distance, lp_mm in self.line_pairs:
            du = u - distance * _RADIUS
            # Groups fill the gaps between them, so that pylinac's 7.5 mm ROIs see no group edge.
            in_group = (np.abs(du) <= 10.5) & (np.abs(v) <= 12)
            bars = in_group & ((du * lp_mm) % 1.0 < 0.5)  # bars half a period wide, across the axis
            transmission[bars] *= _BAR_TRANSMISSION
        for distance, angle, relative in self.low_contrast:
            phi = math.radians(angle)
            cu, cv = distance * _RADIUS * math.cos(phi), distance * _RADIUS * math.sin(phi)
            transmission[(u - cu) ** 2 + (v - cv) ** 2 <= 9.0**2] *= relative
        flood = np.ones(image.shape)
        flood[r0 : r0 + 2 * half, c0 : c0 + 2 * half] = transmission.reshape(2 * half, ss, 2 * half, ss).mean(
            axis=(1, 3)
        )
        return clip_add(image, flood * (0.8 * np.iinfo(image.dtype).max), dtype=image.dtype)


def qc3_image(
    path: Path | str,
    *,
    machine: str = "TrueBeam1",
    when: dt.datetime = DEFAULT_WHEN,
    label: str = "QC3",
    description: str = "Planar imaging QC-3 MV",
    line_pairs: bool = True,
    low_contrast: bool = True,
    seed: int = 0,
) -> Path:
    """A QC-3 MV image at isocentre (SID 1000 mm, aS1000) that `StandardImagingQC3(path).analyze()`
    analyses: 3 of the 5 low-contrast ROIs seen (median contrast 0.019, median CNR 5.0) and every
    `mtf_lp_mm` entry from 90 % (about 0.18 lp/mm) to 10 % (about 0.74 lp/mm) found.

    Without `line_pairs` pylinac finds no MTF 50 % (and sees all 5 discs); without either, a bare
    plate, it sees no low-contrast ROI either, yet still "analyses" the phantom it located."""
    path = Path(path)
    missing = [name for name, drawn in (("no-lp", line_pairs), ("no-lc", low_contrast)) if not drawn]
    key = _key("qc3", seed, path.name, machine, when, *missing)
    sim = AS1000Image(sid=1000)
    sim.add_layer(_QC3Layer(line_pairs, low_contrast))
    sim.add_layer(GaussianFilterLayer(sigma_mm=0.7))
    sim.add_layer(SeededNoiseLayer(_rng(key), sigma=0.002))
    ds = stamp_rt_image(
        sim.as_dicom(), machine=machine, when=when, key=key, label=label, description=description
    )
    return _save(ds, path)
