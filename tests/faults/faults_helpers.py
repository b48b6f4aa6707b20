"""A real Kontrol process for fault-injection tests (a module of its own: conftest is not
importable)."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import kite_auth_token
from kite_kontrol.testing import KontrolProcess

logger = logging.getLogger(__name__)

#: Where kite_auth_token is imported from (installed or the source tree), for the subprocess.
PLUGIN_SRC = str(Path(kite_auth_token.__file__).resolve().parents[1])

KONTROL_USER = "admin"
SECRET = "faults-registration-secret"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_kontrol(tmp_path: Path, *, port: int, backend: str) -> KontrolProcess:
    """A Kontrol process on memory storage, registration by :data:`SECRET`."""
    return KontrolProcess(
        tmp_path,
        port=port,
        username=KONTROL_USER,
        registration_secret=SECRET,
        backend=backend,
        env={"PYTHONPATH": os.pathsep.join([PLUGIN_SRC, os.environ.get("PYTHONPATH", "")])},
        plugins="websocket,memory",
    )


async def machine_key(kite: Any, url: str, username: str) -> str:
    """A fresh kite.key for ``username`` from Kontrol's ``registerMachine`` (its own ``jti``)."""
    async with kite.new_client(url) as client:
        return await client.tell("registerMachine", {"username": username, "secret": SECRET})


async def whoami(r: Any) -> str:
    """The caller's authenticated username."""
    return r.username
