"""Helpers of the kite.js interop tests."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def script(name: str) -> str:
    """Path of a node script next to this file."""
    return str(HERE / name)
