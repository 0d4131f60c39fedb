"""Small, deterministic synthetic QA acquisitions for the tests and the demo folder.

Images are drawn with pylinac's image generator (`pylinac.core.image_generator`) and written with a
realistic RT Image header by `stamp_rt_image`. Every random draw comes from a generator seeded by
the call's arguments, so the same call writes the same bytes. Each image generator returns what it
wrote and is checked against the pylinac analysis the project runs on it (see the docstrings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pylinac.core.image_generator import (
    AS500Image,
    AS1000Image,
    AS1200Image,
    FilteredFieldLayer,
    FilterFreeFieldLayer,
    GaussianFilterLayer,
    PerfectBBLayer,
    SlopeLayer,
)
from pylinac.core.image_generator.layers import Layer, clip_add
from pylinac.core.image_generator.simulators import Simulator
from pylinac.winston_lutz import bb_projection_with_rotation
from scipy import ndimage

__all__ = [
    "DEFAULT_WHEN",
    "RT_IMAGE_STORAGE",
    "WL_AXES",
    "Imager",
    "SeededNoiseLayer",
    "WinstonLutzSession",
    "ct_slice",
    "light_rad",
    "open_field",
    "picket_fence",
    "png_image",
    "random_bytes",
    "rt_plan",
    "save_unnamed",
    "stamp_rt_image",
    "starshot",
    "strip_names",
    "truncated_dicom",
    "winston_lutz_set",
    "winston_lutz_zip",
    "zero_bytes",
]

RT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.1")
DEFAULT_WHEN = dt.datetime(2024, 3, 4, 7, 0, 0)  # a Monday morning
# Fixed so that the same call writes the same bytes (pylinac would put a random one here).
_IMPLEMENTATION_UID = UID("1.2.826.0.1.3680043.8.498.1")

Imager = Literal["AS500", "AS1000", "AS1200"]
_IMAGERS: dict[str, type[Simulator]] = {"AS500": AS500Image, "AS1000": AS1000Image, "AS1200": AS1200Image}

# Station name, serial number, model and software version, as a TDS or 4D console writes them.
_MACHINES: dict[str, tuple[str, str, str, str]] = {
    "TrueBeam1": ("TRUEBEAM1", "H191187", "TDS", "2.7.0.13"),
    "Clinac2": ("CLINAC2-4DITC", "3512", "Clinac iX", "11.0.47"),
}

# Millennium-120 leaf boundaries at isocentre (mm): 10 x 10 mm, 40 x 5 mm, 10 x 10 mm.
_MLC120_EDGES_MM = np.concatenate(
    [np.arange(-200, -100, 10), np.arange(-100, 100, 5), np.arange(100, 201, 10)]
).astype(float)
_PF_SPACING_MM = 20.0
_PF_FAULTY_LEAF = 32  # a 5 mm leaf just off the central axis, as a sticking leaf would be

# (gantry, collimator, couch): the usual 4 gantry angles plus 2 couch kicks.
WL_AXES: tuple[tuple[float, float, float], ...] = (
    (0, 0, 0),
    (90, 0, 0),
    (180, 0, 0),
    (270, 0, 0),
    (0, 0, 45),
    (0, 0, 315),
)


# --------------------------------------------------------------------------- determinism
def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_seed(*parts))


def _uid(*parts: object) -> UID:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


class SeededNoiseLayer(Layer):
    """Gaussian pixel noise from a given generator (pylinac's RandomNoiseLayer cannot be seeded)."""

    def __init__(self, rng: np.random.Generator, sigma: float = 0.0008) -> None:
        self.rng = rng
        self.sigma = sigma

    def apply(self, image: np.ndarray, pixel_size: float, mag_factor: float) -> np.ndarray:
        noise = self.rng.standard_normal(image.shape, dtype=np.float32)
        noise *= self.sigma * np.iinfo(image.dtype).max
        return clip_add(image, noise, dtype=image.dtype)


# --------------------------------------------------------------------------- header
def stamp_rt_image(
    ds: Dataset,
    *,
    machine: str,
    when: dt.datetime,
    key: str,
    label: str,
    description: str,
    series_key: str | None = None,
    series_start: dt.datetime | None = None,
    instance: int = 1,
) -> Dataset:
    """Replace pylinac's placeholder header with a realistic, deterministic RT Image header.

    `key` names this image (its SOP Instance UID); images sharing `series_key` share a series,
    which started at `series_start` (default: `when`, the image's acquisition time).
    """
    station, serial, model, software = _MACHINES.get(
        machine, (machine.upper()[:16], f"SN{_seed(machine) % 10**6:06d}", "TDS", "2.7.0.13")
    )
    sop = _uid("sop", key, instance)
    ds.SOPClassUID = RT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop
    ds.Modality = "RTIMAGE"
    # One study per machine and day, as a console's machine-QA session is.
    ds.StudyInstanceUID = _uid("study", machine, when.date())
    ds.SeriesInstanceUID = _uid("series", series_key or key)
    ds.FrameOfReferenceUID = _uid("frame", machine, when.date())
    start = series_start or when
    for prefix, moment in (("Study", start), ("Series", start), ("Acquisition", when), ("Content", when)):
        setattr(ds, f"{prefix}Date", moment.strftime("%Y%m%d"))
        setattr(ds, f"{prefix}Time", moment.strftime("%H%M%S"))
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    ds.PatientID = "QA"
    ds.PatientName = f"QA^{machine}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyID = "QA"
    ds.StudyDescription = "Machine QA"
    ds.SeriesDescription = description
    # Numbered through the day as a console numbers them, so two sessions in a folder differ.
    ds.SeriesNumber = start.hour * 60 + start.minute + 1
    ds.InstanceNumber = instance
    ds.OperatorsName = "QA^Physicist"
    ds.Manufacturer = "Varian Medical Systems"
    ds.ManufacturerModelName = model
    ds.SoftwareVersions = software
    ds.InstitutionName = "Synthetic QA Clinic"
    ds.StationName = station
    ds.DeviceSerialNumber = serial
    ds.RadiationMachineName = machine
    ds.RTImageLabel = label[:16]  # VR SH
    ds.RTImageName = label[:64]
    ds.RTImageDescription = description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "PORTAL"]
    ds.ConversionType = "DI"
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    # pylinac's array_to_dicom computes RTImagePosition from the dpi instead of mm: write the real
    # upper-left pixel centre (IEC image plane, y up) and a Varian-style receptor translation.
    px = float(ds.ImagePlanePixelSpacing[0])
    ds.RTImagePosition = [
        round(-(ds.Columns * px) / 2 + px / 2, 4),
        round((ds.Rows * px) / 2 - px / 2, 4),
    ]
    ds.XRayImageReceptorTranslation = [0.0, 0.0, round(1000.0 - float(ds.RTImageSID), 3)]
    ds.XRayImageReceptorAngle = 0.0
    ds.file_meta.MediaStorageSOPClassUID = RT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.ImplementationClassUID = _IMPLEMENTATION_UID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _target(path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(str(_target(path)), write_like_original=False)
    return path


def _key(kind: str, *parts: object) -> str:
    return "|".join((kind, *map(str, parts)))


# --------------------------------------------------------------------------- picket fence
class _LeafShiftLayer(Layer):
    """Moves single leaf-pair segments of the pickets along leaf travel: shifts[(picket, leaf)] = mm.

    Pickets are vertical (leaf travel along columns); applied before the blur, as the MLC would be.
    """

    def __init__(self, picket_x_mm: Sequence[float], shifts: dict[tuple[int, int], float]) -> None:
        self.picket_x_mm = picket_x_mm
        self.shifts = shifts

    def apply(self, image: np.ndarray, pixel_size: float, mag_factor: float) -> np.ndarray:
        px_iso = pixel_size / mag_factor
        out = image.astype(np.float32)
        rows, cols = out.shape
        cy, cx = (rows - 1) / 2, (cols - 1) / 2
        half = round(8.0 / px_iso)
        for (picket, leaf), dx in self.shifts.items():
            r0 = max(round(cy + _MLC120_EDGES_MM[leaf] / px_iso), 0)
            r1 = min(round(cy + _MLC120_EDGES_MM[leaf + 1] / px_iso), rows)
            if r1 <= r0:
                continue  # leaf outside the panel
            xc = round(cx + self.picket_x_mm[picket] / px_iso)
            block = out[r0:r1, xc - half : xc + half]
            out[r0:r1, xc - half : xc + half] = ndimage.shift(
                block, (0, dx / px_iso), order=1, mode="nearest"
            )
        return np.clip(np.round(out), 0, np.iinfo(image.dtype).max).astype(image.dtype)


def picket_fence(
    path: Path | str,
    *,
    leaf_error_mm: float = 0.0,
    imager: Imager = "AS1000",
    sid_mm: float = 1500.0,
    gantry: float = 0.0,
    machine: str = "TrueBeam1",
    label: str = "PicketFence",
    description: str = "Picket fence",
    when: dt.datetime = DEFAULT_WHEN,
    pickets: int | None = None,
    seed: int = 0,
) -> Path:
    """A Millennium-120 picket fence (3 mm pickets, 20 mm apart, every leaf jittered by sd 0.04 mm).

    `PicketFence(path).analyze(tolerance=0.5)` passes; `leaf_error_mm` (e.g. 1.2) displaces one
    leaf of one picket by that much, which fails it. `pickets`: how many (default: as many as fit,
    11 on the AS1000 at SID 1500); pylinac finds 2 or more, and cannot analyse 1.
    """
    path = Path(path)
    # Variants only key what they change: the default image stays the same bytes.
    variant = () if pickets is None else (pickets,)
    key = _key("pf", seed, path.name, machine, when, leaf_error_mm, imager, sid_mm, gantry, *variant)
    rng = _rng(key)
    sim = _IMAGERS[imager](sid=sid_mm)
    width_mm = sim.shape[1] * sim.pixel_size / sim.mag_factor
    # As many pickets as fit with a 25 mm margin on each side; odd so one sits on the axis.
    n = int((width_mm - 50) // _PF_SPACING_MM) + 1
    if n % 2 == 0:
        n -= 1
    n = pickets or n
    picket_x = [(i - (n - 1) / 2) * _PF_SPACING_MM for i in range(n)]
    for x in picket_x:
        sim.add_layer(FilteredFieldLayer(field_size_mm=(400, 3), cax_offset_mm=(0, x)))
    shifts = {
        (p, leaf): float(np.clip(rng.normal(0, 0.04), -0.12, 0.12)) for p in range(n) for leaf in range(60)
    }
    if leaf_error_mm:
        shifts[(min(n // 2 + 1, n - 1), _PF_FAULTY_LEAF)] = leaf_error_mm
    sim.add_layer(_LeafShiftLayer(picket_x, shifts))
    sim.add_layer(GaussianFilterLayer(sigma_mm=1.0))
    sim.add_layer(SeededNoiseLayer(rng))
    ds = stamp_rt_image(
        sim.as_dicom(gantry_angle=gantry),
        machine=machine,
        when=when,
        key=key,
        label=label,
        description=description,
    )
    return _save(ds, path)


# --------------------------------------------------------------------------- Winston-Lutz
@dataclass(frozen=True)
class WinstonLutzSession:
    """One Winston-Lutz session (20 x 20 mm MLC field, 5 mm BB), written as `<prefix>G000_C000_T000.dcm`.

    The BB sits `offset_mm` = (left, up, in) from isocentre. All images share one series and are
    acquired 40 s apart. `WinstonLutz(folder).analyze(bb_size_mm=5)` gives a max 2D CAX-to-BB of
    0.22 mm and a couch iso size of 0.32 mm for (0.2, -0.1, 0.15), 1.55 and 2.2 mm for
    (1.5, 0.5, 0.3). Another `prefix` (and `when`) writes a second, loose session beside the first.
    `bb=False` leaves the BB out (a set shot without the phantom): pylinac finds no BB.
    """

    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    prefix: str = "RI.QA.WL_"
    axes: Sequence[tuple[float, float, float]] = WL_AXES
    imager: Imager = "AS1000"
    machine: str = "TrueBeam1"
    label: str = "WL"
    description: str = "Winston-Lutz MLC 2x2"
    when: dt.datetime = DEFAULT_WHEN
    bb: bool = True
    seed: int = 0

    def images(self, name: str) -> list[tuple[str, Dataset]]:
        """The session's images as (file name, dataset); `name` (folder or zip) keys the UIDs."""
        set_key = _key(
            "wl",
            self.seed,
            name,
            self.prefix,
            self.machine,
            self.when,
            self.offset_mm,
            self.imager,
            *(() if self.bb else ("no-bb",)),
        )
        if self.imager != "AS1200" and any(coll for _, coll, _ in self.axes):
            # pylinac's rotated-rectangle helper swaps row and column of the pivot: a collimator
            # rotation is drawn about the wrong point unless the panel is square.
            raise ValueError("collimator rotations need the square AS1200 imager")
        rng = _rng(set_key)
        left, up, inward = self.offset_mm
        out: list[tuple[str, Dataset]] = []
        for i, (gantry, coll, couch) in enumerate(self.axes):
            sim = _IMAGERS[self.imager](sid=1000)
            sim.add_layer(FilteredFieldLayer(field_size_mm=(20, 20), rotation=coll))
            lateral, longitudinal = bb_projection_with_rotation(
                offset_left=left, offset_up=up, offset_in=inward, gantry=gantry, couch=couch, sad=1000
            )
            # pylinac's BB layer takes (out, right), hence the negated longitudinal offset.
            if self.bb:
                sim.add_layer(
                    PerfectBBLayer(bb_size_mm=5, cax_offset_mm=(-longitudinal, lateral), alpha=-0.5)
                )
            sim.add_layer(GaussianFilterLayer(sigma_mm=0.5))
            sim.add_layer(SeededNoiseLayer(rng))
            g, c, t = round(gantry), round(coll), round(couch)
            name = f"{self.prefix}G{g:03d}_C{c:03d}_T{t:03d}.dcm"
            ds = stamp_rt_image(
                sim.as_dicom(gantry_angle=gantry, coll_angle=coll, table_angle=couch),
                machine=self.machine,
                when=self.when + dt.timedelta(seconds=40 * i),
                key=_key(set_key, name),
                label=f"{self.label} G{g} C{c} T{t}",
                description=self.description,
                series_key=set_key,
                series_start=self.when,
                instance=i + 1,
            )
            out.append((name, ds))
        return out


def winston_lutz_set(folder: Path | str, session: WinstonLutzSession | None = None) -> list[Path]:
    """The session as files in `folder` (created if needed)."""
    folder = Path(folder)
    images = (session or WinstonLutzSession()).images(folder.name)
    return [_save(ds, folder / name) for name, ds in images]


def winston_lutz_zip(zip_path: Path | str, session: WinstonLutzSession | None = None) -> Path:
    """The session as a zip, images at the zip's root (`WinstonLutz.from_zip`)."""
    zip_path = Path(zip_path)
    session = session or WinstonLutzSession()
    images = session.images(zip_path.name)
    when = session.when
    # Level 1: noisy pixels shrink to 43 % of their size, against 39 % at level 6 in 9 times the time.
    with zipfile.ZipFile(_target(zip_path), "w") as zf:
        for i, (name, ds) in enumerate(images):
            buffer = io.BytesIO()
            ds.save_as(buffer, write_like_original=False)
            # An explicit ZipInfo keeps the archive's bytes independent of the clock.
            info = zipfile.ZipInfo(name, date_time=(when + dt.timedelta(seconds=40 * i)).timetuple()[:6])
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return zip_path


# --------------------------------------------------------------------------- starshot
class _SpokeLayer(Layer):
    """One starshot spoke through the panel centre, displaced `offset_mm` perpendicular to itself.

    Drawn here rather than with a rotated field layer, whose pivot is only right on square panels.
    """

    def __init__(
        self, angle_deg: float, offset_mm: float, width_mm: float = 3.0, alpha: float = 0.35
    ) -> None:
        self.angle = math.radians(angle_deg)
        self.offset_mm = offset_mm
        self.width_mm = width_mm
        self.alpha = alpha

    def apply(self, image: np.ndarray, pixel_size: float, mag_factor: float) -> np.ndarray:
        px_iso = pixel_size / mag_factor
        rows, cols = image.shape
        y = (np.arange(rows, dtype=np.float32) - (rows - 1) / 2)[:, None] * px_iso
        x = (np.arange(cols, dtype=np.float32) - (cols - 1) / 2)[None, :] * px_iso
        distance = np.abs(x * math.sin(self.angle) - y * math.cos(self.angle) - self.offset_mm)
        # Partial-volume edge one pixel wide, so sub-pixel offsets show in the image.
        cover = np.clip((self.width_mm / 2 - distance) / px_iso + 0.5, 0.0, 1.0)
        return clip_add(image, cover * (self.alpha * np.iinfo(image.dtype).max), dtype=image.dtype)


def starshot(
    path: Path | str,
    *,
    wobble_mm: float = 0.1,
    n_spokes: int = 8,
    film: bool = False,
    imager: Imager = "AS1000",
    machine: str = "TrueBeam1",
    label: str = "Starshot",
    description: str = "Starshot collimator",
    when: dt.datetime = DEFAULT_WHEN,
    seed: int = 0,
) -> Path:
    """A starshot of `n_spokes` beams, alternate spokes displaced by +-`wobble_mm` (wobble ~2x that).

    `Starshot(path).analyze(radius=0.8, tolerance=1.0)` passes at 0.1 mm and fails at 0.9 mm.
    `film=True` writes a 16-bit TIFF with a dpi tag and no header (so `machine`, `label`,
    `description` and `when` go unused): analyse it with `Starshot(path, sid=1000)`.
    """
    path = Path(path)
    key = _key("star", seed, path.name, machine, when, wobble_mm, n_spokes, film, imager)
    rng = _rng(key)
    sim = _IMAGERS[imager](sid=1000)
    start = float(rng.uniform(0, 10))
    for i in range(n_spokes):
        sim.add_layer(_SpokeLayer(start + i * 180.0 / n_spokes, wobble_mm if i % 2 else -wobble_mm))
    sim.add_layer(GaussianFilterLayer(sigma_mm=0.8))
    sim.add_layer(SeededNoiseLayer(rng))
    if film:
        dpi = 25.4 / sim.pixel_size  # SID 1000: the panel pixel is the isocentre pixel
        Image.fromarray(sim.image.astype(np.uint16)).save(_target(path), format="TIFF", dpi=(dpi, dpi))
        return path
    ds = stamp_rt_image(
        sim.as_dicom(), machine=machine, when=when, key=key, label=label, description=description
    )
    return _save(ds, path)


# --------------------------------------------------------------------------- open field
def open_field(
    path: Path | str,
    *,
    fff: bool = False,
    slope_x: float = 0.0,
    field_mm: float = 150.0,
    imager: Imager = "AS1000",
    machine: str = "TrueBeam1",
    label: str | None = None,
    description: str | None = None,
    when: dt.datetime = DEFAULT_WHEN,
    seed: int = 0,
) -> Path:
    """A square open field (flattened, or FFF) with a crossplane gradient `slope_x` (0.12 = 12 %).

    `FieldAnalysis(path).analyze(protocol=Protocol.VARIAN, is_FFF=fff)`: symmetry within 2 % and
    (flattened) flatness within 3 % at slope 0; slope 0.12 breaks symmetry. The label and
    description default to name the energy, 6X or 6FFF.
    """
    path = Path(path)
    energy = "6FFF" if fff else "6X"
    key = _key("open", seed, path.name, machine, when, fff, slope_x, field_mm, imager)
    sim = _IMAGERS[imager](sid=1000)
    layer = FilterFreeFieldLayer if fff else FilteredFieldLayer
    sim.add_layer(layer(field_size_mm=(field_mm, field_mm), alpha=0.8))
    if slope_x:
        sim.add_layer(SlopeLayer(slope_x=slope_x, slope_y=0))
    sim.add_layer(GaussianFilterLayer(sigma_mm=2))
    sim.add_layer(SeededNoiseLayer(_rng(key), sigma=0.0005))
    size_cm = f"{field_mm / 10:g}x{field_mm / 10:g}"
    ds = stamp_rt_image(
        sim.as_dicom(),
        machine=machine,
        when=when,
        key=key,
        label=f"Open {energy}" if label is None else label,
        description=f"Open field {size_cm} {energy}" if description is None else description,
    )
    return _save(ds, path)


# --------------------------------------------------------------------------- light / radiation
# pylinac's generate_lightrad BB layout, which StandardImagingFC2 finds.
_FC2_BBS_MM = ((-40, -40), (-40, 40), (40, -40), (40, 40), (-65, -65), (-65, 65), (65, -65), (65, 65))


def light_rad(
    path: Path | str,
    *,
    field_mm: tuple[float, float] = (100.0, 100.0),
    offset_mm: tuple[float, float] = (0.0, 0.0),
    imager: Imager = "AS1000",
    machine: str = "TrueBeam1",
    label: str = "LightRad FC2",
    description: str | None = None,
    when: dt.datetime = DEFAULT_WHEN,
    seed: int = 0,
) -> Path:
    """A Standard Imaging FC-2 light/radiation image of a `field_mm` (x, y) field.

    `StandardImagingFC2(path).analyze()` reports the field size and `field_bb_offset_x/y_mm` equal
    to `offset_mm` to within a pixel (0.39 mm on the AS1000), as the field edges fall on whole
    pixels. The description defaults to name the nominal size in cm (e.g. 10x10). pylinac wants
    the x and y sizes within 10 mm of each other.
    """
    path = Path(path)
    key = _key("lightrad", seed, path.name, machine, when, field_mm, offset_mm, imager)
    sim = _IMAGERS[imager](sid=1000)
    (width, height), (dx, dy) = field_mm, offset_mm
    # pylinac layers take (height, width) and offsets as (down, right); pylinac reports the BBs
    # relative to the field, so the field moves the other way.
    sim.add_layer(FilteredFieldLayer(field_size_mm=(height, width), cax_offset_mm=(-dy, -dx)))
    for bb in _FC2_BBS_MM:
        sim.add_layer(PerfectBBLayer(bb_size_mm=4, cax_offset_mm=bb))
    sim.add_layer(GaussianFilterLayer(sigma_mm=2.0))
    sim.add_layer(SeededNoiseLayer(_rng(key), sigma=0.0005))
    if description is None:
        description = f"Light/rad coincidence FC-2 {width / 10:g}x{height / 10:g}"
    ds = stamp_rt_image(
        sim.as_dicom(), machine=machine, when=when, key=key, label=label, description=description
    )
    return _save(ds, path)


# --------------------------------------------------------------------------- junk
def zero_bytes(path: Path | str) -> Path:
    """An empty file."""
    path = _target(path)
    path.write_bytes(b"")
    return path


def truncated_dicom(src: Path | str, dst: Path | str, *, fraction: float = 1 / 3) -> Path:
    """The first `fraction` of `src`'s bytes: a header that parses, pixel data cut short."""
    data = Path(src).read_bytes()
    dst = _target(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def random_bytes(path: Path | str, *, n: int = 4096, seed: int = 0) -> Path:
    """`n` random bytes (deterministic for a seed), whatever the file's name claims."""
    path = _target(path)
    path.write_bytes(_rng("random-bytes", seed, n).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def png_image(path: Path | str) -> Path:
    """An ordinary colour PNG (a sunset-like gradient with a disc), no QA content and no dpi."""
    path = _target(path)
    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    rgb = np.stack([200 + 55 * y / 240, 120 + 60 * x / 320, 255 - 200 * y / 240], axis=-1)
    rgb[(x - 220) ** 2 + (y - 90) ** 2 < 40**2] = (255, 220, 60)
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(path, format="PNG")
    return path


def _copy_testdata(name: str, path: Path | str) -> Path:
    source = get_testdata_file(name)
    if source is None:  # pydicom ships both files we use; None means a broken installation
        raise FileNotFoundError(f"pydicom test file {name} is missing")
    path = _target(path)
    shutil.copyfile(str(source), path)
    return path


def rt_plan(path: Path | str) -> Path:
    """An RT Plan (pydicom's rtplan.dcm): DICOM, but no image."""
    return _copy_testdata("rtplan.dcm", path)


def ct_slice(path: Path | str) -> Path:
    """A single 128 x 128 CT slice (pydicom's CT_small.dcm): an image, but not a QA one."""
    return _copy_testdata("CT_small.dcm", path)


# --------------------------------------------------------------------------- exports without names
# Texts that say which machine took an image, never which test it shows: kept.
_MACHINE_TEXTS = frozenset(
    {
        "Manufacturer",
        "ManufacturerModelName",
        "InstitutionName",
        "StationName",
        "DeviceSerialNumber",
        "SoftwareVersions",
        "RadiationMachineName",
    }
)
_FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "PN", "UT", "UC"})


def strip_names(ds: Dataset) -> Dataset:
    """Remove every free text that could name the test (labels, descriptions, the QA patient's name
    and ID, plan and beam names, comments), in nested sequences too; the machine's names stay."""
    for element in list(ds):
        if element.VR == "SQ":
            for item in element.value:
                strip_names(item)
        elif element.VR in _FREE_TEXT_VRS and element.keyword not in _MACHINE_TEXTS:
            del ds[element.tag]
    return ds


def save_unnamed(ds: Dataset, folder: Path | str) -> Path:
    """`ds` stripped of its names, written as `RI.<SOPInstanceUID>.dcm` in `folder`: an export that
    says nothing of its test but with its pixels."""
    strip_names(ds)
    return _save(ds, Path(folder) / f"RI.{ds.SOPInstanceUID}.dcm")
