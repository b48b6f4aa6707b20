"""Helpers of the kite.js interop tests."""

from __future__ import annotations

import socket
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port that was free a moment ago (kite.js servers cannot listen on port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def script(name: str) -> str:
    """Path of a node script next to this file."""
    return str(HERE / name)
