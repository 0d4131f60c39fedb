"""Machine log verdicts on recorded numbers (a pylinac log has no results_data()): the gamma pass
rate against its minimum and the worst MLC RMS against its maximum, both in the reason."""

from __future__ import annotations

import math
from typing import Any

from linac_qa.analyses.machine_logs import MachineLogSettings, judge_log
from linac_qa.model import Status
from tests.unit.analyses.recorded import section


def log_verdict(gamma: float, rms_mm: float, config: str = "") -> Any:
    settings = section("machine-logs", config)
    assert isinstance(settings, MachineLogSettings)
    return judge_log(
        settings,
        gamma_pass_percent=gamma,
        max_mlc_rms_mm=rms_mm,
        treatment_type="VMAT",
        beam_holds=2,
    )


def test_a_log_within_tolerance_passes_saying_the_numbers() -> None:
    v = log_verdict(99.12, 0.0842)
    assert (v.status, v.judged) == (Status.PASSED, True)
    assert v.reason == "gamma 1%/1mm 99.1 % >= 95.0 %; max MLC RMS 0.08 mm <= 1.00 mm"
    assert v.metrics == {
        "gamma_pass_percent": 99.12,
        "max_mlc_rms_mm": 0.084,
        "treatment_type": "VMAT",
        "beam_holds": 2,
    }


def test_a_low_gamma_pass_rate_fails_naming_only_it() -> None:
    v = log_verdict(91.2, 0.08)
    assert (v.status, v.reason) == (Status.FAILED, "gamma 1%/1mm 91.2 % < 95.0 %")


def test_gamma_criteria_and_tolerances_come_from_the_config() -> None:
    config = "machine-logs:\n  gamma:\n    dose-percent: 2\n    distance-mm: 2\n  tolerances:\n"
    config += "    max-mlc-rms-mm: 0.05\n"
    v = log_verdict(99.12, 0.0842, config)
    assert (v.status, v.reason) == (Status.FAILED, "max MLC RMS 0.08 mm > 0.05 mm")
    assert log_verdict(99.12, 0.01, config).reason.startswith("gamma 2%/2mm 99.1 % >= 95.0 %")


def test_a_gamma_pylinac_did_not_give_is_an_error_naming_the_key() -> None:
    v = log_verdict(math.nan, 0.08)
    assert v.status is Status.ERROR
    assert v.reason.startswith(
        "gamma 1%/1mm (machine-logs.tolerances.gamma-pass-percent) not judged: pylinac gave no value"
    )
