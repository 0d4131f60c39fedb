"""Small, deterministic synthetic machine logs in the formats `pylinac.log_analyzer` reads.

Both formats record the same delivery: a 10 x 10 cm sliding-window DMLC field (a 1 cm gap swept
from -5 to +5 cm across the Millennium-120 pairs), every leaf lagging 0.03 mm and jittering by
0.02 mm. `error_mm` pulls ten bank-A leaves inside the field back by that much, as sticking
leaves would. pylinac's verdict on these logs, with `fluence.gamma.calc_map(doseTA=1, distTA=1,
threshold=0.1, resolution=0.1)`: at 0 mm the 1 %/1 mm gamma pass rate is at least 95 % and
`axis_data.mlc.get_RMS_max()` at most 0.1 cm; at 2 mm both fail.
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

import numpy as np

from linac_qa.testing.synthetic import DEFAULT_WHEN, _key, _rng, _target, _uid

__all__ = ["dynalog_pair", "trajectory_log"]

_PAIRS = 60
_ERROR_PAIRS = range(24, 34)  # 0-based, 5 mm leaves near the axis, all inside the 10 cm jaws
# Enough snapshots that the leaves step 0.1 mm between two: at 0.25 mm (400 snapshots) the fluence of
# a perfect delivery already fails 1 %/1 mm gamma (73 %), one snapshot being 2.5 % of a pixel's dose.
_SNAPSHOTS = 1000
# A dynalog records leaves in 1/100 mm at the MLC plane; pylinac scales them to isocentre by this.
_DYNALOG_CM_PER_UNIT = 1.96078 / 1000
_DYNALOG_FULL_DOSE = 25000  # a dynalog's dose fraction counts up to this
_TRAJECTORY_MU = 100.0


def _sliding_window(
    snapshots: int, rng: np.random.Generator, error_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(expected A, actual A, expected B, actual B), snapshots x pairs, in cm at isocentre.

    pylinac reads bank A as positive to the right and bank B as positive to the left.
    """
    t = np.linspace(0.0, 1.0, snapshots)[:, None]
    # A gentle wave across the pairs so that not every leaf sits at the same place.
    lead = -5.0 + 10.0 * t + 0.3 * np.sin(np.arange(_PAIRS) / 7.0)[None, :]
    expected_a, expected_b = lead, 1.0 - lead
    lag = 0.003  # both banks trail the direction of travel (+x)
    actual_a = expected_a - lag + rng.normal(0, 0.002, expected_a.shape)
    actual_b = expected_b + lag + rng.normal(0, 0.002, expected_b.shape)
    actual_a[:, _ERROR_PAIRS] -= error_mm / 10
    return expected_a, actual_a, expected_b, actual_b


def dynalog_pair(
    folder: Path | str,
    *,
    error_mm: float = 0.0,
    stamp: str = "20240304083000",
    machine: str = "Clinac2",
    patient_id: str = "QA",
    beam_on: bool = True,
    seed: int = 0,
) -> tuple[Path, Path]:
    """The A and B dynalogs of one delivery, `A<stamp>_<patient_id>.dlg` and `B...`, in `folder`.

    `load_log(A)` gives a Dynalog that passes (see the module docstring); `error_mm=2` fails it.
    `beam_on=False` holds the beam throughout (an interrupted delivery): pylinac drops every
    snapshot as beam-off and keeps no MLC data. `patient_id` goes into the file names and the
    headers' patient line.
    """
    folder = Path(folder)
    held = () if beam_on else ("held",)  # the default pair keeps its bytes
    key = _key("dynalog", seed, machine, stamp, patient_id, error_mm, *held)
    expected_a, actual_a, expected_b, actual_b = _sliding_window(_SNAPSHOTS, _rng(key), error_mm)
    dose = np.round(np.linspace(0, _DYNALOG_FULL_DOSE, _SNAPSHOTS)).astype(int)
    # Version, patient (last, first, ID), plan UID and beam number, tolerance, pairs, IEC scale.
    header = ["B", f"QA,{machine},{patient_id}", f"{_uid('plan', key)},1", "0", str(_PAIRS), "1"]
    paths = []
    for bank, expected, actual in (("A", expected_a, actual_a), ("B", expected_b, actual_b)):
        expected_units = np.round(expected / _DYNALOG_CM_PER_UNIT).astype(int)
        actual_units = np.round(actual / _DYNALOG_CM_PER_UNIT).astype(int)
        lines = list(header)
        hold = 0 if beam_on else 1
        for i in range(_SNAPSHOTS):
            # Dose fraction, segment, beam hold, beam on, previous and next segment dose,
            # gantry and collimator (0.1 deg), jaws Y1 Y2 X1 X2 (mm), carriages A and B.
            fields = [dose[i], i * 20 // _SNAPSHOTS, hold, 1, dose[i], dose[i], 0, 0, 50, 50, 50, 50, 0, 0]
            for e, a in zip(expected_units[i], actual_units[i], strict=True):
                fields += [e, a, e, e]  # expected, actual, previous-segment and next-segment positions
            lines.append(",".join(map(str, fields)))
        path = _target(folder / f"{bank}{stamp}_{patient_id}.dlg")
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
        paths.append(path)
    return paths[0], paths[1]


def trajectory_log(
    path: Path | str,
    *,
    error_mm: float = 0.0,
    with_txt: bool = True,
    txt_delay_seconds: int = 0,
    imaging: bool = False,
    patient_id: str = "QA",
    machine: str = "TrueBeam1",
    when: dt.datetime = DEFAULT_WHEN,
    seed: int = 0,
) -> list[Path]:
    """A TrueBeam trajectory log (v4.0, `path`, which should end in .bin) and its .txt companion.

    `load_log(path)` gives a TrajectoryLog of a sliding-window arc that passes (see the module
    docstring); `error_mm=2` fails it. `imaging=True` writes a static kV setup beam delivering no
    MU, which pylinac reports as `treatment_type == TreatmentType.IMAGING.value` ("Imaging") and
    for which it builds no fluence. `patient_id` goes into the header metadata and the .txt file.
    `txt_delay_seconds` names the .txt as TrueBeam does when it writes it that much after the .bin:
    the timestamp that ends the .bin's name (`..._20240304083400.bin`) that much later.
    """
    path = Path(path)
    key = _key("trajectory", seed, machine, when, patient_id, error_mm, imaging)
    n = _SNAPSHOTS
    beam = "kV setup" if imaging else "SW10 arc"
    mu = 0.0 if imaging else _TRAJECTORY_MU
    # Axes: collimator, gantry, jaws Y1 Y2 X1 X2, couch vrt lng lat rtn pitch roll, MU, beam hold,
    # control point, MLC (two carriages and 120 leaves).
    axes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 40, 41, 42, 50]
    samples = [1] * (len(axes) - 1) + [2 + 2 * _PAIRS]
    header = b"".join(
        [
            b"VOSTL".ljust(16, b"\0"),
            b"4.0".ljust(16, b"\0"),
            struct.pack("<3i", 1024, 20, len(axes)),  # header size, sampling interval (ms), axes
            struct.pack(f"<{len(axes)}i", *axes),
            struct.pack(f"<{len(axes)}i", *samples),
            # Modified IEC 61217 scale, one subbeam, not truncated, snapshots, NDS 120 (Millennium).
            struct.pack("<5i", 2, 1, 0, n, 2),
        ]
    )
    metadata = {
        "Patient ID": patient_id,
        "Plan Name": "MLC QA",
        "SOP Instance UID": _uid("plan", key),
        "MU_Planned": f"{mu:.1f}",
        "MU_Remaining": "0.0",
        "Energy": "kV" if imaging else "6X",
        "BeamName": beam,
    }
    header += "".join(f"{k}:\t{v}\r\n" for k, v in metadata.items()).encode().ljust(745, b"\0")
    header = header.ljust(1024, b"\0")
    # Control point, MU, radiation time (s), sequence number, beam name (UTF-16, 512 bytes), reserved.
    subbeam = (
        struct.pack("<iffi", 0, mu, n * 0.02, 0) + beam.encode("utf-16-le").ljust(512, b"\0") + bytes(32)
    )

    t = np.linspace(0.0, 1.0, n)
    columns: list[np.ndarray] = []

    def axis(expected: np.ndarray | float, actual: np.ndarray | float) -> None:
        columns.append(np.broadcast_to(np.asarray(expected, float), (n,)))
        columns.append(np.broadcast_to(np.asarray(actual, float), (n,)))

    rng = _rng(key)
    axis(0.0, 0.0)  # collimator
    if imaging:
        axis(0.0, 0.0)
    else:
        gantry = (181.0 + 358.0 * t) % 360.0  # a clockwise arc from 181 to 179 deg
        axis(gantry, (gantry - 0.05 * (t > 0)) % 360.0)
    for jaw in (5.0, 5.0, 5.0, 5.0):  # Y1 Y2 X1 X2 (cm)
        axis(jaw, jaw + 0.001)
    for couch in (5.2, 101.3, 0.1, 0.0, 0.0, 0.0):  # vrt lng lat (cm), rtn pitch roll (deg)
        axis(couch, couch)
    axis(mu * t, np.maximum(mu * t + rng.normal(0, 0.005, n), 0) if mu else 0.0)
    axis(0.0, 0.0)  # beam hold: never held
    axis(49 * t, 49 * t)  # control point, 50 in the plan
    axis(0.0, 0.0)  # carriage A
    axis(0.0, 0.0)  # carriage B
    if imaging:
        # An open 10 x 10 field, leaves parked at the jaws.
        for position in [5.0] * (2 * _PAIRS):
            axis(position, position)
    else:
        expected_a, actual_a, expected_b, actual_b = _sliding_window(n, rng, error_mm)
        for expected, actual in ((expected_a, actual_a), (expected_b, actual_b)):
            for pair in range(_PAIRS):
                axis(expected[:, pair], actual[:, pair])
    data = np.stack(columns, axis=1).astype("<f4")
    path = _target(path)
    path.write_bytes(header + subbeam + data.tobytes())
    paths = [path]
    if with_txt:
        txt = _later(path, txt_delay_seconds).with_suffix(".txt")
        lines = {
            "Patient ID": patient_id,
            "Plan Name": "MLC QA",
            "Beam Name": beam,
            "Energy": metadata["Energy"],
            "MU Planned": metadata["MU_Planned"],
            "Date": when.strftime("%Y-%m-%d %H%M%S"),  # no colons: pylinac splits each line on ':'
            "Machine": machine,
            "Log Version": "4.0",
        }
        txt.write_bytes("".join(f"{k}:\t{v}\r\n" for k, v in lines.items()).encode())
        paths.append(txt)
    return paths


def _later(path: Path, seconds: int) -> Path:
    """`path` with the timestamp that ends its name moved `seconds` later."""
    if not seconds:
        return path
    prefix, stamp = path.stem[:-14], path.stem[-14:]
    later = dt.datetime.strptime(stamp, "%Y%m%d%H%M%S") + dt.timedelta(seconds=seconds)
    return path.with_name(f"{prefix}{later:%Y%m%d%H%M%S}{path.suffix}")
