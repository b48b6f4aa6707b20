"""Fixtures for the picker and pool tests: a real Kontrol and kites registered to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from kite_auth_token import plugin as token_plugin
from kite_kontrol.server import Kontrol
from kite_kontrol.settings import KontrolSettings
from kite_pickers import plugin as pickers_plugin
from pool_helpers import KiteFarm

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.testing import CORE_PLUGINS


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    """The core's built-ins, the token authenticators and the pickers."""
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin, pickers_plugin])


@pytest.fixture
def kontrol_key_ttl() -> float:
    """How long Kontrol lists a kite that stopped answering its heartbeats (seconds)."""
    return 1.0


@pytest.fixture
async def kontrol(
    kite_config: Config, kite_plugins: PluginRegistry, kontrol_key_ttl: float
) -> AsyncIterator[Kontrol]:
    """A real Kontrol (memory storage) that forgets a dead kite within ``kontrol_key_ttl``."""
    config = kite_config.copy()
    config.username = "kontrol"
    config.disable_authentication = False
    settings = KontrolSettings(
        key_ttl=kontrol_key_ttl,
        heartbeat_interval=0.1,
        heartbeat_delay=0.2,
        update_interval=0.25,
        heartbeat_call_timeout=4.0,
        self_register_interval=0.3,
        # these tests are about kites that die without Kontrol noticing at once
        deregister_on_disconnect=False,
    )
    async with Kontrol(
        storage="memory://", config=config, plugins=kite_plugins, settings=settings
    ) as running:
        yield running


@pytest.fixture
async def farm(
    kontrol: Kontrol, kite_config: Config, kite_plugins: PluginRegistry
) -> AsyncIterator[KiteFarm]:
    """Start and kill kites registered to ``kontrol``; all stop when the test ends."""
    async with anyio.create_task_group() as group:
        farm = KiteFarm(kontrol, kite_config, kite_plugins, group)
        yield farm
        group.cancel_scope.cancel()


@pytest.fixture
async def caller(kontrol: Kontrol, kite_config: Config, kite_plugins: PluginRegistry) -> Kite:
    """A running kite of user alice holding a kite.key from ``kontrol``."""
    config = kite_config.copy()
    config.apply_kite_key(kontrol.create_kite_key("alice"))
    config.disable_authentication = False
    config.timeout = 5.0
    kite = Kite("caller", "1.0.0", config=config, plugins=kite_plugins)
    async with kite:
        yield kite
