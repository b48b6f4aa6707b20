"""The memory storage: the storage contract, plus what only an in-process store can show."""

from __future__ import annotations

import time

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


async def test_get_is_fast_with_ten_thousand_kites():
    storage = MemoryStorage()
    value = RegisterValue("http://10.0.0.1:6000/kite", "k")
    start = time.perf_counter()
    for i in range(10_000):
        kite = make_identity(username=f"user{i % 100}", name=f"svc{i % 50}", version="1.2.3")
        await storage.upsert(kite, value, ttl=LONG_TTL)
    registrations_per_second = 10_000 / (time.perf_counter() - start)
    assert registrations_per_second > 1_000

    samples = []
    for i in range(300):
        query = Query(username=f"user{i % 100}", environment="production", name=f"svc{i % 50}")
        begin = time.perf_counter()
        await storage.get(query)
        samples.append(time.perf_counter() - begin)
    samples.sort()
    assert samples[int(len(samples) * 0.99)] < 0.010
    assert len(await storage.get(Query(username="user7", name="svc7", version="~> 1.2"))) == 100


def test_memory_storage_is_a_builtin_plugin():
    try:
        registry = load_plugins(names=["memory"], strict=True)
    except Exception as exc:  # the entry point needs `pip install -e .` after it was added
        pytest.skip(f"memory entry point not installed: {exc}")
    storage = registry.storage_for_url("memory://")
    assert isinstance(storage, MemoryStorage)
