"""The PostgreSQL storage passes the storage contract against a real server."""

from __future__ import annotations

import pytest

from kitecore.contracts.storage import StorageContract


class TestPostgresStorageContract(StorageContract):
    short_ttl = 0.5
    expiry_slack = 0.5

    @pytest.fixture
    async def storage(self, pg_storage):
        yield pg_storage
