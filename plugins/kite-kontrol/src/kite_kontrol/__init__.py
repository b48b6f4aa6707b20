"""Kontrol: Kite's discovery and token service (protocol.md §7, §8), the kite-kontrol plugin.

The storage names re-exported here live in the core (:mod:`kitecore.storage`, with the embedded
``memory://`` storage in :mod:`kitecore.storage.memory`), so storage plugins need only kitecore.
:class:`Kontrol` and the rest are imported on first use (``from kite_kontrol import Kontrol``).
Run one with ``kite kontrol`` or ``python -m kite_kontrol --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitecore.storage import (
    IdConflictError,
    InvalidInputError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyPairRecord,
    KiteRecord,
    RegisterValue,
    Storage,
    StorageError,
)

if TYPE_CHECKING:
    from .machine import MachineDenied, OpenPolicy, SecretPolicy
    from .server import Kontrol
    from .settings import KontrolSettings

__all__ = [
    "IdConflictError",
    "InvalidInputError",
    "KeyDeletedError",
    "KeyNotFoundError",
    "KeyPairRecord",
    "KiteRecord",
    "Kontrol",
    "KontrolSettings",
    "MachineDenied",
    "OpenPolicy",
    "RegisterValue",
    "SecretPolicy",
    "Storage",
    "StorageError",
]

_LAZY = {
    "Kontrol": "server",
    "KontrolSettings": "settings",
    "MachineDenied": "machine",
    "OpenPolicy": "machine",
    "SecretPolicy": "machine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
