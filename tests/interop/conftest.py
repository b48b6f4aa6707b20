"""Interop tests with the real kite.js (npm ``kite.js@1.0.13``, pinned).

The package is installed into the git-ignored ``build/node`` folder (tests/node_packages.py)
when missing. Without Node or npm they fail (under CI) or are
skipped (on a developer's machine). Node scripts run with ``NODE_PATH`` pointing at that folder.
"""

from __future__ import annotations

import pytest
from node_packages import node_environment


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def node_env() -> dict[str, str]:
    """Environment for ``node`` with kite.js importable (installed here if missing)."""
    return node_environment()
