"""Kontrol's metrics: a real Kontrol, real registrations and lookups, scraped over HTTP."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from kite_auth_token import plugin as token_plugin
from kite_kontrol.server import Kontrol
from kite_metrics_prometheus import KiteMetrics
from prometheus_client import CollectorRegistry
from test_metrics import scrape, value

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.protocol.errors import GenericError
from kitecore.storage import StorageError
from kitecore.storage.memory import MemoryStorage
from kitecore.testing import CORE_PLUGINS, square

pytestmark = pytest.mark.anyio


class FlakyStorage(MemoryStorage):
    """Memory storage whose lookups fail while ``failing`` is set."""

    failing = False

    async def get(self, query: Any) -> Any:
        if self.failing:
            raise StorageError("disk on fire")
        return await super().get(query)


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin])


async def test_kontrol_registrations_lookups_tokens_and_storage_errors(
    kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    metrics = KiteMetrics(CollectorRegistry())
    storage = FlakyStorage()
    config = kite_config.copy()
    config.username = "kontrol"
    config.disable_authentication = False
    kontrol = Kontrol(storage=storage, config=config, plugins=kite_plugins)
    metrics.install(kontrol.kite)
    metrics.serve(kontrol.kite)
    math_left = anyio.Event()

    def disconnected(client: Any) -> None:  # runs after the metrics' own hook
        if client.remote_kite is not None and client.remote_kite.name == "math":
            math_left.set()

    kontrol.kite.on_disconnect(disconnected)

    async with kontrol, anyio.create_task_group() as group:
        math_config = kite_config.copy()
        math_config.apply_kite_key(kontrol.create_kite_key("bob"))
        math_config.disable_authentication = False
        math = Kite("math", "1.0.0", config=math_config, plugins=kite_plugins)
        math.handle("square", square)
        math_stopped = anyio.Event()

        async def run_math(*, task_status: Any) -> None:
            async with math:
                await math.register()
                task_status.started()
                await math_stopped.wait()

        await group.start(run_math)
        caller_config = kite_config.copy()
        caller_config.apply_kite_key(kontrol.create_kite_key("alice"))
        async with Kite("caller", "1.0.0", config=caller_config, plugins=kite_plugins) as caller:
            found = await caller.get_kites(username="bob", name="math")
            assert len(found) == 1
            assert await caller.get_token(found[0].remote_kite)
            storage.failing = True
            with pytest.raises(GenericError, match="internal error"):
                await caller.get_kites(username="bob", name="math")
            storage.failing = False
            registered = await scrape(kontrol.kite)
        math_stopped.set()
        await math_left.wait()
        after = await scrape(kontrol.kite)

    assert value(registered, "kite_kontrol_registrations_total", outcome="ok") == 1
    assert value(registered, "kite_kontrol_registered_kites") == 1
    assert value(registered, "kite_kontrol_get_kites_total", outcome="ok") == 1
    assert value(registered, "kite_kontrol_get_kites_total", outcome="error") == 1
    assert value(registered, "kite_kontrol_kites_returned_total") == 1
    assert value(registered, "kite_kontrol_tokens_issued_total") == 2  # getKites + getToken
    assert value(registered, "kite_kontrol_storage_errors_total", method="getKites") == 1
    assert value(after, "kite_kontrol_registered_kites") == 0


async def test_watchers_follow_get_kites_watches_cancels_and_disconnects(
    make_kite: Any, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    """A kite that answers getKites with a watcherID as protocol.md §15 says (Kontrol's
    watch wire) drives the watcher gauge."""
    metrics = KiteMetrics(CollectorRegistry())
    watchers: dict[str, Any] = {}

    async def get_kites(r: Any) -> dict[str, Any]:
        args = r.args.mapping(0)
        result: dict[str, Any] = {"kites": []}
        if callable(args.get("watchHandler")):
            watcher_id = f"w{len(watchers)}"
            watchers[watcher_id] = args["watchHandler"]
            result["watcherID"] = watcher_id
        return result

    async def cancel_watcher(r: Any) -> None:
        watchers.pop(r.args.one(str))

    kontrol = await make_kite(
        "kontrol", methods={"getKites": get_kites, "cancelWatcher": cancel_watcher}
    )
    metrics.install(kontrol)
    metrics.serve(kontrol)
    left = anyio.Event()
    kontrol.on_disconnect(lambda client: left.set())
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)

    def on_event(event: Any) -> None:
        pass

    async with caller.new_client(kontrol.url) as client:
        first = await client.tell("getKites", {"query": {}, "watchHandler": on_event})
        await client.tell("getKites", {"query": {}, "watchHandler": on_event})
        await client.tell("getKites", {"query": {}})  # no watch
        two = await scrape(kontrol)
        await client.tell("cancelWatcher", first["watcherID"])
        one = await scrape(kontrol)
    await left.wait()
    none = await scrape(kontrol)
    assert value(two, "kite_kontrol_watchers") == 2
    assert value(one, "kite_kontrol_watchers") == 1
    assert value(none, "kite_kontrol_watchers") == 0
