"""The whole-token keyword rule of docs/design.md section 3."""

import time

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


def test_a_long_free_text_is_matched_without_keeping_all_its_runs() -> None:
    """A 10 kB comment has some 50 million runs of consecutive tokens: matching walks it instead."""
    long_text = tokens(" ".join(f"w{n}" for n in range(5000)) + " Picket Fence")
    started = time.perf_counter()
    assert matches("picket fence", long_text) and matches("PicketFence", long_text)
    assert not matches("starshot", long_text)
    # Walking it takes milliseconds; keeping its runs took minutes. A bound of seconds holds on a
    # loaded machine and still tells the two apart.
    assert time.perf_counter() - started < 10.0


@pytest.mark.parametrize("words", [4, 30])  # kept runs, and walked runs
def test_short_and_long_texts_match_alike(words: int) -> None:
    text = tokens(" ".join(["QA"] * (words - 2) + ["Winston", "Lutz6X"]))
    for keyword in ("winston lutz", "winstonlutz", "lutz", "lutz6", "lutz 6x", "qaqa", "winston lutz6x"):
        assert matches(keyword, text)
    for keyword in ("winst", "lutz6xx", "ston", "6xq"):
        assert not matches(keyword, text)
