"""The ``postgres`` kite plugin: Kontrol storage for ``postgres://`` and ``postgresql://`` URLs.

Loaded by kitecore through the entry point ``[project.entry-points.kite] postgres``.
"""

from __future__ import annotations

from collections.abc import Callable

from kitecore import hookimpl
from kitecore.storage import Storage

from .options import SCHEMES
from .storage import PostgresStorage

__all__ = ["kite_register_storages"]


@hookimpl
def kite_register_storages(register: Callable[[str, Callable[[str], Storage]], None]) -> None:
    """Provide the PostgreSQL storage under both URL schemes."""
    for scheme in SCHEMES:
        register(scheme, PostgresStorage.from_url)
