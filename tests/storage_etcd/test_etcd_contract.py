"""The etcd storage against the storage contract every backend passes, on a real etcd."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kite_storage_etcd import EtcdStorage

from kitecore.contracts.storage import StorageContract


class TestEtcdStorageContract(StorageContract):
    # etcd leases are whole seconds; the test etcd's short election timeout allows 1 s leases.
    # Expiry is checked by the leader every 500 ms and then goes through raft.
    short_ttl = 1.0
    expiry_slack = 1.5
    concurrent_writers = 200

    @pytest.fixture
    async def storage(self, etcd_url: str, etcd_cache: str) -> AsyncIterator[EtcdStorage]:
        async with EtcdStorage(f"{etcd_url}?cache={etcd_cache}") as storage:
            assert (storage.cache is not None) == (etcd_cache == "on")
            yield storage
