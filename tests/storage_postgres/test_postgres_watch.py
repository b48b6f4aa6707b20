"""Registry watches across Kontrols sharing PostgreSQL (issue 10.2): a kite registering through
Kontrol B, leaving B, or expiring reaches a watcher on Kontrol A once, in order; the change feed
recovers from a lost listening connection without losing or repeating an event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import asyncpg
import pytest
from kite_auth_token import plugin as token_plugin
from kite_kontrol.testing import WatchRecorder, check_watch_across_kontrols
from kite_storage_postgres import PostgresStorage
from kite_storage_postgres.testing import TemporaryPostgres
from postgres_helpers import PostgresKontrol

from kitecore import Authentication, Config, Kite
from kitecore.contracts.storage import make_identity
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import DEREGISTER, REGISTER, RESYNC, RegisterValue
from kitecore.testing import CORE_PLUGINS

pytestmark = pytest.mark.anyio

ENVIRONMENT = "watched"


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
    tmp_path: Path, postgres: TemporaryPostgres, make_url
) -> AsyncIterator[tuple[list[PostgresKontrol], str]]:
    url = make_url()
    storage_url = url.replace(f":{postgres.password}@", "@")
    processes = [
        PostgresKontrol(
            tmp_path,
            index,
            storage_url=storage_url,
            password=postgres.password,
            data_dir=tmp_path / "kontrol-data",
        )
        for index in range(2)
    ]
    try:
        for process in processes:  # the first creates the key pair and the schema
            await process.start()
        yield processes, url
    finally:
        with anyio.CancelScope(shield=True):
            for process in processes:
                await process.stop()


async def test_watcher_on_a_sees_kites_of_b_and_expiry(
    two_kontrols, base_config: Config, plugins: PluginRegistry
) -> None:
    (a, b), url = two_kontrols

    async def write_short_lived(kite: KiteIdentity) -> None:
        # a kite whose TTL runs out (written by a third process's storage)
        async with PostgresStorage.from_url(url) as storage:
            await storage.upsert(kite, RegisterValue("http://127.0.0.1:9/kite", "k"), ttl=0.5)

    await check_watch_across_kontrols(a.url, b.url, base_config, plugins, write_short_lived)


async def terminate_listeners(postgres: TemporaryPostgres) -> int:
    connection = await asyncpg.connect(postgres.url(), timeout=10)
    try:
        return len(
            await connection.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await connection.close()


async def test_feed_recovers_from_a_lost_connection_and_catches_up(
    pg_storage: PostgresStorage, postgres: TemporaryPostgres
) -> None:
    value = RegisterValue("http://127.0.0.1:9/kite", "k")
    before, during = make_identity(), make_identity()
    async with pg_storage.watch() as feed:
        await pg_storage.upsert(before, value, ttl=60)
        first = await anext_within(feed)
        assert (first.action, first.record.kite) == (REGISTER, before)
        assert await terminate_listeners(postgres) >= 1
        await pg_storage.upsert(during, value, ttl=60)  # its NOTIFY may be lost
        seen = []
        with anyio.fail_after(30):
            async for event in feed:
                seen.append(event.action)
                if event.action == RESYNC:
                    break
        # the catch-up: a reader told RESYNC reads again and finds the kite
        assert [r.kite for r in await pg_storage.get(make_query(during))] == [during]
        await pg_storage.delete(during)
        event = await anext_within(feed)
        while event.action == REGISTER and event.record.kite == during:  # notified in time
            event = await anext_within(feed)
        assert (event.action, event.record.kite) == (DEREGISTER, during)


def make_query(kite):
    from kitecore.protocol.identity import Query

    return Query(id=kite.id)


async def anext_within(feed, timeout: float = 30.0):
    with anyio.fail_after(timeout):
        return await feed.__anext__()


async def test_kontrol_watcher_gets_a_change_made_while_the_feed_was_down(
    pg_storage: PostgresStorage,
    postgres: TemporaryPostgres,
    base_config: Config,
    plugins: PluginRegistry,
) -> None:
    from kite_kontrol.keyfiles import new_key_pair
    from kite_kontrol.server import Kontrol

    config = base_config.copy()
    config.username = "admin"
    kontrol = Kontrol(storage=pg_storage, config=config, plugins=plugins, key_pair=new_key_pair())
    value = RegisterValue("http://127.0.0.1:9/kite", "k")
    async with kontrol, Kite("w", "1.0.0", config=base_config.copy(), plugins=plugins) as kite:
        auth = Authentication("kiteKey", kontrol.create_kite_key("eve"))
        async with kite.new_client(kontrol.url, auth=auth) as client:
            events = WatchRecorder()
            # the first watch opens Kontrol's change feed before it is answered
            await client.tell(
                "getKites", {"query": {"environment": ENVIRONMENT}, "watchHandler": events}
            )
            assert kontrol.watch.live.is_set()
            lost = make_identity(environment=ENVIRONMENT)
            assert await terminate_listeners(postgres) >= 1
            await pg_storage.upsert(lost, value, ttl=60)
            event = await events.next_result()
            assert (event["action"], event["kite"]["id"]) == ("REGISTER", lost.id)
            sentinel = make_identity(environment=ENVIRONMENT)
            await pg_storage.upsert(sentinel, value, ttl=60)
            # the next event is the sentinel's: the lost kite was reported exactly once
            assert (await events.next_result())["kite"]["id"] == sentinel.id
