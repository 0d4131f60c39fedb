"""Hostile configs (issue 13): a YAML alias bomb, deep nesting, secrets hidden in lists and absurdly
long strings. Each is a clear error naming the file, the key and what is allowed, before any work,
fast and without echoing a secret."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from linac_qa.config import ConfigError, load_settings
from tests.conftest import ROOT

# --------------------------------------------------------------------------- alias bomb

# 477 bytes that expand to 9**9 (387 million) strings when every alias is followed.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{','.join(['*' + prev] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
# Each reader of YAML in the project loads the bomb, in a process of its own whose memory is capped:
# today's line-number walk follows every alias and would exhaust it.
PROBE = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from blocks.machine_config import MachineConfig
    from deployments.machines import load_machines
    from linac_qa.config import ConfigError, load_settings
    readers = [load_settings, lambda path: MachineConfig(yaml=open(path).read()), load_machines]
    messages = []
    for read in readers:
        try:
            read(sys.argv[1])
        except ConfigError as exc:
            messages.append(str(exc))
    print(json.dumps(messages))
    """
)


def test_a_yaml_alias_bomb_is_refused_at_once_by_every_reader(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yml"
    bomb.write_text(BOMB, encoding="utf-8")
    assert len(BOMB.encode()) < 500
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(bomb)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a YAML reader was still expanding the aliases after 120 s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    refusal = "line 2: YAML aliases (*a) are not supported: write the value out"
    assert json.loads(proc.stdout) == [
        f"{bomb}, {refusal}",
        f"machine-config block, {refusal}",
        f"{bomb}, {refusal}",
    ]


def test_nesting_is_bounded() -> None:
    with pytest.raises(ConfigError, match=r"^deep, line 2: nested deeper than 32 levels$"):
        load_settings(text="general:\n  sources: " + "[" * 40 + "]" * 40 + "\n", source="deep")


def test_an_anchor_without_an_alias_is_harmless() -> None:
    assert load_settings(text="general:\n  unit: &u TB1\n").general.unit == "TB1"


# --------------------------------------------------------------------------- secrets anywhere


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("general:\n  sources:\n    - password: hunter2\n", "general.sources.0.password"),
        ("email:\n  recipients:\n    - qa@clinic.org\n    - token: hunter2\n", "email.recipients.1.token"),
        (
            "picket-fence:\n  analysis:\n    x: [[{API_KEY: hunter2}]]\n",
            "picket-fence.analysis.x.0.0.API_KEY",
        ),
        ("email:\n  smtp-password: hunter2\n", "email.smtp-password"),
        ("general:\n  unit:\n    access_token: hunter2\n", "general.unit.access_token"),
    ],
)
def test_secrets_are_refused_at_any_depth_without_their_value(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "tb1.yml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    message = str(err.value)
    assert f"{key}: secrets do not belong in a config file" in message, message
    assert "hunter2" not in message


def test_a_machines_file_refuses_secrets_too(tmp_path: Path) -> None:
    from deployments.machines import parse_machines

    text = (
        "machines:\n  - name: tb1\n    cron: '0 2 * * *'\n    timezone: UTC\n    tags: [{token: hunter2}]\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_machines(text, "machines.yml", tmp_path)
    assert "line 5: machines.0.tags.0.token: secrets do not belong" in str(err.value)
    assert "hunter2" not in str(err.value)


# --------------------------------------------------------------------------- lengths

HUGE = "x" * 10_000_000


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("general:\n  unit: " + "x" * 100_000 + "\n", "general.unit", "at most 4096 characters"),
        ("general:\n  unit: " + "x" * 65 + "\n", "general.unit", "at most 64 characters"),
        ("starshot:\n  keywords: [star, " + "k" * 65 + "]\n", "starshot.keywords.1", "at most 64 characters"),
        ("general:\n  avoid-keywords: [" + "k" * 65 + "]\n", "general.avoid-keywords.0", "at most 64"),
        ("email:\n  subject: " + "s" * 999 + "\n", "email.subject", "at most 998 characters"),
        ("general:\n  output-directory: /" + "d" * 4096 + "\n", "general.output-directory", "at most 4096"),
        ("general:\n  sources: [/" + "d" * 4096 + "]\n", "general.sources.0", "at most 4096 characters"),
        (
            "picket-fence:\n  analysis:\n    x: " + "v" * 5000 + "\n",
            "picket-fence.analysis.x",
            "at most 4096",
        ),
        ("general:\n  ? " + "k" * 5000 + "\n  : 1\n", "general." + "k" * 8, "at most 4096"),
    ],
)
def test_absurdly_long_strings_are_refused_with_a_short_message(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    cfg = tmp_path / "tb1.yml"
    cfg.write_text(text, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    message = str(err.value)
    assert message.startswith(f"{cfg}, line ") and key in message and allowed in message, message[:500]
    assert len(message) < 600 + len(str(cfg)), message[:1000]
    assert time.monotonic() - started < 10


def test_a_huge_config_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    cfg = tmp_path / "tb1.yml"
    cfg.write_text(f"general:\n  unit: {HUGE}\n", encoding="utf-8")  # the hostile tester's 10 MB unit
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"tb1\.yml: larger than 1 MB: not a config file$"):
        load_settings(cfg)
    assert time.monotonic() - started < 2


def test_strings_at_their_limits_are_accepted() -> None:
    s = load_settings(text="general:\n  unit: " + "u" * 64 + "\nstarshot:\n  keywords: [" + "k" * 64 + "]\n")
    assert len(s.general.unit or "") == 64 and s.section("starshot").keywords == ["k" * 64]
