"""Registry watches across Kontrols sharing etcd (issue 10.2): a kite registering through
Kontrol B, leaving B, or expiring reaches a watcher on Kontrol A once, in order; the change feed
resumes from its revision when its etcd member dies, losing and repeating nothing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from etcd_kontrol_process import etcd_kontrol
from kite_auth_token import plugin as token_plugin
from kite_kontrol.testing import KontrolProcess, check_watch_across_kontrols, machine_key
from kite_storage_etcd import EtcdStorage
from kite_storage_etcd.feed import EtcdFeed
from kite_storage_etcd.testing import EtcdCluster, free_port

from kitecore import Authentication, Config, Kite
from kitecore.contracts.storage import make_identity
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import DEREGISTER, REGISTER, RESYNC, ChangeFeed, RegisterValue
from kitecore.testing import CORE_PLUGINS

pytestmark = pytest.mark.anyio

ENVIRONMENT = "watched"
VALUE = RegisterValue("http://127.0.0.1:9/kite", "k")


@pytest.fixture
def plugins() -> PluginRegistry:
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin])


@pytest.fixture
def base_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.timeout = 10.0
    config.environment = ENVIRONMENT
    return config


@pytest.fixture
async def two_kontrols(
    tmp_path: Path, etcd_url: str, etcd_cache: str
) -> AsyncIterator[list[KontrolProcess]]:
    processes = [
        etcd_kontrol(
            tmp_path / f"kontrol{i}",
            port=free_port(),
            storage_url=f"{etcd_url}?cache={etcd_cache}",
            data_dir=tmp_path / "kontrol-data",
        )
        for i in range(2)
    ]
    try:
        for process in processes:  # the first creates the key pair
            await process.start()
        yield processes
    finally:
        with anyio.CancelScope(shield=True):
            for process in processes:
                await process.stop()


async def test_watcher_on_a_sees_kites_of_b_and_expiry(
    two_kontrols, etcd_url: str, base_config: Config, plugins: PluginRegistry
) -> None:
    a, b = two_kontrols

    async def write_short_lived(kite: KiteIdentity) -> None:
        async with EtcdStorage(etcd_url) as storage:  # a third writer; a lease that runs out
            await storage.upsert(kite, VALUE, ttl=1)

    await check_watch_across_kontrols(a.url, b.url, base_config, plugins, write_short_lived)


async def test_getkites_on_a_follows_b_and_a_silent_kite_disappears(
    two_kontrols, etcd_url: str, base_config: Config, plugins: PluginRegistry
) -> None:
    """getKites on Kontrol A (answered from A's etcd cache) shows a kite registered through B,
    and stops showing a kite that went silent once its lease ran out."""
    a, b = two_kontrols
    async with contextlib.AsyncExitStack() as stack:
        observer = await stack.enter_async_context(
            Kite("observer", "1.0.0", config=base_config.copy(), plugins=plugins)
        )
        client = await stack.enter_async_context(
            observer.new_client(
                a.url, auth=Authentication("kiteKey", await machine_key(observer, a.url, "eve"))
            )
        )

        async def kites_on_a(query: dict[str, str]) -> list[str]:
            answer = await client.tell("getKites", {"query": query})
            return [entry["kite"]["id"] for entry in answer["kites"]]

        async def until_on_a(query: dict[str, str], wanted: list[str]) -> None:
            with anyio.fail_after(30):
                while await kites_on_a(query) != wanted:  # noqa: ASYNC110 - another process
                    await anyio.sleep(0.05)

        config = base_config.copy()
        config.apply_kite_key(await machine_key(observer, a.url, "bob"))
        config.kontrol_url = b.url
        async with Kite("svc", "1.0.0", config=config, plugins=plugins) as kite:
            await kite.register()
            await until_on_a({"id": kite.id}, [kite.id])
        await until_on_a({"id": kite.id}, [])

        async with EtcdStorage(etcd_url) as storage:  # a kite that never sends a heartbeat
            silent = make_identity(environment=ENVIRONMENT)
            await storage.upsert(silent, VALUE, ttl=1)
            await until_on_a({"id": silent.id}, [silent.id])
            await until_on_a({"environment": ENVIRONMENT, "name": silent.name}, [silent.id])
            await until_on_a({"id": silent.id}, [])  # etcd expired it; A's cache dropped it
            assert await kites_on_a({"environment": ENVIRONMENT, "name": silent.name}) == []


async def anext_within(feed: ChangeFeed, timeout: float = 30.0):
    with anyio.fail_after(timeout):
        return await feed.__anext__()


async def test_feed_resumes_from_its_revision(etcd_storage: EtcdStorage) -> None:
    """A feed opened at an older revision (as after a dropped stream) gets what it missed."""
    first, second = make_identity(), make_identity()
    feed = ChangeFeed()
    pump = EtcdFeed(etcd_storage._etcd, etcd_storage.layout, feed)
    await pump.start()
    await etcd_storage.upsert(first, VALUE, ttl=60)
    await etcd_storage.upsert(second, VALUE, ttl=60)
    await etcd_storage.delete(first)
    async with anyio.create_task_group() as group:
        group.start_soon(pump.run)
        got = [await anext_within(feed) for _ in range(3)]
        group.cancel_scope.cancel()
    assert [(e.action, e.record.kite) for e in got] == [
        (REGISTER, first),
        (REGISTER, second),
        (DEREGISTER, first),
    ]


async def test_feed_survives_the_death_of_its_member(
    etcd_cluster: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = etcd_cluster.storage_url("/watch", timeout=3)
    before, during, after = make_identity(), make_identity(), make_identity()
    async with EtcdStorage(url) as storage, storage.watch() as feed:
        await storage.upsert(before, VALUE, ttl=60)
        assert (await anext_within(feed)).record.kite == before
        etcd_cluster.members[0].kill()  # the member the storage talks to first
        await storage.upsert(during, VALUE, ttl=60)  # fails over to another member
        await storage.upsert(after, VALUE, ttl=60)
        got = [await anext_within(feed) for _ in range(2)]
        assert RESYNC not in [e.action for e in got]
        assert [(e.action, e.record.kite) for e in got] == [(REGISTER, during), (REGISTER, after)]
        await storage.delete(during)
        event = await anext_within(feed)
        assert (event.action, event.record.kite) == (DEREGISTER, during)
    assert "etcd change feed: stream lost" in caplog.text  # it did drop, and resumed
