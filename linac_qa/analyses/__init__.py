"""The one registry of analysis types. Adding a modality: write its module, add it here, and
document its section in watcher_config.yml. Order matters: it is the config's section order,
which breaks ties between equally long keywords."""

from __future__ import annotations

from typing import Any

from linac_qa.analyses.base import AnalysisType
from linac_qa.analyses.cbct import CBCTAnalysis
from linac_qa.analyses.field_analysis import FieldAnalysisType
from linac_qa.analyses.light_rad import LightRadAnalysis
from linac_qa.analyses.machine_logs import MachineLogAnalysis
from linac_qa.analyses.mpc import MPCAnalysis
from linac_qa.analyses.picket_fence import PicketFenceAnalysis
from linac_qa.analyses.planar_imaging import PlanarImagingAnalysis
from linac_qa.analyses.starshot import StarshotAnalysis
from linac_qa.analyses.vmat import VMATAnalysis
from linac_qa.analyses.winston_lutz import WinstonLutzAnalysis

REGISTRY: dict[str, AnalysisType[Any]] = {
    a.section: a
    for a in (
        PicketFenceAnalysis(),
        WinstonLutzAnalysis(),
        StarshotAnalysis(),
        FieldAnalysisType(),
        LightRadAnalysis(),
        CBCTAnalysis(),
        VMATAnalysis(),
        PlanarImagingAnalysis(),
        MachineLogAnalysis(),
        MPCAnalysis(),
    )
}
