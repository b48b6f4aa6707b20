"""Three Kontrol processes on a three-member etcd cluster on loopback.

Kites registered through different Kontrols are visible from each; a Kontrol killed with SIGKILL
loses nothing, its kites fail over to another Kontrol (each kite is given all three URLs) and
register again within the backoff bound; killing the etcd leader loses no registration and every
Kontrol keeps answering.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aetcd
import anyio
import pytest
from etcd_kontrol_process import etcd_kontrol
from kite_kontrol.testing import KontrolProcess, machine_key, registered_ids
from kite_storage_etcd.testing import EtcdCluster

from kitecore import Config, Kite
from kitecore.backoff import Backoff
from kitecore.plugins import PluginRegistry
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio

ENVIRONMENT = "distributed"
RECONNECT = Backoff(initial=0.05, multiplier=1.5, randomization=0.5, maximum=0.4)
REGISTER = Backoff(initial=0.1, multiplier=1.5, randomization=0.5, maximum=0.5)
#: Handshake, register, Kontrol's heartbeat call and the storage write, on a loaded machine.
WORK_ALLOWANCE = 3.0
#: How long a storage answer may take while etcd elects a new leader (URL timeout is 2 s).
ETCD_FAILOVER_BOUND = 5.0


def recovery_bound() -> float:
    """One capped reconnect wait, one capped registration wait, then the work itself."""
    return (
        RECONNECT.maximum * (1 + RECONNECT.randomization)
        + REGISTER.maximum * (1 + REGISTER.randomization)
        + WORK_ALLOWANCE
    )


def fresh(backoff: Backoff) -> Backoff:
    return Backoff(
        initial=backoff.initial,
        multiplier=backoff.multiplier,
        randomization=backoff.randomization,
        maximum=backoff.maximum,
    )


def rotated(items: list[str], start: int) -> list[str]:
    return items[start:] + items[:start]


@dataclass
class Registry:
    cluster: EtcdCluster
    kontrols: list[KontrolProcess]

    @property
    def urls(self) -> list[str]:
        return [k.url for k in self.kontrols]


@pytest.fixture
async def registry(
    tmp_path: Path, etcd_cluster: EtcdCluster, etcd_cache: str
) -> AsyncIterator[Registry]:
    """Kontrol ``i`` lists etcd member ``i`` first, so each prefers another member."""
    endpoints = etcd_cluster.endpoints.split(",")
    kontrols = [
        etcd_kontrol(
            tmp_path / f"kontrol{i}",
            port=free_port(),
            storage_url=(
                f"etcd://{','.join(rotated(endpoints, i))}/kite?timeout=2&cache={etcd_cache}"
            ),
            data_dir=tmp_path / "kontrol-data",  # one key pair for all three
        )
        for i in range(3)
    ]
    try:
        for kontrol in kontrols:  # one at a time: the first creates the key pair
            await kontrol.start()
        yield Registry(etcd_cluster, kontrols)
    finally:
        with anyio.CancelScope(shield=True):
            for kontrol in kontrols:
                await kontrol.stop()


@pytest.fixture
def base_config(kite_config: Config) -> Config:
    config = kite_config.copy()
    config.disable_authentication = False
    config.timeout = 4.0
    config.environment = ENVIRONMENT
    return config


@dataclass
class Fleet:
    observer: Kite
    observer_key: str
    kites: list[Kite]
    registrations: dict[str, int]

    @property
    def ids(self) -> set[str]:
        return {kite.id for kite in self.kites}


async def start_fleet(
    stack: contextlib.AsyncExitStack, registry: Registry, config: Config, plugins: PluginRegistry
) -> Fleet:
    """Kite ``i`` registers through Kontrol ``i`` first and knows the other two as fallbacks."""
    observer = await stack.enter_async_context(
        Kite("observer", "1.0.0", config=config.copy(), plugins=plugins)
    )
    observer_key = await machine_key(observer, registry.urls[1], "observer")
    registrations: dict[str, int] = {}
    kites = []
    for i, url in enumerate(registry.urls):
        kite_config = config.copy()
        kite_config.apply_kite_key(await machine_key(observer, url, f"user{i}"))
        kite_config.kontrol_url = ",".join(rotated(registry.urls, i))
        kite = Kite(f"svc{i}", "1.0.0", config=kite_config, plugins=plugins)
        await stack.enter_async_context(kite)

        def count(_result, kite_id: str = kite.id) -> None:
            registrations[kite_id] = registrations.get(kite_id, 0) + 1

        kite.kontrol_client.on_register(count)
        await kite.kontrol_client.register_forever(backoff=fresh(REGISTER))
        kites.append(kite)
    for kite in kites:
        with anyio.fail_after(10):
            await kite.kontrol_client.registered.wait()
        connection = kite.kontrol_client.client
        assert connection is not None
        connection.backoff = fresh(RECONNECT)
    return Fleet(observer, observer_key, kites, registrations)


async def test_kites_are_visible_everywhere_and_survive_a_kontrol_crash(
    registry: Registry, base_config: Config, token_plugins: PluginRegistry
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        fleet = await start_fleet(stack, registry, base_config, token_plugins)
        for url in registry.urls:
            assert (
                await registered_ids(fleet.observer, url, fleet.observer_key, ENVIRONMENT)
                == fleet.ids
            )
        assert set(fleet.registrations.values()) == {1}

        crashed = fleet.kites[0]
        await registry.kontrols[0].kill()
        started = time.monotonic()
        bound = recovery_bound()
        with anyio.move_on_after(bound):
            while fleet.registrations[crashed.id] < 2:  # noqa: ASYNC110 - a counter, no event
                await anyio.sleep(0.05)
        elapsed = time.monotonic() - started
        assert fleet.registrations[crashed.id] == 2, (
            f"no re-registration after {elapsed:.2f}s (bound {bound:.2f}s)\n"
            f"{registry.kontrols[1].log_tail()}"
        )
        client = crashed.kontrol_client.client
        assert client is not None and client.url == registry.urls[1]  # failed over to the next
        for kite in fleet.kites[1:]:
            assert fleet.registrations[kite.id] == 1  # their Kontrols never went away
        for url in registry.urls[1:]:
            assert (
                await registered_ids(fleet.observer, url, fleet.observer_key, ENVIRONMENT)
                == fleet.ids
            )


async def leader_index(cluster: EtcdCluster) -> int:
    member = cluster.members[0]
    async with aetcd.Client(host="127.0.0.1", port=member.client_port, timeout=5) as client:
        leader = (await client.status()).leader
    assert leader is not None, "the etcd cluster has no leader"
    return next(i for i, m in enumerate(cluster.members) if m.name == leader.name)


async def test_killing_the_etcd_leader_loses_nothing(
    registry: Registry, base_config: Config, token_plugins: PluginRegistry
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        fleet = await start_fleet(stack, registry, base_config, token_plugins)
        leader = await leader_index(registry.cluster)
        registry.cluster.members[leader].kill()
        # Kontrol ``leader`` preferred the dead member: it must fail over too.
        for url in rotated(registry.urls, leader):
            started = time.monotonic()
            seen = await registered_ids(fleet.observer, url, fleet.observer_key, ENVIRONMENT)
            assert seen == fleet.ids, url
            assert time.monotonic() - started < ETCD_FAILOVER_BOUND
        # writes still work through every Kontrol: a new kite registers through each
        for i, url in enumerate(registry.urls):
            config = base_config.copy()
            config.apply_kite_key(await machine_key(fleet.observer, url, f"late{i}"))
            late = await stack.enter_async_context(
                Kite(f"late{i}", "1.0.0", config=config, plugins=token_plugins)
            )
            with anyio.fail_after(ETCD_FAILOVER_BOUND):
                await late.kontrol_client.register()
            fleet.kites.append(late)
        for url in registry.urls:
            assert (
                await registered_ids(fleet.observer, url, fleet.observer_key, ENVIRONMENT)
                == fleet.ids
            )
        assert all(count == 1 for count in fleet.registrations.values())
