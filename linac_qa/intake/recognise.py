"""Which QA test an RT image shows, from its pixels: for images that no rule or keyword routed.

Real exports do not always name their test (a VMAT pair called `RI.<patient>.MV_179_0a.dcm` in a
folder named after the patient). This module looks at a downsampled copy of the image and at a few
full-resolution profiles, and recognises the test by its geometry:

    kind           what it looks like                                         section
    picket-fence   a row of narrow parallel strips, equally spaced             picket-fence
    winston-lutz   one small field (5-45 mm at isocentre) with a BB near its   winston-lutz
                   centre
    starshot       narrow spokes through one point                             starshot
    open-field     one large uniform rectangular field                         field-analysis
    vmat-dmlc      one large field cut into equal segments by narrow dips      vmat
    light-rad      one large field with BB markers in squares about its        light-rad
                   centre (Standard Imaging FC-2)

Contract. `recognise(path)` never raises for a bad file. It returns a `Recognition`:
- `kind`: the recognised `Kind`, or None when nothing is clearly ahead. A wrong route is worse than
  an ignored file, so an answer is given only when its confidence is at least `ROUTE_CONFIDENCE`
  and every other kind scores at least `ROUTE_MARGIN` less.
- `section`: the config section `kind` routes to (None when not recognised).
- `confidence` (0-1): the winning kind's score; every kind scores the worst of its criteria, each
  a ramp from "clearly not" (0) to "clearly so" (1). `margin`: its lead over the runner-up.
  `scores`: every kind's score, for callers that weigh the alternatives themselves.
- `detail`: for people, e.g. "picket fence, 11 strips 20 mm apart", or what was seen when
  nothing was recognised ("3 bright regions, no clear pattern").
- `field_mm`: (width, height) at isocentre of the largest bright region, when there is one.
- `variant`: the analysis options the image shows (also named in `detail`): a VMAT DMLC image's
  test, {"test": "DRGS"} for 7 segments, {"test": "DRMLC"} for 4; {"fff": True} for an open field
  that falls off towards its edges as a filter-free beam does. An open field that is neither
  clearly flattened nor clearly filter-free is not recognised: analysed the wrong way, its flatness
  would fail.
An `OPEN_FIELD` is only "one large uniform field": whether it is a field-analysis image or the
open partner of a VMAT DMLC image is decided where images are grouped, from its neighbours
(`field_mm` helps: VMAT open fields are the size of the DMLC field beside them).

`linac_qa.intake.classify` asks only about RT images that no rule or keyword routed: it routes a recognised
one to `section` ("recognised by content: <detail>", with `variant`) and leaves the rest ignored
("RT image not recognised: <detail>"); both are marked `by_content`, so that the grouping may still
give them to a named neighbour (an open image to the VMAT DMLC image of its series).

Sizes are in mm at isocentre (ImagePlanePixelSpacing scaled by RadiationMachineSAD / RTImageSID);
an image without a pixel spacing is assumed to be 400 mm wide, and says so in `detail`.
Planar imaging phantoms are not recognised: pylinac's own phantom detection costs a full analysis.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from scipy import ndimage

__all__ = [
    "ROUTE_CONFIDENCE",
    "ROUTE_MARGIN",
    "SECTIONS",
    "Kind",
    "Recognition",
    "recognise",
    "recognise_array",
    "recognise_dataset",
]


class Kind(StrEnum):
    PICKET_FENCE = "picket-fence"
    WINSTON_LUTZ = "winston-lutz"
    STARSHOT = "starshot"
    OPEN_FIELD = "open-field"
    VMAT_DMLC = "vmat-dmlc"
    LIGHT_RAD = "light-rad"


SECTIONS: Mapping[Kind, str] = {
    Kind.PICKET_FENCE: "picket-fence",
    Kind.WINSTON_LUTZ: "winston-lutz",
    Kind.STARSHOT: "starshot",
    Kind.OPEN_FIELD: "field-analysis",
    Kind.VMAT_DMLC: "vmat",
    Kind.LIGHT_RAD: "light-rad",
}

ROUTE_CONFIDENCE = 0.8
ROUTE_MARGIN = 0.5

_SMALL_PX = 256  # the downsampled copy's longer side, pixels
_ASSUMED_WIDTH_MM = 400.0  # an image without a pixel spacing: a typical EPID at isocentre
_MIN_CONTRAST_TO_NOISE = 15.0  # below this the image shows nothing (blank, or noise)
_FIELD_LEVEL = 0.5  # bright regions: above half-way between background and the brightest part
_SPOT_RESOLUTION_MM = 1.0  # large fields are searched for BBs and dips at about this pixel size
_SPOT_WINDOW_MM = 11.0  # ... that are narrower than this
_BB_RESOLUTION_MM = 0.5  # a small field is searched for its BB at about this pixel size
_BB_WINDOW_MM = 13.0  # BBs are up to 10 mm across


@dataclass(frozen=True)
class Recognition:
    kind: Kind | None
    confidence: float
    margin: float
    detail: str
    field_mm: tuple[float, float] | None = None
    scores: Mapping[Kind, float] = field(default_factory=dict)
    variant: Mapping[str, Any] = field(default_factory=dict)  # the analysis's options, e.g. {"test": "DRMLC"}

    @property
    def section(self) -> str | None:
        return SECTIONS[self.kind] if self.kind else None


def recognise(path: str | os.PathLike[str]) -> Recognition:
    """Read the DICOM file at `path` (with or without a preamble, any transfer syntax pydicom
    decodes) and recognise what its image shows."""
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # pydicom raises almost anything on a damaged file
        return _unrecognised(f"pixels cannot be read ({type(exc).__name__})")
    return recognise_dataset(ds)


def recognise_dataset(ds: Any) -> Recognition:
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        if frames > 1 or int(ds.get("SamplesPerPixel") or 1) > 1:
            return _unrecognised("a multi-frame or colour image")
        _set_transfer_syntax(ds)
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:  # pixel data missing, cut short, or in a syntax pydicom cannot decode
        return _unrecognised(f"pixels cannot be read ({type(exc).__name__})")
    try:
        return recognise_array(pixels, _pixel_mm(ds))
    except Exception as exc:  # an image unlike anything tried here must not stop classification
        return _unrecognised(f"image could not be examined ({type(exc).__name__}: {exc})"[:200])


def recognise_array(pixels: np.ndarray, pixel_mm: float | None) -> Recognition:
    """`pixels`: one greyscale frame; `pixel_mm`: its pixel size at isocentre, None if unknown."""
    if pixels.ndim != 2:
        return _unrecognised("a multi-frame or colour image")
    if min(pixels.shape) < 32:
        return _unrecognised(f"a {pixels.shape[1]} x {pixels.shape[0]} pixel image, too small")
    assumed = pixel_mm is None or not math.isfinite(pixel_mm) or pixel_mm <= 0
    mm = _ASSUMED_WIDTH_MM / max(pixels.shape) if assumed else float(pixel_mm)  # type: ignore[arg-type]
    picture = _Picture.of(pixels, mm)
    if picture is None:
        return _unrecognised("no field (a blank or noise image)")
    found = [
        _picket_fence(picture),
        _winston_lutz(picture),
        _starshot(picture),
        *_large_field(picture),
    ]
    scores = {f.kind: round(f.score, 3) for f in found}
    ranked = sorted(found, key=lambda f: f.score, reverse=True)
    best, runner_up = ranked[0], ranked[1]
    margin = best.score - runner_up.score
    field_mm = picture.largest_mm()
    if best.score >= ROUTE_CONFIDENCE and margin >= ROUTE_MARGIN:
        detail = best.detail + (" (pixel size assumed)" if assumed else "")
        return Recognition(
            best.kind, round(best.score, 3), round(margin, 3), detail, field_mm, scores, best.variant
        )
    seen = picture.describe()
    if best.score >= 0.3:
        seen += f"; closest: {best.kind.value} ({best.score:.2f}: {best.doubt or best.detail})"
    return Recognition(None, round(best.score, 3), round(margin, 3), seen, field_mm, scores)


# --------------------------------------------------------------------------- reading
def _set_transfer_syntax(ds: Any) -> None:
    """A file without its meta header (no preamble): pydicom knows from parsing how it was encoded
    but needs the transfer syntax named to decode the pixels."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    if ds.is_implicit_VR:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = (
            ExplicitVRLittleEndian if ds.is_little_endian else ExplicitVRBigEndian
        )


def _pixel_mm(ds: Any) -> float | None:
    """The pixel size at isocentre: the imager's pixel spacing scaled back by SAD / SID."""
    try:
        spacing = ds.get("ImagePlanePixelSpacing") or ds.get("PixelSpacing")
        if not spacing:
            return None
        sid = float(ds.get("RTImageSID") or 0)
        sad = float(ds.get("RadiationMachineSAD") or 1000.0)
        scale = sad / sid if sid > 0 else 1.0
        return float(spacing[0]) * scale
    except (TypeError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- the picture
def _ramp(value: float, bad: float, good: float) -> float:
    """0 at `bad`, 1 at `good`, linear between (either direction)."""
    if bad == good:
        return float(value >= good)
    return float(min(1.0, max(0.0, (value - bad) / (good - bad))))


@dataclass(frozen=True)
class _Region:
    """A bright region of the downsampled image, holes filled."""

    rows: slice  # its bounding box in small-image pixels
    cols: slice
    filled: np.ndarray  # the region within its box
    area: int  # pixels, holes filled

    @property
    def height(self) -> int:
        return self.rows.stop - self.rows.start

    @property
    def width(self) -> int:
        return self.cols.stop - self.cols.start

    @property
    def fill(self) -> float:
        return self.area / (self.height * self.width)

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape, dtype=bool)
        out[self.rows, self.cols] = self.filled
        return out


@dataclass(frozen=True)
class _Picture:
    """The image in field units: 0 the background, 1 the brightest structure (radiation bright)."""

    raw: np.ndarray  # the pixels as read
    offset: float  # field units = (raw - offset) * scale
    scale: float  # negative when radiation is dark in the raw pixels
    small: np.ndarray  # block mean of the image, in field units
    factor: int  # full pixels per small pixel
    mm: float  # full-resolution pixel at isocentre
    noise: float  # the small image's pixel noise, field units
    regions: tuple[_Region, ...]  # bright regions of `small`, largest first

    @classmethod
    def of(cls, raw: np.ndarray, mm: float) -> _Picture | None:
        factor = max(1, math.ceil(max(raw.shape) / _SMALL_PX))
        small = _block_mean(raw, factor)
        # A median keeps dead and hot pixels (and hot columns) from setting the levels.
        smooth = ndimage.median_filter(small, size=3, mode="nearest")
        border = np.concatenate(
            [smooth[:2].ravel(), smooth[-2:].ravel(), smooth[:, :2].ravel(), smooth[:, -2:].ravel()]
        )
        low, high = float(smooth.min()), float(smooth.max())
        background = float(np.median(border))
        top = low if background > (low + high) / 2 else high  # radiation is dark in some exports
        noise = 1.4826 * float(np.median(np.abs(small - smooth)))
        if abs(top - background) <= _MIN_CONTRAST_TO_NOISE * noise:
            return None
        scale = 1.0 / (top - background)
        small = (small - background) * scale
        return cls(
            raw, background, scale, small, factor, mm, noise * abs(scale), _regions(small > _FIELD_LEVEL)
        )

    @property
    def small_mm(self) -> float:
        return self.mm * self.factor

    def largest_mm(self) -> tuple[float, float] | None:
        if not self.regions:
            return None
        w, h = self.size_mm(self.regions[0])
        return (round(w, 1), round(h, 1))

    def describe(self) -> str:
        n = len(self.regions)
        if n == 0:
            return "no bright region"
        w, h = self.largest_mm() or (0.0, 0.0)
        if n == 1:
            return f"one bright region of {w:.0f} x {h:.0f} mm, no clear pattern"
        return f"{n} bright regions (largest {w:.0f} x {h:.0f} mm), no clear pattern"

    def size_mm(self, region: _Region) -> tuple[float, float]:
        """The region's width and height at half its maximum, through its middle third, to a
        fraction of a small pixel (the block means keep the edges' shape)."""
        r0, r1, c0, c1 = region.rows.start, region.rows.stop, region.cols.start, region.cols.stop
        h, w = r1 - r0, c1 - c0
        across = self.small[r0 + h // 3 : r1 - h // 3 or r0 + 1, max(c0 - 2, 0) : c1 + 2].mean(axis=0)
        along = self.small[max(r0 - 2, 0) : r1 + 2, c0 + w // 3 : c1 - w // 3 or c0 + 1].mean(axis=1)
        return _half_width(across) * self.small_mm, _half_width(along) * self.small_mm

    def full(self, rows: slice, cols: slice, pad_mm: float) -> np.ndarray:
        """Full-resolution pixels, in field units, under a box of the small image, padded."""
        pad = round(pad_mm / self.mm)
        height, width = self.raw.shape
        r0, c0 = max(rows.start * self.factor - pad, 0), max(cols.start * self.factor - pad, 0)
        r1, c1 = min(rows.stop * self.factor + pad, height), min(cols.stop * self.factor + pad, width)
        crop = self.raw[r0:r1, c0:c1].astype(np.float32)
        crop -= self.offset
        crop *= self.scale
        return crop


def _half_width(profile: np.ndarray) -> float:
    """Distance between the first and last crossings of half the profile's maximum, interpolated;
    a profile still above half at its ends counts to its ends."""
    half = float(profile.max()) / 2
    above = np.nonzero(profile >= half)[0]
    first, last = int(above[0]), int(above[-1])

    def crossing(inner: int, outer: int) -> float:
        if outer < 0 or outer >= len(profile):
            return float(inner)
        a, b = float(profile[outer]), float(profile[inner])
        return outer + (half - a) / (b - a) * (inner - outer) if b != a else float(inner)

    return crossing(last, last + 1) - crossing(first, first - 1)


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return a.astype(np.float32)
    rows, cols = a.shape[0] // k * k, a.shape[1] // k * k
    return a[:rows, :cols].reshape(rows // k, k, cols // k, k).mean(axis=(1, 3), dtype=np.float32)


def _regions(bright: np.ndarray) -> tuple[_Region, ...]:
    labels, _ = ndimage.label(bright)
    out = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        filled = _fill_holes(labels[box] == index)
        area = int(filled.sum())
        if area < 2:  # a single pixel: noise or a hot pixel that survived the median
            continue
        out.append(_Region(box[0], box[1], filled, area))
    out.sort(key=lambda r: r.area, reverse=True)
    return tuple(out)


@dataclass(frozen=True)
class _Found:
    kind: Kind
    score: float
    detail: str
    doubt: str = ""  # the criterion that kept the score down, for "closest: ..."
    variant: Mapping[str, Any] = field(default_factory=dict)


def _worst(
    kind: Kind, detail: str, criteria: Mapping[str, float], variant: Mapping[str, Any] | None = None
) -> _Found:
    """A kind's score is its worst criterion's."""
    name, score = min(criteria.items(), key=lambda item: item[1])
    return _Found(kind, score, detail, "" if score >= ROUTE_CONFIDENCE else name, variant or {})


def _nothing(kind: Kind, why: str) -> _Found:
    return _Found(kind, 0.0, why, why)


def _unrecognised(detail: str) -> Recognition:
    return Recognition(None, 0.0, 0.0, detail)


# --------------------------------------------------------------------------- picket fence
def _picket_fence(p: _Picture) -> _Found:
    if not p.regions:
        return _nothing(Kind.PICKET_FENCE, "no bright region")
    rows = slice(min(r.rows.start for r in p.regions), max(r.rows.stop for r in p.regions))
    cols = slice(min(r.cols.start for r in p.regions), max(r.cols.stop for r in p.regions))
    envelope = p.full(rows, cols, pad_mm=5.0)  # padded, so that the outermost pickets are whole
    # Pickets stand upright (a profile along x crosses them) or lie on their side: try both.
    found = [_pickets_across(envelope, p.mm), _pickets_across(envelope.T, p.mm)]
    return max(found, key=lambda f: f.score)


def _pickets_across(envelope: np.ndarray, mm: float) -> _Found:
    """Pickets standing upright in `envelope`: narrow peaks of the column profile, equally spaced,
    the same in the top, middle and bottom thirds of the pickets' length."""
    kind = Kind.PICKET_FENCE
    height, width = envelope.shape
    if height * mm < 40 or width * mm < 40:
        return _nothing(kind, "bright area smaller than 40 mm")
    core = envelope[round(height * 0.15) : round(height * 0.85)]
    thirds = np.array_split(core, 3, axis=0)
    whole = _peaks(core.mean(axis=0), mm)
    if len(whole.positions) < 3:
        return _nothing(kind, f"{len(whole.positions)} strips")
    spacing = np.diff(whole.positions)
    pitch = float(np.median(spacing))
    irregular = float(np.max(np.abs(spacing - pitch)) / pitch)
    shifts = []
    for part in thirds:
        local = _peaks(part.mean(axis=0), mm)
        if len(local.positions) != len(whole.positions):
            shifts.append(math.inf)
            continue
        shifts.append(float(np.max(np.abs(local.positions - whole.positions))))
    n = len(whole.positions)
    detail = f"picket fence, {n} strips {pitch:.0f} mm apart"
    return _worst(
        kind,
        detail,
        {
            "fewer than 5 strips": _ramp(n, 3, 5),
            "strips not equally spaced": _ramp(irregular, 0.3, 0.15),
            "spacing outside 5-60 mm": min(_ramp(pitch, 3, 5), _ramp(pitch, 80, 60)),
            "strips not narrow": _ramp(float(np.median(whole.widths)) / pitch, 0.5, 0.35),
            "strips of unequal brightness": _ramp(
                float(whole.heights.min() / np.median(whole.heights)), 0.4, 0.6
            ),
            "strips not straight and parallel": _ramp(max(shifts), 3.0, 1.5),
        },
    )


@dataclass(frozen=True)
class _Peaks:
    positions: np.ndarray  # mm
    widths: np.ndarray  # mm, at half prominence
    heights: np.ndarray  # prominences, field units


def _find_peaks() -> Any:
    """scipy.signal takes seconds of CPU to import, and most files are recognised by their names and
    labels before any image is looked at: imported when an image is."""
    from scipy.signal import find_peaks

    return find_peaks


def _peaks(profile: np.ndarray, mm: float) -> _Peaks:
    """Narrow bright peaks standing clear of their surroundings."""
    span = float(profile.max() - profile.min())
    idx, props = _find_peaks()(
        profile, prominence=max(0.25 * span, 0.05), width=(None, 12.0 / mm), rel_height=0.5
    )
    return _Peaks(idx * mm, props["widths"] * mm, props["prominences"])


# --------------------------------------------------------------------------- Winston-Lutz
def _winston_lutz(p: _Picture) -> _Found:
    kind = Kind.WINSTON_LUTZ
    if not p.regions:
        return _nothing(kind, "no bright region")
    field_region = p.regions[0]
    w, h = p.size_mm(field_region)
    others = sum(r.area for r in p.regions[1:]) / field_region.area
    stray = _stray_fraction(p, field_region)
    shape = {
        "field larger than 45 mm": _ramp(max(w, h), 60, 45),
        "field smaller than 5 mm": _ramp(min(w, h), 3, 5),
        "field not square or round": _ramp(max(w, h) / max(min(w, h), 1e-6), 1.5, 1.25),
        "field not compact": _ramp(field_region.fill, 0.6, 0.7),
        "more than one field": _ramp(others, 0.1, 0.03),
        "radiation outside the field": _ramp(stray, 0.01, 0.002),
    }
    if min(shape.values()) == 0:
        return _worst(kind, f"Winston-Lutz, {w:.0f} x {h:.0f} mm field", shape)
    bb = _bb_in_small_field(p, field_region)
    detail = f"Winston-Lutz, {w:.0f} x {h:.0f} mm field with a BB {bb.offset_mm:.1f} mm from its centre"
    size = max(w, h)
    return _worst(
        kind,
        detail,
        {
            **shape,
            "no BB in the field": _ramp(bb.depth, 0.03, 0.06),
            "dark spot at the field's edge, not inside": float(bb.enclosed),
            "BB too small": _ramp(bb.diameter_mm, 1.0, 1.5),
            "BB too large for a BB": _ramp(bb.diameter_mm, 0.9 * size, 0.7 * size),
            "BB not near the field centre": _ramp(bb.offset_mm / size, 0.35, 0.2),
        },
    )


@dataclass(frozen=True)
class _Dip:
    depth: float  # fraction of the field's level
    diameter_mm: float
    offset_mm: float  # from the field's centre
    enclosed: bool  # the field surrounds it (it is no dip at the field's edge)


_NO_DIP = _Dip(0.0, 0.0, math.inf, False)


def _bb_in_small_field(p: _Picture, region: _Region) -> _Dip:
    """The deepest dark spot on a small field's plateau, against the plateau's level about it."""
    crop = p.full(region.rows, region.cols, pad_mm=3.0)
    k = max(1, round(_BB_RESOLUTION_MM / p.mm))
    img = _block_mean(crop, k)
    mm = p.mm * k
    field_mask = _largest(_fill_holes(img > _FIELD_LEVEL * float(img.max())))
    if field_mask is None:
        return _NO_DIP
    # The field's plateau, without the penumbra (whose rounded corners would look like dips); a
    # BB deep enough to make a hole in it is filled in, one at the plateau's edge is not.
    level = float(np.percentile(img[field_mask], 90))
    inside = _largest(_fill_holes(img > 0.85 * level) & field_mask)
    if inside is None:
        return _NO_DIP
    _, dark, _ = _relief(img, inside, window_px=_BB_WINDOW_MM / mm, sigma_px=0.3 / mm)
    lowest = np.unravel_index(int(np.argmin(dark)), dark.shape)
    depth = -float(dark[lowest])
    spot = _largest(dark < -depth / 2, seed=lowest)
    if spot is None or depth <= 0:
        return _NO_DIP
    rim = inside & ~_eroded(inside, 1.0)
    centre = np.array(ndimage.center_of_mass(field_mask))
    bb = np.array(ndimage.center_of_mass(spot))
    return _Dip(
        depth,
        2 * math.sqrt(float(spot.sum()) / math.pi) * mm,
        float(np.hypot(*(bb - centre))) * mm,
        not (spot & rim).any(),
    )


def _relief(
    img: np.ndarray, inside: np.ndarray, window_px: float, sigma_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`img` smoothed; and how far each pixel of `inside` lies below (<= 0) and above (>= 0) the
    level of its surroundings, as fractions of that level (0 elsewhere). A morphological closing (opening)
    `window_px` wide gives the level: it fills in anything narrower. Beyond `inside` its edge
    values are continued outwards, so the field's own edge is no feature."""
    _, (near_r, near_c) = ndimage.distance_transform_edt(~inside, return_indices=True)
    smooth = ndimage.gaussian_filter(img[near_r, near_c], sigma=max(sigma_px, 0.5))
    size = round(window_px) | 1
    closed = ndimage.grey_closing(smooth, size=(size, size))
    opened = ndimage.grey_opening(smooth, size=(size, size))
    dark = np.where(inside, smooth / np.maximum(closed, 1e-6) - 1.0, 0.0)
    bright = np.where(inside, smooth / np.maximum(opened, 1e-6) - 1.0, 0.0)
    return smooth, dark, bright


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` with every enclosed gap filled (scipy's binary_fill_holes, in one labelling pass)."""
    labels, _ = ndimage.label(~mask)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | ~np.isin(labels, edge)


def _eroded(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """`mask` less a band `radius_px` wide along its edges (the image's edge is outside it)."""
    size = 2 * max(1, round(radius_px)) + 1
    return ndimage.minimum_filter(mask, size=size, mode="constant", cval=False)


def _dilated(mask: np.ndarray, radius_px: float) -> np.ndarray:
    size = 2 * max(1, round(radius_px)) + 1
    return ndimage.maximum_filter(mask, size=size, mode="constant", cval=False)


def _largest(mask: np.ndarray, seed: tuple[Any, ...] | None = None) -> np.ndarray | None:
    """The connected part of `mask` holding `seed`, else its largest."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    if seed is not None and labels[seed]:
        return labels == labels[seed]
    sizes = ndimage.sum_labels(mask, labels, range(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def _stray_fraction(p: _Picture, region: _Region) -> float:
    """The share of the image, away from `region`, that radiation reaches (above 20 %)."""
    near = _dilated(region.mask(p.small.shape), max(1.0, 5.0 / p.small_mm))
    return float(np.mean((p.small > 0.2) & ~near))


# --------------------------------------------------------------------------- starshot
def _starshot(p: _Picture) -> _Found:
    """Spokes through one point: on circles about the brightest point, the same number of narrow
    bright arcs, in opposite pairs, at angles that keep each spoke on one line through the centre."""
    kind = Kind.STARSHOT
    smooth = ndimage.gaussian_filter(p.small, sigma=1.5)
    cy, cx = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    reach = min(cy, cx, p.small.shape[0] - 1 - cy, p.small.shape[1] - 1 - cx) * p.small_mm
    if reach < 40:
        return _nothing(kind, "no centre with room for spokes around it")
    radii = np.linspace(0.35, 0.95, 5) * reach
    angles = np.linspace(0.0, 2 * math.pi, 720, endpoint=False)
    rings = []
    for radius in radii:
        r_px = radius / p.small_mm
        values = ndimage.map_coordinates(
            smooth, [cy - r_px * np.sin(angles), cx + r_px * np.cos(angles)], order=1, mode="nearest"
        )
        rings.append(_arcs(values, radius, p.noise))
    counts = [len(r[0]) for r in rings]
    n = max(set(counts), key=counts.count)
    if n < 6 or n % 2:
        return _nothing(kind, f"{n} bright arcs around the brightest point")
    same_count = sum(c == n for c in counts)
    usable = [(radius, ring) for radius, ring in zip(radii, rings, strict=True) if len(ring[0]) == n]
    _, (outer, _) = usable[-1]
    off_line, widths = 0.0, []
    for radius, (centres, arc_widths) in usable:
        # Each arc against the outer ring's nearest: a spoke through the centre keeps its angle.
        diff = (centres[:, None] - outer[None, :] + math.pi) % (2 * math.pi) - math.pi
        nearest = np.abs(diff).min(axis=1)
        off_line = max(off_line, float(np.max(radius * np.sin(nearest))))
        widths.append(float(np.median(arc_widths)))
    opposite = (outer[:, None] - outer[None, :]) % (2 * math.pi) - math.pi
    unpaired = float(np.max(np.abs(opposite).min(axis=1)))
    spread = max(widths) / max(min(widths), 1e-6)
    detail = f"starshot, {n // 2} spokes"
    return _worst(
        kind,
        detail,
        {
            "arcs differ from circle to circle": _ramp(same_count, 3, 4),
            "spokes not through one point": _ramp(off_line, 4.0, 2.0),
            "spokes not in opposite pairs": _ramp(math.degrees(unpaired), 6.0, 3.0),
            "spokes widen outwards (sectors, not beams)": _ramp(spread, 2.0, 1.5),
            "spokes wider than 20 mm": _ramp(max(widths), 25.0, 20.0),
        },
    )


def _arcs(values: np.ndarray, radius: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Bright arcs of one circle: their centre angles (radians) and widths (mm)."""
    low, high = float(values.min()), float(values.max())
    if high - low < 10 * noise:
        return np.array([]), np.array([])
    bright = values > (low + high) / 2
    if bright.all():
        return np.array([]), np.array([])
    start = int(np.argmin(bright))  # begin the walk in a gap, so no arc wraps round
    bright = np.roll(bright, -start)
    edges = np.diff(bright.astype(np.int8))
    rises, falls = np.nonzero(edges == 1)[0] + 1, np.nonzero(edges == -1)[0] + 1
    if len(falls) < len(rises):
        falls = np.append(falls, len(bright))
    step = 2 * math.pi / len(values)
    centres = ((rises + falls - 1) / 2 + start) * step % (2 * math.pi)
    return centres, (falls - rises) * step * radius


# --------------------------------------------------------------------------- large fields
_BRIDGE_MM = 10.0  # a large field's region bridges dark lines narrower than this (DMLC junctions)
# An open field's level 80 % of the way to its edges, against its centre's: a flattened beam's is
# about 1 (0.99-1.03 measured), a filter-free one's well below (0.87 for 6 MV FFF, 15 x 15 cm).
_FLAT_ABOVE = 0.965
_FFF_BELOW = 0.92
# pylinac's linear VMAT tests by their number of segments.
_VMAT_TESTS = {7: "DRGS", 4: "DRMLC"}


def _large_field(p: _Picture) -> list[_Found]:
    """One large field: uniform (an open field), cut into segments (VMAT DMLC), or with BB markers
    in squares (FC-2). The three share the field's criteria and differ inside it."""
    kinds = (Kind.OPEN_FIELD, Kind.VMAT_DMLC, Kind.LIGHT_RAD)
    regions = _regions(_bridged(p.small > _FIELD_LEVEL, _BRIDGE_MM / p.small_mm))
    if not regions:
        return [_nothing(k, "no bright region") for k in kinds]
    region = regions[0]
    w, h = p.size_mm(region)
    rows, cols = p.small.shape
    gap = min(region.rows.start, region.cols.start, rows - region.rows.stop, cols - region.cols.stop)
    others = sum(r.area for r in regions[1:]) / region.area
    common = {
        "field smaller than 60 mm": _ramp(min(w, h), 40, 60),
        "field not rectangular": _ramp(region.fill, 0.85, 0.93),
        "field reaches the image edge": _ramp(gap, 0, 2),
        "more than one field": _ramp(others, 0.05, 0.01),
        "radiation outside the field": _ramp(_stray_fraction(p, region), 0.03, 0.01),
    }
    size = f"{w:.0f} x {h:.0f} mm"
    inside = _Interior.of(p, region) if min(common.values()) > 0 else None
    if inside is None:
        return [_worst(k, f"a {size} field", common) for k in kinds]
    across = [inside.bands(axis) for axis in (0, 1)]
    bands = max(across, key=lambda b: (b.regular, b.count))
    no_dips = _ramp(max(b.count for b in across), 1, 0)
    markers = inside.markers()
    segments = bands.count + 1
    test = _VMAT_TESTS.get(segments)
    shoulders = inside.shoulders()
    fff = shoulders <= _FFF_BELOW
    return [
        _worst(
            Kind.OPEN_FIELD,
            f"open field {size}" + (", filter-free" if fff else ""),
            {
                **common,
                "dips across the field": no_dips,
                "spots or structure in the field": _ramp(inside.structure(), 0.012, 0.007),
                "edges inside the field": _ramp(inside.steepest(), 0.04, 0.025),
                "flattened or filter-free, unclear": max(
                    _ramp(shoulders, _FFF_BELOW + 0.02, _FFF_BELOW),
                    _ramp(shoulders, _FLAT_ABOVE - 0.02, _FLAT_ABOVE),
                ),
            },
            {"fff": True} if fff else None,
        ),
        _worst(
            Kind.VMAT_DMLC,
            f"VMAT DMLC, {segments} segments{f' ({test})' if test else ''} in a {size} field",
            {
                **common,
                "fewer than 3 segments": _ramp(segments, 2, 3),
                "segments not equal and centred": bands.regular,
            },
            {"test": test} if test else None,
        ),
        _worst(
            Kind.LIGHT_RAD,
            f"light/rad, {size} field with {len(markers)} BB markers",
            {
                **common,
                "no BB markers in squares about the centre": _squares(markers),
                "dips across the field": no_dips,
            },
        ),
    ]


def _bridged(mask: np.ndarray, width_px: float) -> np.ndarray:
    """`mask` with gaps narrower than `width_px` closed."""
    return _eroded(_dilated(mask, width_px / 2), width_px / 2) | mask


@dataclass(frozen=True)
class _Bands:
    count: int  # narrow dips running the field's whole length (a DMLC image's junctions)
    regular: float  # 0-1: how clearly they cut the field into equal segments about its centre


@dataclass(frozen=True)
class _Interior:
    """A large field's inside at about 1 mm per pixel, against its own level about each pixel
    (`_relief`): BBs, dips and any other structure narrower than 11 mm stand out."""

    smooth: np.ndarray  # the field, slightly smoothed
    dark: np.ndarray  # <= 0
    bright: np.ndarray  # >= 0
    slope: np.ndarray
    field: np.ndarray  # the field's pixels
    inside: np.ndarray  # pixels at least 4 mm inside the field's edge (BB markers are 10 mm in)
    mm: float
    centre: tuple[float, float]  # the field's centre (row, col)

    @classmethod
    def of(cls, p: _Picture, region: _Region) -> _Interior | None:
        crop = p.full(region.rows, region.cols, pad_mm=2.0)
        k = max(1, round(_SPOT_RESOLUTION_MM / p.mm))
        img = _block_mean(crop, k)
        mm = p.mm * k
        field_mask = _largest(_fill_holes(_bridged(img > _FIELD_LEVEL, _BRIDGE_MM / mm)))
        if field_mask is None:
            return None
        inside = _eroded(field_mask, 4.0 / mm)
        if inside.sum() < 100:
            return None
        smooth, dark, bright = _relief(img, inside, window_px=_SPOT_WINDOW_MM / mm, sigma_px=0.7 / mm)
        # Steepest slope, in fractions of the level per mm: the field's own shape (a filter-free
        # cone, horns) is gentle, an edge inside it (a second field, a phantom's rim) is not.
        slope = np.hypot(*np.gradient(smooth)) / np.maximum(smooth, 1e-6) / mm
        centre = ndimage.center_of_mass(field_mask)
        return cls(smooth, dark, bright, slope, field_mask, inside, mm, (float(centre[0]), float(centre[1])))

    def bands(self, axis: int) -> _Bands:
        """Narrow dips across the field (columns for axis 0, rows for axis 1) that its thirds along
        them all show: the junctions between the segments of a DMLC test."""
        dark = self.dark if axis == 0 else self.dark.T
        inside = self.inside if axis == 0 else self.inside.T
        lines = np.nonzero(inside.any(axis=1))[0]
        if len(lines) < 9:
            return _Bands(0, 0.0)
        depth, used = self._depth(dark[lines], inside[lines])
        thirds = [self._depth(dark[part], inside[part])[0] for part in np.array_split(lines, 3)]
        idx, props = _find_peaks()(
            np.where(used, depth, 0.0), height=0.015, prominence=0.015, width=0, rel_height=0.5
        )
        reach = max(1, round(2.0 / self.mm))
        kept = [
            n
            for n, (i, d) in enumerate(zip(idx, props["peak_heights"], strict=True))
            if all(t[max(i - reach, 0) : i + reach + 1].max() >= 0.4 * d for t in thirds)
        ]
        if not kept:
            return _Bands(0, 0.0)
        positions = idx[kept] * self.mm
        spacing = np.diff(positions)
        pitch = float(np.median(spacing)) if spacing.size else 0.0
        irregular = float(np.max(np.abs(spacing - pitch)) / pitch) if spacing.size else 1.0
        # DRGS and DRMLC segments sit symmetrically about the field's centre.
        span = np.nonzero(used)[0]
        middle = (span[0] + span[-1]) / 2 * self.mm
        off_centre = abs(float(positions.mean()) - middle) / max(pitch, 1e-6)
        regular = min(
            _ramp(irregular, 0.3, 0.15),
            _ramp(pitch, 6, 10),
            _ramp(pitch, 80, 60),
            _ramp(off_centre, 0.5, 0.25),
            # Junctions are narrow and shallow; gaps down to the background are no junctions.
            _ramp(float(props["peak_heights"][kept].max()), 0.7, 0.55),
            _ramp(float(props["widths"][kept].max()) * self.mm, 10.0, 7.0),
            _ramp(len(idx) - len(kept), 2, 0),  # dips that only some thirds show: not a clean DMLC
        )
        return _Bands(len(kept), regular)

    @staticmethod
    def _depth(dark: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How far the profile across `dark` (mean over its rows) lies below its median; and which
        columns are inside the field for at least half its length."""
        counts = inside.sum(axis=0)
        used = counts >= 0.5 * counts.max()
        profile = dark.sum(axis=0) / np.maximum(counts, 1)
        return np.where(used, float(np.median(profile[used])) - profile, 0.0), used

    def core(self) -> np.ndarray:
        """At least 7 mm inside the field's edge: clear of its penumbra."""
        return _eroded(self.inside, 3.0 / self.mm)

    def structure(self) -> float:
        """The largest departure from the local level in the core, as a fraction of the level (a
        lone dead pixel, averaged into its 1 mm pixel and smoothed, does not count)."""
        core = self.core()
        if not core.any():
            return math.inf
        return float(max(-self.dark[core].min(), self.bright[core].max()))

    def steepest(self) -> float:
        core = self.core()
        return float(self.slope[core].max()) if core.any() else math.inf

    def shoulders(self) -> float:
        """The level 80 % of the way from the field's centre to its four edges, as a fraction of the
        level at its centre: about 1 for a flattened beam, well below for a filter-free one."""
        rows, cols = np.nonzero(self.field)
        cy, cx = round(self.centre[0]), round(self.centre[1])
        reach_y, reach_x = 0.4 * (rows.max() - rows.min()), 0.4 * (cols.max() - cols.min())
        r = max(1, round(1.5 / self.mm))  # a few pixels square about each point

        def level(y: float, x: float) -> float:
            y0, x0 = round(y), round(x)
            return float(self.smooth[max(y0 - r, 0) : y0 + r + 1, max(x0 - r, 0) : x0 + r + 1].mean())

        edges = [
            level(cy, cx - reach_x),
            level(cy, cx + reach_x),
            level(cy - reach_y, cx),
            level(cy + reach_y, cx),
        ]
        return float(np.mean(edges)) / max(level(cy, cx), 1e-6)

    def markers(self) -> list[tuple[float, float]]:
        """Compact dark spots 2-10 mm across (BBs), as (x, y) mm from the field's centre."""
        labels, _ = ndimage.label(self.inside & (self.dark < -0.04))
        out = []
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            spot = labels[box] == index
            h, w = (s.stop - s.start for s in box)
            across = max(h, w) * self.mm
            if not (2.0 <= across <= 10.0) or max(h, w) > 2 * min(h, w) or spot.mean() < 0.5:
                continue
            r, c = ndimage.center_of_mass(spot)
            out.append(
                ((box[1].start + c - self.centre[1]) * self.mm, (box[0].start + r - self.centre[0]) * self.mm)
            )
        return out


def _squares(markers: Sequence[tuple[float, float]]) -> float:
    """1 when the markers are corners of squares (4 or 8 of them) centred near one point and
    square to the image axes, as the FC-2's BBs are; 0 when not."""
    n = len(markers)
    if n not in (4, 8):
        return 0.0
    pts = np.array(markers)
    centre = pts.mean(axis=0)
    rel = pts - centre
    radius = np.hypot(rel[:, 0], rel[:, 1])
    order = np.argsort(radius)
    worst = 0.0
    for group in np.split(order, n // 4):
        g = rel[group]
        r = radius[group]
        if r.min() < 10:
            return 0.0
        # Square to the axes: every corner at (+-d, +-d) about the centre.
        d = float(np.mean(np.abs(g)))
        worst = max(worst, float(np.max(np.abs(np.abs(g) - d))))
        signs = {(bool(x > 0), bool(y > 0)) for x, y in g}
        if len(signs) != 4:
            return 0.0
    return _ramp(worst, 4.0, 2.0)
