"""Typed config: defaults from the models, documented in watcher_config.yml, errors that name the key."""

from pathlib import Path

import pytest
import yaml

from linac_qa.config import ConfigError, load_settings
from tests.conftest import ROOT


def test_watcher_config_documents_exactly_the_defaults() -> None:
    documented = yaml.safe_load((ROOT / "watcher_config.yml").read_text(encoding="utf-8"))
    assert documented == load_settings().as_yaml_dict()


def test_watcher_config_loads_as_a_user_file() -> None:
    assert load_settings(ROOT / "watcher_config.yml").hash == load_settings().hash


def test_user_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    cfg = tmp_path / "truebeam1.yml"
    cfg.write_text("general:\n  unit: TrueBeam1\npicket-fence:\n  analysis:\n    tolerance: 0.4\n")
    s = load_settings(cfg)
    assert s.general.unit == "TrueBeam1"
    assert s.general.settle_seconds == 30
    assert s.section("picket-fence").analysis == {"tolerance": 0.4, "action_tolerance": 0.3}
    assert s.section("winston-lutz").keywords == ["wl", "winston", "lutz", "winston lutz"]


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("general:\n  setle-seconds: 3\n", "general.setle-seconds", "settle-seconds"),
        ("picket-fence:\n  analysis:\n    tolerence: 0.3\n", "picket-fence.analysis.tolerence", "tolerance"),
        ("field-analysis:\n  analysis:\n    protocol: FOO\n", "field-analysis.analysis.protocol", "VARIAN"),
        (
            "field-analysis:\n  analysis:\n    is_FFF: true\n",
            "field-analysis.analysis.is_FFF",
            "fff-keywords",
        ),
        (
            "winston-lutz:\n  tolerances:\n    max: 1\n",
            "winston-lutz.tolerances.max",
            "max-cax-bb-distance-mm",
        ),
        ("general:\n  settle-seconds: -1\n", "general.settle-seconds", "greater than or equal to 0"),
        ("picket-fence:\n  mlc: Banana\n", "picket-fence.mlc", "MILLENNIUM"),
        ("pickett-fence:\n  enabled: false\n", "pickett-fence", "picket-fence"),
        ("email:\n  password: hunter2\n", "email.password", "block"),
    ],
)
def test_mistakes_name_file_line_key_and_what_is_allowed(
    tmp_path: Path, text: str, key: str, hint: str
) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    message = str(err.value)
    assert str(cfg) in message and "line " in message
    assert key in message and hint in message
    assert "hunter2" not in message


def test_unreadable_yaml_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yml"
    cfg.write_text("general: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(cfg)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('picket-fence:\n  analysis:\n    tolerance: "1 mm"\n', "tolerance: must be float (got '1 mm')"),
        ("planar-imaging:\n  analysis:\n    ssd: far\n", "ssd: must be float | Literal['auto'] (got 'far')"),
        ("winston-lutz:\n  analysis:\n    open_field: 1\n", "open_field: must be bool (got 1)"),
    ],
)
def test_a_pylinac_option_of_the_wrong_type_is_a_config_error(text: str, said: str) -> None:
    """From the annotations of pylinac's own analyze(): at load time, not as every file's error."""
    with pytest.raises(ConfigError) as err:
        load_settings(text=text, source="truebeam1.yml")
    assert str(err.value).startswith("truebeam1.yml, line 3: ") and said in str(err.value)


def test_pylinac_options_of_the_right_type_load() -> None:
    text = (
        "picket-fence:\n  analysis:\n    tolerance: 1\n"
        "field-analysis:\n  analysis:\n    penumbra: [20, 80]\n"
        "planar-imaging:\n  analysis:\n    ssd: auto\n"
        "cbct:\n  analysis:\n    expected_hu_values: {Air: -1000}\n"
    )
    assert load_settings(text=text, source="t.yml").section("picket-fence").analysis["tolerance"] == 1


def test_the_defaults_that_a_run_does_not_check_against_pylinac_are_pylinac_s_own() -> None:
    """A config that keeps our defaults is not checked against pylinac at load time (that would
    import pylinac in every run's main process): this test checks them instead."""
    from linac_qa.analyses.base import enum_member, from_pylinac
    from linac_qa.analyses.picket_fence import DEFAULT_MLC
    from linac_qa.config import check_pylinac_keywords, failer

    settings = load_settings()
    fail = failer("defaults", {})
    for name in settings.analyses:
        check_pylinac_keywords(name, settings.section(name), fail, even_the_defaults=True)
    enum_member(from_pylinac("picketfence.MLC"), DEFAULT_MLC)


def test_a_run_that_keeps_the_defaults_does_not_import_pylinac_in_its_main_process() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, flows.process, flows.cli; from linac_qa.config import load_settings;"
        " load_settings(); print('pylinac' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
