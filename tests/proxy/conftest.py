"""Fixtures for the proxy tests: a real Kontrol, the proxies, kites behind them, callers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from kite_auth_token import plugin as token_plugin
from kite_kontrol.server import Kontrol
from kite_kontrol.settings import KontrolSettings
from kite_proxy import plugin as proxy_plugin
from kite_transport_sockjs import plugin as sockjs_plugin
from proxy_helpers import Farm

from kitecore import Config
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.testing import CORE_PLUGINS


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    """The core's built-ins, SockJS, the token authenticators and this plugin."""
    return load_plugins(
        names=CORE_PLUGINS, extra_plugins=[sockjs_plugin, token_plugin, proxy_plugin]
    )


@pytest.fixture
async def kontrol(kite_config: Config, kite_plugins: PluginRegistry) -> AsyncIterator[Kontrol]:
    """A real Kontrol (memory storage) that forgets a dead kite within a second."""
    config = kite_config.copy()
    config.username = "kontrol"
    config.disable_authentication = False
    settings = KontrolSettings(
        key_ttl=1.0,
        heartbeat_interval=0.1,
        heartbeat_delay=0.2,
        update_interval=0.25,
        heartbeat_call_timeout=4.0,
        self_register_interval=0.3,
    )
    async with Kontrol(
        storage="memory://", config=config, plugins=kite_plugins, settings=settings
    ) as running:
        yield running


@pytest.fixture
async def farm(
    kontrol: Kontrol, kite_config: Config, kite_plugins: PluginRegistry
) -> AsyncIterator[Farm]:
    """Proxies, kites and callers that stop when the test ends."""
    async with anyio.create_task_group() as group:
        yield Farm(kontrol, kite_config, kite_plugins, group)
        group.cancel_scope.cancel()
