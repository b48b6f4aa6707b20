"""The ``token`` kite plugin: registers the ``kiteKey`` and ``token`` authenticators.

Loaded by kitecore through the entry point ``[project.entry-points.kite] token``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kitecore import hookimpl

from .authenticators import KiteKeyAuthenticator, TokenAuthenticator

__all__ = ["kite_register_authenticators"]


@hookimpl
def kite_register_authenticators(register: Callable[[str, Callable[[Any], Any]], None]) -> None:
    """Provide ``kiteKey`` and ``token``; each kite gets its own authenticator objects."""
    register("kiteKey", KiteKeyAuthenticator)
    register("token", TokenAuthenticator)
