"""The core never imports a plugin package (a plugin depends on the core, never the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "kitecore"


def plugin_packages() -> set[str]:
    """The top-level packages of every plugin distribution under plugins/*/src/."""
    return {
        path.parent.name
        for path in ROOT.glob("plugins/*/src/*/__init__.py")
        if path.parent.name.isidentifier()
    }


def imported_top_levels(source: str, filename: str) -> set[str]:
    """Top-level names of every absolute import in ``source`` (relative ones stay in-package)."""
    names = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and _is_import_call(node):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value.split(".")[0])
    return names


def _is_import_call(node: ast.Call) -> bool:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return name in {"import_module", "__import__", "importorskip"} and bool(node.args)


def test_the_plugin_packages_are_found():
    # the check below is only as good as this list
    assert {"kite_auth_token", "kite_kontrol", "kite_storage_etcd"} <= plugin_packages()


def test_no_core_module_imports_a_plugin_package():
    plugins = plugin_packages()
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        imported = imported_top_levels(path.read_text(encoding="utf-8"), str(path))
        offenders += [f"{path.relative_to(ROOT)} imports {name}" for name in imported & plugins]
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_every_kind_of_import():
    source = (
        "import kite_kontrol.server\n"
        "def f():\n    from kite_auth_token import compact\n"
        "import importlib\nimportlib.import_module('kite_pickers.plugin')\n"
        "from . import sibling\n"
    )
    assert imported_top_levels(source, "x.py") == {
        "kite_kontrol",
        "kite_auth_token",
        "importlib",
        "kite_pickers",
    }
