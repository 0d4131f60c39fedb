"""DICOM headers without pixel data: what classification and grouping need, read in about a millisecond."""

from __future__ import annotations

import datetime as dt
import re
import struct
import zlib
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, BinaryIO

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag, Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from linac_qa.model import DicomHeader

PREAMBLE = 128
# The tags that name an acquisition, where keywords are looked for (docs/design.md section 3).
TEXT_TAGS = ("RTImageLabel", "RTImageName", "RTImageDescription", "SeriesDescription", "StudyDescription")
# Where a QA export names its test when its labels do not: the QA patient, the plan and the beam.
# Looked at after the labels and the folder names (linac_qa.intake.routing).
PATIENT_TAGS = ("PatientName", "PatientID", "RTPlanLabel", "RTPlanName", "BeamName", "BeamDescription")
MACHINE_TAGS = ("RadiationMachineName", "StationName", "DeviceSerialNumber")
_TAGS = (
    *TEXT_TAGS,
    *PATIENT_TAGS,
    *MACHINE_TAGS,
    "Modality",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "AcquisitionDate",
    "AcquisitionTime",
    "ContentDate",
    "ContentTime",
    "SeriesDate",
    "SeriesTime",
    "TimezoneOffsetFromUTC",
    "Rows",
    "Columns",
    "BitsAllocated",
    "SamplesPerPixel",
    "NumberOfFrames",
    "RTImageSID",
)
PIXEL_DATA = 0x7FE00010
# Value representations whose explicit-VR element header has 2 reserved bytes and a 4-byte length.
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_VRS = _LONG_VRS | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL",
    b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
}  # fmt: skip
UNDEFINED_LENGTH = 0xFFFFFFFF
# "6x [MV]", "6xFFF [MV]", "10X FFF", "15 MV", "6FFF": the beam energy as Varian and Elekta write it
# in labels.
_ENERGY = re.compile(
    r"(?<![0-9.])(\d{1,2})\s*(?:(?:x|mv)(?![a-eg-z]|\s*\d)\s*(fff)?|(fff)(?![a-z0-9]))", re.IGNORECASE
)


def looks_like_dicom(head: bytes) -> bool:
    """A Part-10 file (`DICM` after the preamble), or a bare data set as older exports write it: one
    that starts with a plausible group 0002 or 0008 element, so that random bytes stay rejected."""
    if len(head) >= PREAMBLE + 4 and head[PREAMBLE : PREAMBLE + 4] == b"DICM":
        return True
    return _bare_dataset(head)


def _bare_dataset(head: bytes) -> bool:
    if len(head) < 8:
        return False
    for order in ("<", ">"):
        group, element = struct.unpack(order + "HH", head[:4])
        if group not in (0x0002, 0x0008) or element > 0x1FFF:
            continue
        if head[4:6] in _VRS:  # explicit VR
            return True
        (length,) = struct.unpack(order + "I", head[4:8])  # implicit VR: a short, even value
        if length <= 1024 and length % 2 == 0:
            return True
    return False


def read_header(fp: BinaryIO, size: int, extra_tags: Iterable[str] = ()) -> DicomHeader:
    """The header of an open DICOM file (already checked by `looks_like_dicom`). Raises
    InvalidDicomError or another pydicom error on a damaged header. `extra_tags` (DICOM keywords)
    are read into `attributes`, for routing rules."""
    extra = tuple(extra_tags)
    start = fp.tell()
    ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_tags_to_read(extra), force=True)
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    missing, has_pixels = 0, False
    if rows and cols:
        frames = _int(ds, "NumberOfFrames") or 1
        bits = _int(ds, "BitsAllocated") or 16
        expected = (rows * cols * frames * bits + 7) // 8 * (_int(ds, "SamplesPerPixel") or 1)
        has_pixels, missing = _pixel_data(fp, ds, start, size, expected)
    texts = tuple(v for t in TEXT_TAGS if (v := _text(ds, t)))
    return DicomHeader(
        modality=_text(ds, "Modality"),
        sop_class_uid=_text(ds, "SOPClassUID")
        or _text(getattr(ds, "file_meta", {}), "MediaStorageSOPClassUID"),
        instance_uid=_text(ds, "SOPInstanceUID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        series_number=_int(ds, "SeriesNumber"),
        acquired=_when(ds),
        machine=_text(ds, "RadiationMachineName") or _text(ds, "StationName"),
        machine_ids=tuple(dict.fromkeys(v for t in MACHINE_TAGS if (v := _text(ds, t)))),
        texts=texts,
        patient_texts=tuple((t, v) for t in PATIENT_TAGS if (v := _text(ds, t))),
        energy=_energy(texts),
        has_pixels=has_pixels,
        pixel_bytes_missing=missing,
        has_sid=_text(ds, "RTImageSID") is not None,
        attributes={t: v for t in extra if (v := _text(ds, t)) is not None},
    )


@lru_cache(maxsize=16)
def _tags_to_read(extra: tuple[str, ...]) -> list[BaseTag]:
    """As tags, once: pydicom would otherwise look every keyword up again for every file."""
    return [Tag(keyword) for keyword in (*_TAGS, *extra)]


def _pixel_data(fp: BinaryIO, ds: Any, start: int, size: int, expected: int) -> tuple[bool, int]:
    """(whether the file holds pixel data, how many bytes of it are missing), from the pixel data
    element's own header: its offset and length are those of this file's transfer syntax (implicit
    VR has an 8-byte element header, explicit VR 12; big endian; deflated; encapsulated)."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return _deflated_pixel_data(fp, start, expected)
    tell = fp.tell()
    element = fp.read(12)
    if len(element) < 8 or _tag(element, ds.is_little_endian) != PIXEL_DATA:
        return False, expected  # an image header whose pixel data is not there: cut short
    order = "<" if ds.is_little_endian else ">"
    if ds.is_implicit_VR:
        header_bytes, (length,) = 8, struct.unpack(order + "I", element[4:8])
    elif element[4:6] in _LONG_VRS:
        header_bytes, (length,) = 12, struct.unpack(order + "I", element[8:12])
    else:
        header_bytes, (length,) = 8, struct.unpack(order + "H", element[6:8])
    available = size - (tell - start) - header_bytes
    if length == UNDEFINED_LENGTH:  # encapsulated (compressed) frames: the end marker must be there
        fp.seek(start + size - 8)
        ends = fp.read(8) in (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")
        return available > 0, 0 if ends else 1
    return available > 0, max(0, min(length, expected) - available)


def _deflated_pixel_data(fp: BinaryIO, start: int, expected: int) -> tuple[bool, int]:
    fp.seek(start)
    ds = pydicom.dcmread(fp, force=True)
    try:
        pixels = len(ds.PixelData)
    except (AttributeError, zlib.error):
        return False, 0
    return pixels > 0, max(0, expected - pixels)


def _tag(element: bytes, little_endian: bool) -> int:
    group, elem = struct.unpack(("<" if little_endian else ">") + "HH", element[:4])
    return int(group) << 16 | int(elem)


def _energy(texts: tuple[str, ...]) -> str | None:
    """The beam energy as the labels give it: `6X`, `6X FFF`, `10X`. (The exposure sequence's kVp
    would say it too, but parsing that sequence costs a third of the header's reading time.)"""
    for text in texts:
        m = _ENERGY.search(text)
        if m:
            return f"{int(m.group(1))}X" + (" FFF" if m.group(2) or m.group(3) else "")
    return None


def _text(ds: Any, tag: str) -> str | None:
    value = _raw_text(ds, tag)
    if value is _UNDECODED:
        value = ds.get(tag)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(ds: Any, tag: str) -> int | None:
    try:
        value = _raw_int(ds, tag)
        if value is _UNDECODED:
            value = ds.get(tag)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# pydicom's conversion of an element to its value was half of a header's reading time; the few
# plain ones this module reads (single-valued text in ASCII, Latin-1 or UTF-8, and unsigned shorts)
# are decoded here from their raw bytes, and everything else is left to pydicom.
_UNDECODED: Any = object()
_PLAIN_CHARSETS = {b"": "latin-1", b"ISO_IR 6": "latin-1", b"ISO_IR 100": "latin-1", b"ISO_IR 192": "utf-8"}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UT"}


def _raw(ds: Any, tag: str) -> tuple[str, bytes] | None:
    """(VR, bytes) of a tag not yet converted by pydicom, None when absent; _UNDECODED otherwise."""
    if not isinstance(ds, pydicom.Dataset):
        return _UNDECODED
    element = ds.get_item(_tag_of(tag))
    if element is None:
        return None
    if not isinstance(element, RawDataElement) or element.value is None:
        return _UNDECODED
    vr = element.VR or _dictionary_vr(tag)
    return (vr, element.value) if vr else _UNDECODED


def _raw_text(ds: Any, tag: str) -> Any:
    raw = _raw(ds, tag)
    if raw is None or raw is _UNDECODED:
        return raw
    vr, value = raw
    codec = _PLAIN_CHARSETS.get(_charset(ds))
    if vr not in _TEXT_VRS or codec is None or b"\\" in value:  # other types, charsets, multi-valued
        return _UNDECODED
    return value.decode(codec, errors="replace").strip("\x00 ")


def _raw_int(ds: Any, tag: str) -> Any:
    raw = _raw(ds, tag)
    if raw is None or raw is _UNDECODED:
        return raw
    vr, value = raw
    if vr == "US" and len(value) == 2:
        return struct.unpack("<H" if ds.is_little_endian else ">H", value)[0]
    return _raw_text(ds, tag)


def _charset(ds: Any) -> bytes:
    element = ds.get_item(_tag_of("SpecificCharacterSet"))
    if element is None:
        return b""
    value = element.value
    if isinstance(value, str):  # pydicom converts it as it reads, to know the encoding
        value = value.encode("ascii", errors="replace")
    return value.strip(b"\x00 ") if isinstance(value, bytes) else b"?"  # several: pydicom decodes


@lru_cache(maxsize=256)
def _tag_of(keyword: str) -> BaseTag:
    return Tag(keyword)


@lru_cache(maxsize=256)
def _dictionary_vr(tag: str) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _when(ds: Any) -> dt.datetime | None:
    """When the image was taken, with its time zone: the file's own offset from UTC when it has
    one, else this computer's (a QA workstation keeps the clinic's time)."""
    zone = _zone(_text(ds, "TimezoneOffsetFromUTC"))
    for date_tag, time_tag in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
        ("SeriesDate", "SeriesTime"),
    ):
        date = _text(ds, date_tag)
        if not date:
            continue
        clock = (_text(ds, time_tag) or "000000").split(".")[0].ljust(6, "0")
        try:
            naive = dt.datetime.strptime(date + clock[:6], "%Y%m%d%H%M%S")
        except ValueError:
            continue
        return naive.replace(tzinfo=zone) if zone else naive.astimezone()
    return None


def _zone(offset: str | None) -> dt.timezone | None:
    """DICOM's "+0100" or "-0530"; None when absent or not of that form."""
    if not offset or len(offset) != 5 or offset[0] not in "+-" or not offset[1:].isdigit():
        return None
    minutes = int(offset[1:3]) * 60 + int(offset[3:])
    return dt.timezone(dt.timedelta(minutes=minutes if offset[0] == "+" else -minutes))


__all__ = ["InvalidDicomError", "looks_like_dicom", "read_header"]
