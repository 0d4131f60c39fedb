"""The whole-token keyword rule of docs/design.md section 3."""

import pytest

from linac_qa.intake.keywords import best_match, matches, nominal_field_mm, tokens


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("pf", "RI.QA.PF_A.dcm"),
        ("catphan", "CatPhan504"),
        ("picket fence", "PicketFence"),
        ("open field", "OpenField_6X"),
        ("open field", "Open field 15x15 6X"),
        ("fc2", "LightRad_FC2"),
        ("winston lutz", "Winston-Lutz MLC 2x2"),
        ("fff", "RI.QA.OpenField_6FFF_TrueBeam1"),
        ("light rad", "Light/rad coincidence"),
    ],
)
def test_keyword_matches_whole_tokens(keyword: str, text: str) -> None:
    assert matches(keyword, tokens(text))


@pytest.mark.parametrize(
    ("keyword", "text"),
    [("tor", "monitor"), ("ct", "direct"), ("pf", "pfx_image"), ("star", "startup"), ("wl", "owl")],
)
def test_keyword_never_matches_inside_a_word(keyword: str, text: str) -> None:
    assert not matches(keyword, tokens(text))


def test_longest_keyword_wins_then_config_order() -> None:
    candidates = [("picket-fence", "pf"), ("winston-lutz", "wl"), ("winston-lutz", "winston lutz")]
    assert best_match(["RI.QA.PF_A", "Winston-Lutz MLC"], candidates) == ("winston-lutz", "winston lutz")
    assert best_match(["PF WL"], [("picket-fence", "pf"), ("winston-lutz", "wl")]) == ("picket-fence", "pf")
    assert best_match(["nothing here"], candidates) is None


def test_nominal_field_size_in_cm() -> None:
    assert nominal_field_mm(["RI.QA.LightRad_FC2_15x15.dcm"]) == (150.0, 150.0)
    assert nominal_field_mm(["no size", "field 10 x 20"]) == (100.0, 200.0)
    assert nominal_field_mm(["20240304_0720"]) is None
