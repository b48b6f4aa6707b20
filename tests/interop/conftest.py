"""Interop tests with the real kite.js (npm ``kite.js@1.0.13``, pinned).

The package is installed into the git-ignored ``build/node`` folder (as ``scripts/test.sh``
does with its NPM_PACKAGES list) when missing. Without Node or npm they fail (under CI) or are
skipped (on a developer's machine). Node scripts run with ``NODE_PATH`` pointing at that folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

KITE_JS = "kite.js@1.0.13"
NODE_PREFIX = Path(__file__).resolve().parents[2] / "build" / "node"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def node_env() -> dict[str, str]:
    """Environment for ``node`` with kite.js importable (installed here if missing)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the kite.js interop tests")
        pytest.skip("node and npm are needed for the kite.js interop tests")
    modules = NODE_PREFIX / "node_modules"
    if not (modules / "kite.js").is_dir():
        subprocess.run(
            [
                "npm",
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_PREFIX),
                KITE_JS,
            ],
            check=True,
            timeout=300,
        )
    env = dict(os.environ)
    env["NODE_PATH"] = str(modules) + (os.pathsep + env["NODE_PATH"] if "NODE_PATH" in env else "")
    return env
