"""The layers of docs/design.md section 13, read from the source (imports inside functions and under
TYPE_CHECKING count too): `flows` -> `blocks` -> `linac_qa`, no Prefect under `linac_qa/` except where
listed below with its reason, and no production module imports the test-data package."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("linac_qa", "flows", "blocks", "deployments")

# Where linac_qa/ may import Prefect or a Prefect collection, and why.
PREFECT_ALLOWED = {
    "linac_qa/notify/send.py": "the SMTP credentials live in a prefect-email EmailServerCredentials block"
    " (docs/design.md section 1): the sender loads it by name, where it is loaded",
}


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in the file; `from a import b` yields `a` and `a.b` (b may
    be a module), relative imports are resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join((*base, *([node.module] if node.module else [])))
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def violations(packages: tuple[str, ...], bad: Callable[[str], bool], root: Path = ROOT) -> list[str]:
    return sorted(
        {
            f"{path.relative_to(root).as_posix()}:{line} imports {name}"
            for package in packages
            for path in (root / package).rglob("*.py")
            for line, name in imports(path, root)
            if bad(name)
        }
    )


def under(*packages: str) -> Callable[[str], bool]:
    return lambda name: any(name == p or name.startswith(p + ".") for p in packages)


def is_prefect(name: str) -> bool:
    top = name.split(".")[0]
    return top == "prefect" or top.startswith("prefect_")


@pytest.mark.parametrize(
    ("layer", "below_it"),
    [
        ("linac_qa", ("flows", "blocks", "deployments")),
        ("blocks", ("flows", "deployments")),
        ("flows", ("deployments",)),
    ],
)
def test_layers_import_only_downwards(layer: str, below_it: tuple[str, ...]) -> None:
    assert violations((layer,), under(*below_it)) == []


def test_no_prefect_under_linac_qa_except_where_documented() -> None:
    found = violations(("linac_qa",), is_prefect)
    assert [v for v in found if v.split(":")[0] not in PREFECT_ALLOWED] == []
    assert {v.split(":")[0] for v in found} == set(PREFECT_ALLOWED), "an exception no longer needed"


def test_no_production_module_imports_the_testing_package() -> None:
    found = violations(PRODUCTION, under("linac_qa.testing"))
    assert [v for v in found if not v.startswith("linac_qa/testing/")] == []


def test_every_form_of_import_is_seen(tmp_path: Path) -> None:
    """The checker itself: a plain import, one inside a function, a module imported by its name
    from its package, and a relative import."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        "import flows.cli\ndef f():\n    from linac_qa import testing\nfrom .sibling import x\n"
    )
    assert violations(("pkg",), under("flows", "linac_qa.testing", "pkg.sibling"), tmp_path) == [
        "pkg/mod.py:1 imports flows.cli",
        "pkg/mod.py:3 imports linac_qa.testing",
        "pkg/mod.py:4 imports pkg.sibling",
        "pkg/mod.py:4 imports pkg.sibling.x",
    ]
