"""Every analysis module has its unit test module here, judging recorded results."""

from __future__ import annotations

from pathlib import Path

from linac_qa.analyses import REGISTRY


def test_every_analysis_module_has_a_test_module_here() -> None:
    modules = {type(a).__module__.rsplit(".", 1)[1] for a in REGISTRY.values()}
    here = Path(__file__).parent
    assert sorted(m for m in modules if not (here / f"test_{m}.py").is_file()) == []
