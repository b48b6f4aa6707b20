"""A real Kontrol process for fault-injection tests (a module of its own: conftest is not
importable); the rest comes from the test kits, :mod:`kitecore.testing` and
:mod:`kite_kontrol.testing`."""

from __future__ import annotations

import os
from pathlib import Path

import kite_auth_token
from kite_kontrol.testing import KONTROL_USER, REGISTRATION_SECRET, KontrolProcess

__all__ = ["memory_kontrol"]

#: Where kite_auth_token is imported from (installed or the source tree), for the subprocess.
PLUGIN_SRC = str(Path(kite_auth_token.__file__).resolve().parents[1])


def memory_kontrol(tmp_path: Path, *, port: int, backend: str) -> KontrolProcess:
    """A Kontrol process on memory storage, registration by the test kit's secret."""
    return KontrolProcess(
        tmp_path,
        port=port,
        username=KONTROL_USER,
        registration_secret=REGISTRATION_SECRET,
        backend=backend,
        env={"PYTHONPATH": os.pathsep.join([PLUGIN_SRC, os.environ.get("PYTHONPATH", "")])},
        plugins="websocket,memory",
    )
