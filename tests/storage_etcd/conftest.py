"""Fixtures for the etcd storage tests: a real etcd on loopback, started once per session.

aetcd and grpc.aio are asyncio-only, so every async test here runs on asyncio. etcd comes from
Debian's ``etcd-server`` package (``/usr/bin/etcd``; ``scripts/test.sh`` installs it in CI) or
``$ETCD_BIN``; without it these tests fail, they are not skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kite_storage_etcd import EtcdStorage
from kite_storage_etcd.testing import EtcdCluster


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One etcd member on a free loopback port, in a temporary directory, for the session."""
    with EtcdCluster.start(tmp_path_factory.mktemp("etcd"), size=1) as cluster:
        yield cluster


@pytest.fixture(params=["on", "off"], ids=["cache-on", "cache-off"])
def etcd_cache(request: pytest.FixtureRequest) -> str:
    """The storage URL's ``cache`` option: the contract suite and the Kontrol tests run with the
    read cache and without it (every query an etcd read), which must answer alike."""
    return str(request.param)


@pytest.fixture
def etcd_url(etcd_server: EtcdCluster) -> str:
    """A storage URL with a fresh key prefix: every test starts with an empty storage."""
    return etcd_server.storage_url(f"/test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def etcd_storage(etcd_url: str) -> AsyncIterator[EtcdStorage]:
    async with EtcdStorage(etcd_url) as storage:
        yield storage


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """Three etcd members on loopback, for one test (it may kill and restart members)."""
    with EtcdCluster.start(tmp_path / "etcd", size=3) as cluster:
        yield cluster
