"""Fixtures of the browser tests: Node with kite.js and playwright-core, and Debian's Chromium.

The npm packages go into the git-ignored ``build/node`` folder (tests/node_packages.py).
Without Node, npm or Chromium the tests fail under CI (env ``CI`` set)
and are skipped on a developer's machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from node_packages import node_environment, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def node_env() -> dict[str, str]:
    """Environment for ``node`` (and the example kite) with the npm packages in NODE_PATH."""
    return node_environment()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's ``chromium`` (installed by scripts/test.sh through APT_PACKAGES)."""
    path = shutil.which("chromium")
    if path is None:
        unavailable("chromium (Debian package) is needed for the browser tests")
    assert path is not None
    return path
