"""The ``kontrol`` kite plugin: adds ``kite kontrol`` and Kontrol's walk-through to ``kite demo``.

Loaded by kitecore through the entry point ``[project.entry-points.kite] kontrol``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TextIO

from kitecore import hookimpl
from kitecore.plugins import CommandRegistry

from .command import HELP, configure, run

__all__ = ["kite_demo", "kite_register_commands"]


@hookimpl
def kite_register_commands(commands: CommandRegistry) -> None:
    """Provide ``kite kontrol`` (the options of ``python -m kite_kontrol``)."""
    commands.register("kontrol", HELP, configure, run)


@hookimpl
def kite_demo(number: float, out: TextIO) -> Awaitable[tuple[Any, Any]]:
    """``kite demo`` with Kontrol: registration, discovery and a token-authenticated call."""
    from .demo import run_with_kontrol

    return run_with_kontrol(number, out)
