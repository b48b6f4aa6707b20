"""Every module a wheel ships imports only the standard library, itself and what it declares.

The fresh-install test proves that each distribution imports in a clean venv, but a missing
declaration can hide there behind another distribution's dependency (the core's ``sniffio``
also satisfied the PostgreSQL plugin's import of it). This test reads every ``import`` in
every ``.py`` file of each built wheel and requires the distribution providing it (found
through the test environment, where everything is installed) to be among the wheel's own
``Requires-Dist`` entries that apply without extras.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys

import pytest
from built_wheels import PLUGIN_FOLDERS, Wheel
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: (file in the wheel, top-level module) pairs that need not be declared, and why.
OPTIONAL_IMPORTS = {
    # pytest plugins (entry point pytest11) and the contract suites: only ever imported by
    # pytest itself, so pytest is there
    ("kitecore/testing.py", "pytest"),
    ("kitecore/contracts/storage.py", "pytest"),
    ("kitecore/contracts/transport.py", "pytest"),
    ("kite_kontrol/testing.py", "pytest"),
    # the kitecore[speed] extra: used when installed, the standard library otherwise
    ("kitecore/protocol/dnode.py", "msgspec"),
    ("kitecore/http/frames.py", "websockets"),
}


def top_level_imports(source: str) -> set[str]:
    """The top-level module of every absolute import in ``source``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def declared(wheel: Wheel) -> set[str]:
    """Canonical names of the distributions ``wheel`` requires when installed without extras."""
    names = set()
    for line in wheel.requires:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": ""}):
            names.add(canonicalize_name(requirement.name))
    return names


def providers(wheels: dict[str, Wheel]) -> dict[str, set[str]]:
    """Top-level module -> canonical names of the distributions that provide it."""
    found = {
        module: {canonicalize_name(name) for name in names}
        for module, names in importlib.metadata.packages_distributions().items()
    }
    for wheel in wheels.values():  # ours are installed editable: their metadata may not say
        for path in wheel.sources:
            if "/" in path and not path.split("/")[0].endswith(".data"):
                found.setdefault(path.split("/")[0], set()).add(canonicalize_name(wheel.name))
    return found


@pytest.mark.parametrize("key", ["kitecore", *PLUGIN_FOLDERS])
def test_every_import_is_declared(wheels: dict[str, Wheel], key: str) -> None:
    wheel = wheels[key]
    own = {path.split("/")[0] for path in wheel.sources}
    needs = declared(wheel)
    by_module = providers(wheels)
    undeclared = []
    for path, source in sorted(wheel.sources.items()):
        for module in sorted(top_level_imports(source) - own):
            if module in sys.stdlib_module_names or (path, module) in OPTIONAL_IMPORTS:
                continue
            candidates = by_module.get(module)
            assert candidates, f"{path} imports {module}, which nothing installed here provides"
            if not candidates & needs:
                undeclared.append(f"{path}: {module} (from {', '.join(sorted(candidates))})")
    assert not undeclared, f"{wheel.name} does not declare: " + "; ".join(undeclared)


def test_the_check_sees_a_missing_declaration() -> None:
    """The test's own logic: a wheel importing sniffio without declaring it is caught."""
    wheel = Wheel(
        path=None,  # type: ignore[arg-type]
        name="example",
        version="1",
        metadata="",
        entry_points={},
        licenses={},
        requires=["anyio>=4", 'pytest; extra == "test"'],
        sources={"example/__init__.py": "import anyio\nimport sniffio\nimport json\n"},
    )
    assert declared(wheel) == {"anyio"}
    assert top_level_imports(wheel.sources["example/__init__.py"]) == {"anyio", "sniffio", "json"}
