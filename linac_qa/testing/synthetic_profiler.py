"""A small, deterministic Sun Nuclear IC PROFILER export (`.prm`, multi-frame file revision 25) of
an open photon field, in the text layout that `pylinac.field_analysis.DeviceFieldAnalysis` reads.

The layout is the Profiler's: a tab-separated header of labelled lines (the collector's gain on line
21), a column-name row on line 107, then the detectors' leakage ("BIAS1") and relative calibration
rows, the ignore flags and one "Data:" row per update with the raw counts integrated since the start.
The 254 detector columns start at the sixth: 63 along X (the two beside the central axis missing:
the Y axis's central detector is wider), 65 along Y, 63 along each diagonal, 5 mm apart.

pylinac's integrated dose per detector is `calibration * (counts - bias * timetic) / gain`; the
counts here are made from a chosen dose so that it gets that dose back. The field is 20 x 20 cm at
100 cm SSD with slight horns: Varian-protocol symmetry about 0 % and flatness about 0.5 %.
`tilt_percent` tilts the X profile by that much per 10 cm, as a mis-steered beam would: at 3 %
pylinac's horizontal symmetry is about -4.9 % (flatness 2.4 %).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np

from linac_qa.testing.synthetic import DEFAULT_WHEN, _key, _rng, _target

__all__ = ["profiler_field"]

_SPACING_MM = 5.0
_X, _Y, _DIAGONAL = 63, 65, 63  # detectors per axis, as pylinac's parser expects them
_GAIN = 4
_TYPE_ROW = 106  # 0-based line of the column names, as pylinac's SNCProfiler reads it
_UPDATES = 3
_FULL_COUNTS = 40000.0  # raw counts of a detector on the central axis at the end of the beam
_TIMETIC_US = 7_661_116  # microseconds of beam


def _axis_mm(n: int, spacing: float = _SPACING_MM) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2) * spacing


def _x_axis_mm() -> np.ndarray:
    """The X detectors: a 65-detector row without the two beside the central one."""
    full = _axis_mm(_Y)
    return np.delete(full, [_Y // 2 - 1, _Y // 2 + 1])


def _field(x_mm: np.ndarray, half_width_mm: float, tilt_percent: float) -> np.ndarray:
    """Relative dose: a flat top with 1.5 % horns, penumbrae of about 6 mm (80-20 %), a low tail."""
    inside = 0.5 * (1 - np.vectorize(math.erf)((np.abs(x_mm) - half_width_mm) / (3.5 * math.sqrt(2))))
    horns = 1 + 0.015 * np.clip(np.abs(x_mm) / half_width_mm, 0, 1) ** 2
    tail = 0.03 * np.exp(-np.clip(np.abs(x_mm) - half_width_mm, 0, None) / 40.0)
    tilt = 1 + tilt_percent / 100 * x_mm / 100.0
    return (inside * horns + (1 - inside) * tail) * tilt


def profiler_field(
    path: Path | str,
    *,
    field_cm: float = 20.0,
    tilt_percent: float = 0.0,
    energy: str = "6 MV",
    when: dt.datetime = DEFAULT_WHEN,
    seed: int = 0,
) -> Path:
    """Write the Profiler file of an open field to `path` (which should end in .prm)."""
    key = _key("profiler", seed, field_cm, tilt_percent, energy, when)
    rng = _rng(key)
    half = field_cm * 10 / 2
    dose = np.concatenate(
        [
            _field(_x_axis_mm(), half, tilt_percent),
            _field(_axis_mm(_Y), half, 0.0),
            _field(_axis_mm(_DIAGONAL, _SPACING_MM * math.sqrt(2)), half * math.sqrt(2), 0.0),
            _field(_axis_mm(_DIAGONAL, _SPACING_MM * math.sqrt(2)), half * math.sqrt(2), 0.0),
        ]
    )
    names = (
        [f"X{i}" for i in range(1, _X + 1)]
        + [f"Y{i}" for i in range(1, _Y + 1)]
        + [f"PD{i}" for i in range(1, _DIAGONAL + 1)]
        + [f"ND{i}" for i in range(1, _DIAGONAL + 1)]
    )
    calibration = 1 + rng.normal(0, 0.03, dose.size)  # each detector's sensitivity, corrected
    bias = np.abs(rng.normal(0.0006, 0.0001, dose.size))  # leakage, counts per timetic
    lines = _header(when, energy, field_cm)
    assert len(lines) <= _TYPE_ROW
    lines += [""] * (_TYPE_ROW - len(lines))
    lines += [
        "\t".join(["TYPE", "UPDATE#", "TIMETIC", "PULSES", "STATUS", *names]),
        "\t".join(["BIAS1", "", "", "", "", *(f"{b:.8f}" for b in bias)]),
        "\t".join(["Calibration", "", "", "", "", *(f"{c:.9f}" for c in calibration)]),
        "\t".join(["IgnoreDet", "", "", "", "", *("0" for _ in names)]),
    ]
    for update in range(1, _UPDATES + 1):
        timetic = _TIMETIC_US * update // _UPDATES
        # Raw counts: the dose as the detector saw it (before its calibration), plus its leakage.
        counts = np.round(dose * _FULL_COUNTS * _GAIN * update / _UPDATES / calibration + bias * timetic)
        pulses = 765 * update // _UPDATES
        lines.append(
            "\t".join(["Data:", str(update), str(timetic), str(pulses), "65", *map(str, counts.astype(int))])
        )
    path = _target(path)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp437"))
    return path


def _header(when: dt.datetime, energy: str, field_cm: float) -> list[str]:
    """The labelled lines before the column names, as the Profiler writes them (file revision 25)."""
    size = f"{field_cm / 2:g}"
    return [
        "Version:\t 25",
        f"Filename:\tC:\\SNC\\Profiler\\Data\\QA\\Open {field_cm:g}x{field_cm:g}.prm",
        f"Date:\t {when:%m/%d/%Y}\t Time:\t{when:%H:%M:%S}",
        "Description:\tMonthly open field",
        "Institution:",
        "Calibration File:\tC:\\SNC\\Profiler\\Factors\\Slot-1 - 6 MV.cal",
        "Software Version:\t3.3.1",
        "",
        "\tProfiler Setup",
        "Buildup:\t0\tcm\tWaterEquiv",
        "Orientation:\tY Axis",
        "SSD:\t100\tcm",
        "Tray Mount:\tNo",
        "Alignment:\tLight Field",
        "",
        "",
        "\tCollector Config",
        "Collector Model:\tIC PROFILER",
        "Collector Serial:\t1000001\tRevision:\tF",
        "Firmware Version:\t2.5.1",
        f"Nominal Gain\t{_GAIN}",
        "Beam Mode:\tPulsed",
        "Collection Interval:\t125",
        "",
        "\tMachine Data",
        "Room:\tBunker 1",
        "Machine Type:\tVarian",
        "Machine Model:\tTrueBeam",
        "Machine Serial Number:\t1001",
        f"Beam Type:\tPhoton\tEnergy:\t{energy}",
        f"Collimator:\tLeft: {size} Right: {size} Top: {size} Bottom: {size} cm",
        "Wedge:\tNone\tat\t0",
        "Rate:\t600\tmu/Min\tDose:\t100",
        "Gantry Angle:\t0 deg\tCollimator Angle:\t0 deg",
        "",
        "\tHardware Data",
        "Cal-Serial Number:\t1000001",
        "Cal-Revision:\tF",
        "Temperature:\t22.4\t35733",
        "Bp:\t-2.63\tMp:\t0.98\tBt:\t0.085",
        "\tDose Calibration",
        "Dose Per Count:\t0",
        "Dose:\t0",
        "Absolute Calibration:\tfalse",
        "Energy:\tU",
        "TimeStamp:\t12/30/1899 0:0:0",
        "Comments:",
        *(f"Gain Ratios for Amp{i}:\t\t1\t0.5\t0.25\t0.125" for i in range(7)),
        "",
        "Multi Frame:\ttrue",
        "Total Pulses:\t765",
        f"Total Time:\t{_TIMETIC_US / 1e6:.6f}",
        f"Detectors:\t{_Y}\t{_X}\t{_DIAGONAL}\t{_DIAGONAL}\t1\t5",
        f"Detector Spacing:\t{_SPACING_MM / 10:g}",
        "Concatenation:\tfalse",
        "Imported Data:\tfalse",
        "-------------------------------",
        "Definitions:",
        "\tData rows hold each detector's raw counts integrated since the start of the measurement.",
        "\tRelative dose = (RawCount - TimeTic * BIAS1) * Calibration.",
    ]
