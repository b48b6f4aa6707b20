"""The wheels of every distribution in this checkout, built once per test session."""

from __future__ import annotations

import pytest
from built_wheels import Wheel, build_wheels


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wheel]:
    """``"kitecore"`` and each plugin folder name -> its wheel, built from this checkout."""
    return build_wheels(tmp_path_factory.mktemp("wheels"))
