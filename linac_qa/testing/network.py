"""Datasets to send to the DICOM receiver in tests and benchmarks: RT images of any size and a CT
series of small slices, built with pydicom alone (what travels is the header and the pixel bytes;
no analysis looks at these pixels)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RT_IMAGE = "1.2.840.10008.5.1.4.1.1.481.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"


def _base(sop_class: Any, modality: str, series_uid: str, date: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    ds.PatientName, ds.PatientID = "QA^PHANTOM", "QA0001"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), series_uid
    ds.StudyDate = ds.ContentDate = date
    ds.ContentTime = "071500"
    return ds


def _pixels(ds: Dataset, pixels: np.ndarray) -> Dataset:
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def rt_images(count: int, *, side: int = 64, date: str = "20261130", label: str = "EPID") -> list[Dataset]:
    """`count` RT images of side x side 16-bit pixels (side 1184: about 2.8 MB, a portal image)."""
    series = generate_uid()
    rng = np.random.default_rng(count * side)
    out = []
    for i in range(count):
        ds = _pixels(_base(RT_IMAGE, "RTIMAGE", series, date), rng.integers(0, 4000, (side, side)))
        ds.RTImageLabel = f"{label}{i + 1}"
        ds.InstanceNumber = i + 1
        out.append(ds)
    return out


def ct_series(slices: int, *, side: int = 64, date: str = "20261130") -> list[Dataset]:
    """One CT series of `slices` small slices, 1 mm apart."""
    series = generate_uid()
    out = []
    for i in range(slices):
        ds = _pixels(_base(CT_IMAGE, "CT", series, date), np.full((side, side), 1000 + i))
        ds.SeriesDescription = "CatPhan504"  # routes the series to cbct
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 1.0
        ds.RescaleIntercept, ds.RescaleSlope = -1000, 1
        out.append(ds)
    return out


def rt_plan() -> Dataset:
    """A dataset of a storage class the receiver does not accept."""
    return _base(RT_PLAN, "RTPLAN", generate_uid(), "20261130")


def send(
    datasets: Iterable[Dataset], port: int, *, called: str, calling: str, host: str = "127.0.0.1"
) -> list[int]:
    """C-STORE each dataset over one association; the statuses, in order. Raises ConnectionError
    when the association is not established (rejected or nobody listening)."""
    from pynetdicom import AE

    items = list(datasets)
    ae = AE(ae_title=calling)
    for sop_class in dict.fromkeys(str(ds.SOPClassUID) for ds in items):
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate(host, port, ae_title=called, max_pdu=4 << 20)
    if not assoc.is_established:
        raise ConnectionError(f"association not established (rejected: {assoc.is_rejected})")
    try:
        statuses: list[int] = []
        for ds in items:
            status: Any = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status else -1)
        return statuses
    finally:
        assoc.release()


def echo(port: int, *, called: str, calling: str, host: str = "127.0.0.1") -> int:
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        raise ConnectionError("association not established")
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()
