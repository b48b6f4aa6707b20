"""The ``etcd`` kite plugin: registers the ``etcd://`` Kontrol storage.

Loaded by kitecore through the entry point ``[project.entry-points.kite] etcd``. aetcd and gRPC
are imported when a storage is opened, not when the plugin loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kitecore import hookimpl

if TYPE_CHECKING:
    from kitecore.storage import Storage

__all__ = ["kite_register_storages", "open_storage"]


def open_storage(url: str) -> Storage:
    """The factory for ``etcd://host:2379[,host:port...]/prefix`` URLs (asyncio only)."""
    from .storage import EtcdStorage

    return EtcdStorage.from_url(url)


@hookimpl
def kite_register_storages(register: Callable[[str, Callable[[str], Storage]], None]) -> None:
    """Provide the ``etcd`` storage."""
    register("etcd", open_storage)
    register("etcds", open_storage)  # the same storage over TLS
