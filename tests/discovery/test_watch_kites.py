"""``kite.watch_kites(query)`` (issue 10.4): initial kites first, then pushed arrivals and
departures with ready clients; resubscription after Kontrol restarts; polling against a Kontrol
without watches (the fake here answers like Go's). Real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest
from fake_kontrol import FakeKontrol

from kitecore import Config, Kite
from kitecore.contracts.storage import make_identity
from kitecore.discovery import KiteEvent, KiteWatch
from kitecore.storage import RegisterValue
from kitecore.storage.memory import MemoryStorage

kontrol_server = pytest.importorskip("kite_kontrol.server")

pytestmark = pytest.mark.anyio


async def square(r: Any) -> float:
    n = r.args.one(float)
    return n * n


async def next_event(watch: KiteWatch, timeout: float = 15.0) -> KiteEvent:
    with anyio.fail_after(timeout):
        return await watch.__anext__()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def kontrol_config(kite_config: Config) -> Config:
    config = kite_config.copy()
    config.username = "kontrol"
    config.disable_authentication = False
    return config


@pytest.fixture
async def kontrol(kontrol_config, kite_plugins, storage):
    async with kontrol_server.Kontrol(
        storage=storage, config=kontrol_config, plugins=kite_plugins
    ) as k:
        yield k


@pytest.fixture
async def kite_for(kontrol, kite_config, kite_plugins):
    """``await kite_for(name, username)``: a running kite holding a kite.key from Kontrol."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(name: str, username: str, *, running: bool = True) -> Kite:
            config = kite_config.copy()
            config.apply_kite_key(kontrol.create_kite_key(username))
            config.environment = "production"
            config.disable_authentication = False
            kite = Kite(name, "1.0.0", config=config, plugins=kite_plugins)
            kite.handle("square", square)
            if running:
                await stack.enter_async_context(kite)
            return kite

        yield start


async def test_initial_kites_first_then_arrivals_and_departures(kontrol, kite_for):
    caller = await kite_for("caller", "alice")
    first = await kite_for("math", "bob")
    await first.register()
    async with caller.watch_kites(username="bob", name="math") as watch:
        assert watch.pushed and watch.watcher_id
        event = await next_event(watch)
        assert (event.action, event.kite, event.url, event.initial) == (
            "REGISTER",
            first.identity,
            first.url,
            True,
        )
        async with event.client:  # a ready client, with a token for alice
            assert await event.client.tell("square", 3) == 9

        second = await kite_for("math", "bob", running=False)
        async with second:
            await second.register()
            event = await next_event(watch)
            assert (event.action, event.kite, event.initial) == ("REGISTER", second.identity, False)
            async with event.client:
                assert await event.client.tell("square", 4) == 16
        event = await next_event(watch)  # second stopped: its connection to Kontrol closed
        assert (event.action, event.kite, event.client) == ("DEREGISTER", second.identity, None)
        assert set(watch.known) == {first.id}
        assert len(kontrol.watch) == 1
    # leaving the block cancels the watcher on Kontrol
    assert len(kontrol.watch) == 0


async def test_resubscribes_after_kontrol_restarts_without_duplicates_or_losses(
    kontrol_config, kite_plugins, storage, kite_config
):
    stays, leaves, arrives, sentinel = (make_identity(name="svc") for _ in range(4))

    async def serve(config, key_pair, scope, stopped, *, task_status):
        try:
            with scope:
                async with kontrol_server.Kontrol(
                    storage=storage, config=config, plugins=kite_plugins, key_pair=key_pair
                ) as kontrol:
                    task_status.started(kontrol)
                    await anyio.sleep_forever()
        finally:
            stopped.set()

    async with anyio.create_task_group() as group:
        first_scope, first_stopped = anyio.CancelScope(), anyio.Event()
        kontrol = await group.start(serve, kontrol_config, None, first_scope, first_stopped)
        pair = kontrol.keyring.current
        value = RegisterValue("http://127.0.0.1:9/kite", pair.id)
        config = kite_config.copy()
        config.apply_kite_key(kontrol.create_kite_key("carol"))
        caller = Kite("caller", "1.0.0", config=config, plugins=kite_plugins)
        await storage.upsert(stays, value, ttl=600)
        await storage.upsert(leaves, value, ttl=600)
        async with caller.kontrol_client, caller.watch_kites(name="svc") as watch:
            initial = {(await next_event(watch)).kite.id for _ in range(2)}
            assert initial == {stays.id, leaves.id}
            first_scope.cancel()  # Kontrol goes down; the registry changes meanwhile
            await first_stopped.wait()
            await storage.delete(leaves)
            restarted = kontrol_config.copy()
            restarted.port = kontrol.kite.port
            await group.start(serve, restarted, pair, anyio.CancelScope(), anyio.Event())
            await storage.upsert(arrives, value, ttl=600)
            got = {}
            for _ in range(2):
                event = await next_event(watch, timeout=30)
                got[event.kite.id] = event.action
            assert got == {leaves.id: "DEREGISTER", arrives.id: "REGISTER"}
            assert set(watch.known) == {stays.id, arrives.id}
            assert watch.pushed and watch.resubscriptions >= 1
            await storage.upsert(sentinel, value, ttl=600)
            # the next event is the sentinel's: nothing was reported twice
            assert (await next_event(watch)).kite.id == sentinel.id
        group.cancel_scope.cancel()


async def test_resubscribes_after_a_watch_error(kontrol, kite_for, storage):
    caller = await kite_for("caller", "alice")
    value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
    first, second, third = (make_identity(name="svc") for _ in range(3))
    await storage.upsert(first, value, ttl=600)
    async with caller.watch_kites(name="svc") as watch:
        assert (await next_event(watch)).kite == first
        old_id = watch.watcher_id
        (watcher,) = kontrol.watch.watchers.values()
        watcher.fail("testing")  # what a watcher that fell behind gets: one watchError
        await storage.upsert(second, value, ttl=600)  # while the watch is being replaced
        event = await next_event(watch)
        assert (event.action, event.kite) == ("REGISTER", second)
        assert watch.watcher_id and watch.watcher_id != old_id
        await storage.upsert(third, value, ttl=600)
        assert (await next_event(watch)).kite == third  # nothing repeated, nothing lost
        assert set(watch.known) == {first.id, second.id, third.id}
        assert len(kontrol.watch) == 1


# --- a Kontrol without watches (Go's): polling ------------------------------------------


@pytest.fixture
async def go_kontrol(make_kite, kite_config, kontrol_pair) -> FakeKontrol:
    fake = FakeKontrol(kontrol_pair)
    config = kite_config.copy()
    config.disable_authentication = False
    config.username = fake.username
    config.kontrol_user = fake.username
    config.kontrol_key = kontrol_pair.public
    fake.kite = await make_kite("kontrol", "0.0.4", methods=fake.methods(), config=config)
    return fake


async def test_polls_a_kontrol_that_gives_no_watcher_id(go_kontrol, config_for, kite_plugins):
    async with contextlib.AsyncExitStack() as stack:
        math = await stack.enter_async_context(
            Kite("math", "1.0.0", config=config_for(go_kontrol, "bob"), plugins=kite_plugins)
        )
        caller = await stack.enter_async_context(
            Kite("caller", "1.0.0", config=config_for(go_kontrol, "alice"), plugins=kite_plugins)
        )
        watch = await stack.enter_async_context(
            caller.watch_kites(username="bob", name="math", poll_interval=0.1)
        )
        assert not watch.pushed and watch.watcher_id == ""
        await math.register()
        event = await next_event(watch)
        assert (event.action, event.kite) == ("REGISTER", math.identity)
        go_kontrol.registrations.clear()  # Go's Kontrol forgets it (TTL)
        event = await next_event(watch)
        assert (event.action, event.kite) == ("DEREGISTER", math.identity)
        # only the first getKites carried a watch function: polls do not pile up callbacks
        handlers = [args for args in go_kontrol.calls_of("getKites") if "watchHandler" in args]
        assert len(handlers) == 1


async def test_pool_polls_a_kontrol_without_watches(go_kontrol, config_for, kite_plugins):
    async with contextlib.AsyncExitStack() as stack:
        kites = []
        for _ in range(2):
            kite = Kite("math", "1.0.0", config=config_for(go_kontrol, "bob"), plugins=kite_plugins)
            kite.handle("square", square)
            kites.append(await stack.enter_async_context(kite))
        await kites[0].register()
        from kite_auth_token import plugin as token_plugin
        from kite_pickers import plugin as pickers_plugin

        from kitecore.plugins import load_plugins
        from kitecore.testing import CORE_PLUGINS

        with_pickers = load_plugins(
            names=CORE_PLUGINS, extra_plugins=[token_plugin, pickers_plugin]
        )
        caller = await stack.enter_async_context(
            Kite("caller", "1.0.0", config=config_for(go_kontrol, "alice"), plugins=with_pickers)
        )
        pool = await stack.enter_async_context(
            caller.pool({"username": "bob", "name": "math"}, refresh_interval=0.1)
        )
        assert await pool.tell("square", 2) == 4
        await kites[1].register()
        with anyio.fail_after(15):
            while len(pool.candidates) < 2:  # noqa: ASYNC110 - the pool's polling adds it
                await anyio.sleep(0.02)
        assert not pool.watching
