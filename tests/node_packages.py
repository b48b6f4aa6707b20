"""The npm packages the tests drive (kite.js, playwright-core), installed into build/node.

One list, ``tests/node-packages.txt``, shared with ``scripts/test.sh``. They are installed in
one npm call because ``npm install --no-save`` removes every package of the prefix that the
call does not name. Without Node or npm the tests fail under CI (env ``CI`` set) and are
skipped on a developer's machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_PREFIX = ROOT / "build" / "node"
PACKAGES = tuple(
    line.strip()
    for line in (ROOT / "tests" / "node-packages.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def node_environment() -> dict[str, str]:
    """An environment for ``node`` with every package of the list importable."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("node and npm are needed for this test")
    modules = NODE_PREFIX / "node_modules"
    names = [package.rpartition("@")[0] for package in PACKAGES]
    if not all((modules / name).is_dir() for name in names):
        subprocess.run(
            ["npm", "install", "--no-save", "--no-audit", "--no-fund",
             "--prefix", str(NODE_PREFIX), *PACKAGES],
            check=True,
            timeout=600,
        )  # fmt: skip
    env = dict(os.environ)
    env["NODE_PATH"] = str(modules) + (os.pathsep + env["NODE_PATH"] if "NODE_PATH" in env else "")
    return env
