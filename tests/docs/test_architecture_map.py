"""docs/architecture.md names every module of the core, and every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / "docs" / "architecture.md"

# a backticked path into the repository: kitecore/..., plugins/..., tests/..., docs/...
PATH = re.compile(r"`((?:kitecore|plugins|tests|docs)/[A-Za-z0-9_./-]*)`")


def named_paths() -> set[str]:
    return set(PATH.findall(MAP.read_text(encoding="utf-8")))


def test_every_named_path_exists() -> None:
    missing = sorted(p for p in named_paths() if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_core_module_is_on_the_map() -> None:
    named = named_paths()
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "kitecore").rglob("*.py"))
    # a package's __init__ counts as named when the package folder is named
    absent = [
        m
        for m in modules
        if m not in named
        and not (m.endswith("/__init__.py") and m.removesuffix("__init__.py") in named)
    ]
    assert not absent, f"modules missing from docs/architecture.md: {absent}"


def test_every_plugin_distribution_is_in_the_table() -> None:
    text = MAP.read_text(encoding="utf-8")
    for project in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        name = re.search(r'^name = "([^"]+)"', project.read_text(encoding="utf-8"), re.M)
        assert name is not None, project
        assert f"| `{name.group(1)}` |" in text, f"{name.group(1)} is not in the table"
