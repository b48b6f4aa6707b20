"""The ``pickers`` kite plugin: registers ``random``, ``round_robin``, ``fastest`` and
``least_latency``.

Loaded by kitecore through the entry point ``[project.entry-points.kite] pickers``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kitecore import hookimpl

from .fastest import FastestPicker
from .least_latency import LeastLatencyPicker
from .simple import RandomPicker, RoundRobinPicker

__all__ = ["kite_register_pickers"]


@hookimpl
def kite_register_pickers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Provide the four pickers; each pool builds its own picker object."""
    register("random", RandomPicker)
    register("round_robin", RoundRobinPicker)
    register("fastest", FastestPicker)
    register("least_latency", LeastLatencyPicker)
