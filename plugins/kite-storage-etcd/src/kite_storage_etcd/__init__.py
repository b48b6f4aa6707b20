"""Kontrol storage on etcd v3 (``etcd://host:2379[,host:port...]/prefix``), asyncio only.

>>> storage = EtcdStorage("etcd://127.0.0.1:2379/kite")
>>> async with storage:
...     await storage.upsert(kite, RegisterValue(url, key_id), ttl=90)

Kontrol opens it from its ``--storage`` URL through this plugin's ``kite_register_storages``
hook. See the README for the key layout, leases and failover. The names below are imported on
first use, so loading the plugin does not import gRPC.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .endpoints import AsyncioRequiredError, EtcdUnavailableError
    from .storage import EtcdStorage, lease_ttl
    from .url import EtcdURL, parse_etcd_url

__all__ = [
    "AsyncioRequiredError",
    "EtcdStorage",
    "EtcdURL",
    "EtcdUnavailableError",
    "lease_ttl",
    "parse_etcd_url",
]

_LAZY = {
    "AsyncioRequiredError": "endpoints",
    "EtcdUnavailableError": "endpoints",
    "EtcdStorage": "storage",
    "lease_ttl": "storage",
    "EtcdURL": "url",
    "parse_etcd_url": "url",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
