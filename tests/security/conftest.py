"""Fixtures for the end-to-end security tests: a real Kontrol in-process and real kites on
127.0.0.1, all with the kite-auth-token authenticators.

The key pairs (``kontrol_pair``, ``evil_pair``) and the Kontrol come from kite_kontrol.testing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
from kite_kontrol.server import Kontrol
from kite_kontrol.testing import MakeKontrol

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry
from kitecore.testing import whoami

ENVIRONMENT = "production"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def plugins(token_plugins: PluginRegistry) -> PluginRegistry:
    """The core's built-ins plus the kiteKey/token authenticators."""
    return token_plugins


@pytest.fixture
def base_config(kite_config: Config) -> Config:
    """Loopback, free port, authentication on, KITE_HOME in the test's directory."""
    config = kite_config.copy()
    config.timeout = 5.0
    config.environment = ENVIRONMENT
    config.disable_authentication = False
    return config


@pytest.fixture
async def kontrol(make_kontrol: MakeKontrol, base_config: Config) -> Kontrol:
    """A running Kontrol: memory storage, ``kontrol_pair``, ``registerMachine`` by secret
    (kite_kontrol.testing's ``make_kontrol``)."""
    return await make_kontrol(config=base_config)


MakeKite = Callable[..., Awaitable[Kite]]


@pytest.fixture
async def make_kite(base_config: Config, plugins: PluginRegistry) -> AsyncIterator[MakeKite]:
    """``await make_kite(name, username, kite_key)``: a running kite serving ``whoami`` that
    holds ``kite_key`` and keeps itself registered (``register_forever``) unless told not to.
    Stopped when the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(name: str, kite_key: str, *, register: bool = True) -> Kite:
            config = base_config.copy()
            config.apply_kite_key(kite_key)
            kite = Kite(name, "1.0.0", config=config, plugins=plugins)
            kite.handle("whoami", whoami)
            await stack.enter_async_context(kite)
            if register:
                await kite.register_forever()
                with anyio.fail_after(10):
                    await kite.kontrol_client.registered.wait()
            return kite

        yield start
