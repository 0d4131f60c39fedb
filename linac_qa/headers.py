"""DICOM headers without pixel data: what classification and grouping need, read in about a millisecond."""

from __future__ import annotations

import datetime as dt
from typing import Any, BinaryIO

import pydicom
from pydicom.errors import InvalidDicomError

from linac_qa.model import DicomHeader

PREAMBLE = 128
# The tags that name an acquisition, where keywords are looked for (DESIGN.md section 3).
TEXT_TAGS = ("RTImageLabel", "RTImageName", "RTImageDescription", "SeriesDescription", "StudyDescription")
MACHINE_TAGS = ("RadiationMachineName", "StationName", "DeviceSerialNumber")
_TAGS = (
    *TEXT_TAGS,
    *MACHINE_TAGS,
    "Modality",
    "SOPClassUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "AcquisitionDate",
    "AcquisitionTime",
    "ContentDate",
    "ContentTime",
    "SeriesDate",
    "SeriesTime",
    "Rows",
    "Columns",
    "BitsAllocated",
    "SamplesPerPixel",
    "NumberOfFrames",
    "RTImageSID",
)


def looks_like_dicom(head: bytes) -> bool:
    return len(head) >= PREAMBLE + 4 and head[PREAMBLE : PREAMBLE + 4] == b"DICM"


def read_header(fp: BinaryIO, size: int) -> DicomHeader:
    """The header of an open DICOM file (DICM marker already checked). Raises InvalidDicomError or
    another pydicom error on a damaged header."""
    ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=list(_TAGS))
    header_bytes = fp.tell()
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    missing = 0
    if rows and cols:
        frames = _int(ds, "NumberOfFrames") or 1
        expected = rows * cols * (_int(ds, "BitsAllocated") or 16) // 8 * (_int(ds, "SamplesPerPixel") or 1)
        # The pixel data element's own tag and length take 12 bytes (explicit VR, OB/OW).
        missing = max(0, expected * frames - (size - header_bytes - 12))
    machine_ids = tuple(dict.fromkeys(v for t in MACHINE_TAGS if (v := _text(ds, t))))
    return DicomHeader(
        modality=_text(ds, "Modality"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        series_number=_int(ds, "SeriesNumber"),
        acquired=_when(ds),
        machine=_text(ds, "RadiationMachineName") or _text(ds, "StationName"),
        machine_ids=machine_ids,
        texts=tuple(v for t in TEXT_TAGS if (v := _text(ds, t))),
        has_pixels=bool(rows and cols) and size > header_bytes,
        pixel_bytes_missing=missing,
        has_sid=_text(ds, "RTImageSID") is not None,
    )


def _text(ds: Any, tag: str) -> str | None:
    value = ds.get(tag)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(ds: Any, tag: str) -> int | None:
    try:
        value = ds.get(tag)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _when(ds: Any) -> dt.datetime | None:
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
            return dt.datetime.strptime(date + clock[:6], "%Y%m%d%H%M%S")
        except ValueError:
            continue
    return None


__all__ = ["InvalidDicomError", "looks_like_dicom", "read_header"]
