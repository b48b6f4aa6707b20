"""Fixtures for the plugin-loading tests: a clean environment and fake installed distributions."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stevedore import ExtensionManager

from kitecore import plugins

#: make(distribution, version, {entry-point name: module}, {module: source}) -> site dir
MakeDist = Callable[[str, str, dict[str, str], dict[str, str]], Path]


@pytest.fixture(autouse=True)
def clean_plugin_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No plugin env vars leak in, and no registry or stevedore cache leaks between tests."""
    monkeypatch.delenv(plugins.PLUGINS_ENV, raising=False)
    monkeypatch.delenv(plugins.STRICT_ENV, raising=False)
    # stevedore keeps each group's entry points for the life of the process.
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    plugins.reset_registry()
    yield
    plugins.reset_registry()


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Install fake distributions (a ``.dist-info`` plus modules) on ``sys.path``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def make(
        name: str, version: str, entry_points: dict[str, str], sources: dict[str, str]
    ) -> Path:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = [f"{ep} = {module}" for ep, module in entry_points.items()]
        (info / "entry_points.txt").write_text(
            "[kite]\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
        for module, source in sources.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            modules.append(module)
        return site

    yield make
    for module in modules:
        sys.modules.pop(module, None)
