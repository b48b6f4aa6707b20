"""Three Kontrol processes share one PostgreSQL; the database restarts, then a Kontrol dies.

Six kites are given all three Kontrol URLs (each list starting at a different Kontrol) and
register forever. Every Kontrol sees every kite (liveness is in the database, not in one
process). PostgreSQL is stopped for a while: Kontrols answer with errors instead of hanging,
and once it is back every Kontrol sees every kite again without being restarted. Then one
Kontrol is SIGKILLed: its kites fail over to the next URL and register there; the survivors
still see all six.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from kite_kontrol.testing import machine_key, registered_ids
from kite_storage_postgres.testing import TemporaryPostgres
from postgres_helpers import PostgresKontrol

from kitecore import Config, Kite
from kitecore.backoff import Backoff
from kitecore.plugins import PluginRegistry
from kitecore.protocol.errors import KiteError

pytestmark = pytest.mark.anyio

ENVIRONMENT = "distributed"
KITES = 6
RECOVERY = 20.0  # seconds; generous for a loaded 2-core machine


def backoff() -> Backoff:
    return Backoff(initial=0.05, multiplier=1.5, randomization=0.5, maximum=0.4)


@pytest.fixture
def base_config(kite_config: Config) -> Config:
    config = kite_config.copy()
    config.disable_authentication = False
    config.timeout = 5.0
    config.environment = ENVIRONMENT
    return config


@pytest.fixture
async def kontrols(
    tmp_path: Path, postgres: TemporaryPostgres, make_url
) -> AsyncIterator[list[PostgresKontrol]]:
    """Three Kontrol processes on one schema, sharing a key pair; stopped at the end."""
    url = make_url()
    storage_url = url.replace(f":{postgres.password}@", "@")  # the password goes in the env
    assert postgres.password not in storage_url
    processes = [
        PostgresKontrol(
            tmp_path,
            index,
            storage_url=storage_url,
            password=postgres.password,
            data_dir=tmp_path / "kontrol-data",
        )
        for index in range(3)
    ]
    try:
        await processes[0].start()  # creates the key pair and the schema
        async with anyio.create_task_group() as tg:
            for process in processes[1:]:
                tg.start_soon(process.start)
        yield processes
    finally:
        with anyio.CancelScope(shield=True):
            for process in processes:
                await process.stop()


async def seen_by(observer: Kite, kontrol: PostgresKontrol, key: str) -> set[str]:
    """Ids of the kites ``kontrol`` returns for :data:`ENVIRONMENT`."""
    return await registered_ids(observer, kontrol.url, key, ENVIRONMENT)


async def wait_until_all_seen(
    observer: Kite, kontrols: list[PostgresKontrol], key: str, ids: set[str]
) -> float:
    """Seconds until every Kontrol in ``kontrols`` returns exactly ``ids``."""
    started = time.monotonic()
    views: dict[int, set[str]] = {}
    for _ in range(int(RECOVERY / 0.1)):
        for kontrol in kontrols:
            with contextlib.suppress(Exception):  # down storage: an error, then retry
                views[kontrol.index] = await seen_by(observer, kontrol, key)
        if all(views.get(k.index) == ids for k in kontrols):
            return time.monotonic() - started
        await anyio.sleep(0.1)
    tails = "\n".join(k.log_tail(10) for k in kontrols)
    raise AssertionError(f"Kontrols see {views}, want {ids}\n{tails}")


async def test_three_kontrols_survive_a_database_restart_and_a_kontrol_crash(
    kontrols: list[PostgresKontrol],
    postgres: TemporaryPostgres,
    base_config: Config,
    token_plugins: PluginRegistry,
) -> None:
    urls = [k.url for k in kontrols]
    async with contextlib.AsyncExitStack() as stack:
        observer = await stack.enter_async_context(
            Kite("observer", "1.0.0", config=base_config.copy(), plugins=token_plugins)
        )

        observer_key = await machine_key(observer, urls[0], "observer")
        registrations: dict[str, int] = {}
        kites: list[Kite] = []
        for index in range(KITES):
            config = base_config.copy()
            config.apply_kite_key(await machine_key(observer, urls[0], "bob"))
            config.kontrol_url = ",".join(urls[index % 3 :] + urls[: index % 3])
            kite = await stack.enter_async_context(
                Kite(f"svc{index}", "1.0.0", config=config, plugins=token_plugins)
            )

            def count(_result: object, kite: Kite = kite) -> None:
                registrations[kite.id] = registrations.get(kite.id, 0) + 1

            kite.kontrol_client.on_register(count)
            await kite.kontrol_client.register_forever(backoff=backoff())
            kites.append(kite)
        for kite in kites:
            with anyio.fail_after(15):
                await kite.kontrol_client.registered.wait()
            connection = kite.kontrol_client.client
            assert connection is not None
            connection.backoff = backoff()
        ids = {kite.id for kite in kites}
        on_first = {
            kite.id
            for kite in kites
            if kite.kontrol_client.client and kite.kontrol_client.client.url == urls[0]
        }
        assert len(on_first) == 2
        await wait_until_all_seen(observer, kontrols, observer_key, ids)

        # --- PostgreSQL goes away: clear errors, no hang -----------------------------------
        postgres.stop()
        try:
            started = time.monotonic()
            with pytest.raises(KiteError, match="internal error"):
                await seen_by(observer, kontrols[1], observer_key)
            assert time.monotonic() - started < 10
            await anyio.sleep(1.0)
        finally:
            postgres.start()
        recovered = await wait_until_all_seen(observer, kontrols, observer_key, ids)
        assert recovered < RECOVERY
        assert all(registrations[kite.id] == 1 for kite in kites), registrations

        # --- a Kontrol dies: its kites fail over to the next URL ----------------------------
        await kontrols[0].kill()
        survivors = kontrols[1:]
        await wait_until_all_seen(observer, survivors, observer_key, ids)
        for _ in range(int(RECOVERY / 0.1)):
            if all(registrations[kite_id] >= 2 for kite_id in on_first):
                break
            await anyio.sleep(0.1)
        for kite in kites:
            current = kite.kontrol_client.client
            assert current is not None
            if kite.id in on_first:
                assert registrations[kite.id] >= 2, registrations
                assert current.url in urls[1:]
            else:
                assert registrations[kite.id] == 1, registrations
