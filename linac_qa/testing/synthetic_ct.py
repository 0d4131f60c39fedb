"""A small, deterministic synthetic CBCT of a CatPhan 504 that pylinac's `CatPhan504` analyses.

The phantom is drawn analytically from the geometry `pylinac.ct` measures (insert angles and radii,
geometry nodes, wire ramps, line pairs, low-contrast discs) on a 256 x 256 grid of 1 mm pixels:
39 slices 3 mm apart, the fewest pylinac accepts (`CatPhanBase.min_num_images`), reaching from the
uniformity module (-65 mm from the CTP404 centre) to 15 mm past the line-pair module (+30 mm, which
pylinac combines over +-3 slices). Noise comes from generators seeded by the call's arguments, so
the same call writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from scipy import ndimage

from linac_qa.testing.synthetic import (
    _IMPLEMENTATION_UID,
    _MACHINES,
    DEFAULT_WHEN,
    _key,
    _rng,
    _seed,
    _target,
    _uid,
)

__all__ = ["CT_IMAGE_STORAGE", "CatPhanScan", "catphan504_series", "catphan504_zip"]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")

_N = 256  # matrix; at 1 mm the 202 mm phantom keeps clear of the border pylinac clears
_PX = 1.0  # mm per pixel
_SS = 3  # supersampling of edges, for partial volume
_THICK = 3.0  # mm; below 3.5 mm pylinac measures the wire ramps over 3 slices
_N_SLICES = 39  # pylinac refuses a CatPhan series with fewer images
_Z_FIRST = -69.0  # mm, first slice; the CTP404 centre (z = 0) is slice 23
_R_PHANTOM = 100.0
_NOISE_HU = 8.0
_RAMP_TAN = math.tan(math.radians(23.0))  # the wire ramps' angle (pylinac's RAMP_ANGLE_RATIO is 0.42)

# Module extents along z (mm) in the phantom, around the offsets CatPhan504.modules gives them.
_MODULES: tuple[tuple[str, float, float], ...] = (
    ("486", -102.5, -52.5),
    ("515", -52.5, -12.5),
    ("404", -12.5, 12.5),
    ("528", 12.5, 52.5),
)
_BACKGROUND_HU = {"404": 5.0, "515": 30.0, "528": 10.0, "486": 0.0}
# CTP404 sensitometry inserts (pylinac angle, HU): pylinac's nominal values. The second air insert at
# +90 deg is there because pylinac finds the roll from the two air holes on the vertical axis.
_INSERTS_HU: dict[float, float] = {
    -90: -1000,
    -120: -196,
    180: -104,
    120: -47,
    60: 115,
    0: 365,
    -60: 1000,
    90: -1000,
}

_Grid = tuple[np.ndarray, np.ndarray]


def _centres(lo: float, hi: float, ss: int) -> np.ndarray:
    """Coordinates (mm, phantom centre at 0) of the sub-pixel centres of pixels lo..hi-1."""
    return ((np.arange(lo * ss, hi * ss) + 0.5) / ss - _N / 2) * _PX


class _Slice:
    """An HU image drawn object by object, each anti-aliased by supersampling its bounding box."""

    def __init__(self, fill: float) -> None:
        self.hu = np.full((_N, _N), fill)

    def paint(
        self,
        box: tuple[float, float, float, float],
        inside: Callable[[np.ndarray, np.ndarray], np.ndarray],
        hu: float,
    ) -> None:
        x0, x1, y0, y1 = box  # mm; x to the right, y down as in pylinac
        i0, i1 = max(math.floor(y0 / _PX + _N / 2), 0), min(math.ceil(y1 / _PX + _N / 2) + 1, _N)
        j0, j1 = max(math.floor(x0 / _PX + _N / 2), 0), min(math.ceil(x1 / _PX + _N / 2) + 1, _N)
        x, y = np.meshgrid(_centres(j0, j1, _SS), _centres(i0, i1, _SS))
        cover = inside(x, y).reshape(i1 - i0, _SS, j1 - j0, _SS).mean(axis=(1, 3))
        block = self.hu[i0:i1, j0:j1]
        block += (hu - block) * cover

    def disc(self, cx: float, cy: float, r: float, hu: float) -> None:
        self.paint((cx - r, cx + r, cy - r, cy + r), lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= r * r, hu)


def _polar(angle_deg: float, distance: float) -> tuple[float, float]:
    a = math.radians(angle_deg)
    return distance * math.cos(a), distance * math.sin(a)


def _module(name: str) -> np.ndarray:
    """The axial HU image of one module, without the CTP404 wire ramps (those depend on z)."""
    img = _Slice(-1000.0)
    background = _BACKGROUND_HU[name]
    img.disc(0, 0, _R_PHANTOM, 120.0)  # acrylic shell
    img.disc(0, 0, _R_PHANTOM - 2.5, background)
    if name == "404":
        for angle, hu in _INSERTS_HU.items():
            img.disc(*_polar(angle, 58.7), 6.1, hu)
        # Geometry nodes 50 mm apart. One is a Teflon pin: pylinac clips the node image to the nearer
        # of its two extremes, and a node as bright as the holes are dark keeps all four above noise.
        for x, y, hu in ((-25, -25, -1000), (25, -25, 1000), (-25, 25, -1000), (25, 25, -1000)):
            img.disc(x, y, 1.5, hu)
    elif name == "515":
        # Three sets (1 %, 0.5 %, 0.3 %) of the supra-slice discs, largest first, 50 mm out.
        for start, contrast in ((0, 10.0), (120, 5.0), (240, 3.0)):
            for angle, diameter in zip(
                (-87.4, -69.1, -52.7, -38.5, -25.1, -12.9), (15, 9, 8, 7, 6, 5), strict=True
            ):
                img.disc(*_polar(angle + start, 50), diameter / 2, background + contrast)
    elif name == "528":
        _line_pairs(img)
    return img.hu


def _line_pairs(img: _Slice) -> None:
    """The 1-8 lp/cm bar groups 47 mm out, in the arcs (fractions of a turn, counter-clockwise from
    180 deg on screen) where pylinac's CTP528CP504 looks for each group's peaks."""
    bounds = (0, 0.107, 0.173, 0.236, 0.286, 0.335, 0.387, 0.434, 0.479)
    bars = (2, 3, 4, 4, 4, 5, 5, 5)
    radius = 47.0
    for group in range(8):
        gap = 5.0 / (group + 1)  # mm: a bar and a gap per 1/(lp/cm)
        middle = (bounds[group] + bounds[group + 1]) * math.pi * radius  # arc length to the group's centre
        for k in range(bars[group]):
            along = middle + (2 * k - bars[group] + 1) * gap
            theta = math.pi - along / radius
            ux, uy = math.cos(theta), math.sin(theta)
            bx, by, ext = radius * ux, radius * uy, 6 + gap

            def bar(
                x: np.ndarray, y: np.ndarray, ux: float = ux, uy: float = uy, gap: float = gap
            ) -> np.ndarray:
                return (np.abs(x * ux + y * uy - radius) <= 6) & (np.abs(-x * uy + y * ux) <= gap / 2)

            img.paint((bx - ext, bx + ext, by - ext, by + ext), bar, 1000.0)


def _ramp_wires(grid: _Grid, z: float) -> np.ndarray:
    """The four 23-degree wire ramps 38 mm out as the slab [z - T/2, z + T/2] sees them (HU added).

    A wire crosses the slab over a length T / tan(23 deg); pylinac's slice thickness is that length
    (its FWHM) times 0.42.
    """
    x, y = grid
    s0, s1 = sorted(((z - _THICK / 2) / _RAMP_TAN, (z + _THICK / 2) / _RAMP_TAN))
    out = np.zeros((_N, _N))
    # (along the wire, across it): left/right wires run along y, top/bottom ones along x, and the
    # opposite ramps of a pair climb in opposite directions, as in the phantom.
    for along, across in ((y, x + 38), (-y, x - 38), (x, y + 38), (-x, y - 38)):
        length = np.clip(along + _PX / 2, s0, s1) - np.clip(along - _PX / 2, s0, s1)
        out += 900.0 * length / _PX * np.clip(1 - np.abs(across) / _PX, 0, 1)
    return out


@dataclass(frozen=True)
class CatPhanScan:
    """One CatPhan 504 CBCT series. `CatPhan504(files).analyze()` passes HU linearity, geometry,
    slice thickness (3 mm) and uniformity; `hu_offset=60` shifts every HU and fails the linearity
    (tolerance 40). `slices=N` keeps only the first N slices of the CTP404 module, a series pylinac
    refuses (too few images). Each `series_key` is its own series (UIDs)."""

    hu_offset: float = 0.0
    slices: int | None = None
    series_key: str = "a"
    machine: str = "TrueBeam1"
    when: dt.datetime = DEFAULT_WHEN
    description: str = "CBCT CatPhan504 Head"
    seed: int = 0
    # Slices past the phantom's far end (air), as a longer scan has: a 39-slice scan plus 21 is the
    # 60-slice series of the watch tests.
    beyond_phantom: int = 0


def _series(scan: CatPhanScan) -> Iterator[Dataset]:
    hu_offset, slices, series_key, machine = scan.hu_offset, scan.slices, scan.series_key, scan.machine
    when, description, seed = scan.when, scan.description, scan.seed
    # The folder or zip is not part of the key: the same call gives the same series wherever it is
    # written, and a partial series (`slices`) is the start of the full one, as an unfinished copy is.
    key = _key("catphan504", seed, series_key, machine, when, hu_offset, description)
    templates = {name: _module(name) for name, _, _ in _MODULES}
    x, y = np.meshgrid(_centres(0, _N, 1), _centres(0, _N, 1))
    zs = [_Z_FIRST + i * _THICK for i in range(_N_SLICES + scan.beyond_phantom)]
    first = 0
    if slices is not None:
        first = next(i for i, z in enumerate(zs) if z >= -12.5)  # the first CTP404 slice
    last = len(zs) if slices is None else min(first + slices, len(zs))
    station, serial, _, _ = _MACHINES.get(machine, (machine.upper()[:16], "", "", ""))
    study, series = _uid("study", machine, when.date()), _uid("ct-series", key)
    # One study per machine and day: series of other keys get other numbers in it (3 digits, as a
    # console's running count would be by then).
    series_number = 100 + _seed("series-number", series_key) % 900
    for index in range(first, last):
        z = zs[index]
        name = next((m for m, lo, hi in _MODULES if lo <= z < hi), None)
        if name is None:
            hu = np.full((_N, _N), -1000.0)
        else:
            hu = templates[name] + (_ramp_wires((x, y), z) if name == "404" else 0.0)
        hu = ndimage.gaussian_filter(hu, 0.6)  # the scanner's blur
        # Correlated noise, as reconstruction leaves it; one generator per slice keeps a partial
        # series identical to the start of the full one.
        noise = ndimage.gaussian_filter(_rng(key, index).standard_normal((_N, _N)), 0.7)
        hu += noise * (_NOISE_HU / noise.std()) + hu_offset
        sop = _uid("ct-sop", key, index)
        ds = _header(study, series, series_number, sop, station, serial, machine, when, description)
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [-(_N - 1) / 2 * _PX, -(_N - 1) / 2 * _PX, z]
        ds.SliceLocation = z
        ds.PixelData = np.clip(np.round(hu + 1024), 0, 4095).astype(np.uint16).tobytes()
        yield ds


def _header(
    study: UID,
    series: UID,
    series_number: int,
    sop: UID,
    station: str,
    serial: str,
    machine: str,
    when: dt.datetime,
    description: str,
) -> Dataset:
    """A CBCT slice header as an On-Board Imager writes it, without the slice's position and pixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.ImplementationClassUID = _IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop
    for prefix in ("Study", "Series", "Acquisition", "Content"):
        setattr(ds, f"{prefix}Date", when.strftime("%Y%m%d"))
        setattr(ds, f"{prefix}Time", when.strftime("%H%M%S"))
    ds.Modality = "CT"
    ds.Manufacturer = "Varian Medical Systems"
    ds.ManufacturerModelName = "On-Board Imager"
    ds.InstitutionName = "Synthetic QA Clinic"
    ds.StationName = station
    ds.DeviceSerialNumber = serial
    ds.RadiationMachineName = machine
    ds.StudyDescription = "Machine QA"
    ds.SeriesDescription = description
    ds.OperatorsName = "QA^Physicist"
    ds.PatientName = f"QA^{machine}"
    ds.PatientID = "QA"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "HEAD"
    ds.SliceThickness = _THICK
    ds.KVP = 100
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyID = "QA"
    ds.SeriesNumber = series_number
    ds.FrameOfReferenceUID = _uid("frame", machine, when.date())
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = _N
    ds.PixelSpacing = [_PX, _PX]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    return ds


def catphan504_series(folder: Path | str, scan: CatPhanScan | None = None) -> list[Path]:
    """The scan written to `folder` as `CT.<SOPInstanceUID>.dcm` files; two scans with different
    `series_key`s in one folder each analyse when given as their own list of files."""
    folder = Path(folder)
    paths = []
    for ds in _series(scan or CatPhanScan()):
        path = _target(folder / f"CT.{ds.SOPInstanceUID}.dcm")
        ds.save_as(str(path), write_like_original=False)
        paths.append(path)
    return paths


def catphan504_zip(zip_path: Path | str, scan: CatPhanScan | None = None) -> Path:
    """The scan as a zip, slices at its root (`CatPhan504.from_zip`)."""
    zip_path = Path(zip_path)
    scan = scan or CatPhanScan()
    datasets, when = _series(scan), scan.when
    with zipfile.ZipFile(_target(zip_path), "w") as zf:
        for ds in datasets:
            buffer = io.BytesIO()
            ds.save_as(buffer, write_like_original=False)
            # An explicit ZipInfo keeps the archive's bytes independent of the clock.
            info = zipfile.ZipInfo(f"CT.{ds.SOPInstanceUID}.dcm", date_time=when.timetuple()[:6])
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return zip_path
