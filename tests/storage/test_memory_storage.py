"""The memory storage: the storage contract, plus what only an in-process store can show."""

from __future__ import annotations

import pytest

from kitecore.contracts.storage import LONG_TTL, StorageContract, make_identity
from kitecore.plugins import load_plugins
from kitecore.protocol.identity import Query
from kitecore.storage import RegisterValue
from kitecore.storage.memory import MemoryStorage


class TestMemoryStorageContract(StorageContract):
    short_ttl = 0.2
    expiry_slack = 0.2

    @pytest.fixture
    async def storage(self):
        async with MemoryStorage() as storage:
            yield storage


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


pytestmark = pytest.mark.anyio


async def test_injected_clock_drives_expiry():
    clock = FakeClock()
    storage = MemoryStorage(clock=clock)
    kite = make_identity()
    await storage.upsert(kite, RegisterValue("http://a/kite", "k"), ttl=90)
    clock.now += 89.9
    assert len(await storage.get(Query(id=kite.id))) == 1
    clock.now += 0.1
    assert await storage.get(Query(id=kite.id)) == []
    assert len(storage) == 0


async def test_purge_drops_index_entries():
    clock = FakeClock()
    storage = MemoryStorage(clock=clock)
    for i in range(50):
        await storage.upsert(
            make_identity(name=f"n{i}"), RegisterValue("http://a/kite", "k"), ttl=1
        )
    clock.now += 2
    assert len(storage) == 0
    assert storage._by_name == {} and storage._by_username == {} and storage._by_triple == {}


async def test_queries_are_right_with_ten_thousand_kites():
    # how fast is bench/storage.py's job (memory://: p99 < 10 ms, >= 1,000 registrations/s)
    storage = MemoryStorage()
    value = RegisterValue("http://10.0.0.1:6000/kite", "k")
    for i in range(10_000):
        kite = make_identity(username=f"user{i % 100}", name=f"svc{i % 50}", version="1.2.3")
        await storage.upsert(kite, value, ttl=LONG_TTL)
    assert len(storage) == 10_000
    for i in range(100):
        query = Query(username=f"user{i}", environment="production", name=f"svc{i % 50}")
        found = await storage.get(query)
        assert len(found) == 100
        assert {(r.kite.username, r.kite.name) for r in found} == {(f"user{i}", f"svc{i % 50}")}
    assert len(await storage.get(Query(username="user7", name="svc7", version="~> 1.2"))) == 100
    assert await storage.get(Query(username="user7", name="svc8")) == []


def test_memory_storage_is_a_builtin_plugin():
    # strict: a missing entry point (an install older than it) fails here, it is not skipped
    registry = load_plugins(names=["memory"], strict=True)
    storage = registry.storage_for_url("memory://")
    assert isinstance(storage, MemoryStorage)
