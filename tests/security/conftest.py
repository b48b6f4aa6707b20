"""Fixtures for the end-to-end security tests: a real Kontrol in-process and real kites on
127.0.0.1, all with the kite-auth-token authenticators."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from kite_auth_token import plugin as token_plugin
from kite_kontrol.keyfiles import new_key_pair
from kite_kontrol.machine import SecretPolicy
from kite_kontrol.server import Kontrol
from security_helpers import KONTROL_USER, SECRET

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.storage import KeyPairRecord
from kitecore.testing import CORE_PLUGINS

ENVIRONMENT = "production"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def kontrol_pair() -> KeyPairRecord:
    """The key pair of the Kontrol under test."""
    return new_key_pair()


@pytest.fixture(scope="session")
def evil_pair() -> KeyPairRecord:
    """The key pair of a Kontrol nobody here trusts."""
    return new_key_pair()


@pytest.fixture
def plugins() -> PluginRegistry:
    """The core's built-ins plus the kiteKey/token authenticators."""
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin])


@pytest.fixture
def base_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Loopback, free port, authentication on, KITE_HOME in the test's directory."""
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.timeout = 5.0
    config.environment = ENVIRONMENT
    config.disable_authentication = False
    return config


def kontrol_config(base_config: Config) -> Config:
    """Kontrol's config: its username is the issuer of every kite.key and token."""
    config = base_config.copy()
    config.username = KONTROL_USER
    return config


@pytest.fixture
async def kontrol(
    base_config: Config, plugins: PluginRegistry, kontrol_pair: KeyPairRecord
) -> AsyncIterator[Kontrol]:
    """A running Kontrol: memory storage, :func:`kontrol_pair`, ``registerMachine`` by secret."""
    async with Kontrol(
        storage="memory://",
        key_pair=kontrol_pair,
        config=kontrol_config(base_config),
        plugins=plugins,
        machine_policy=SecretPolicy(SECRET),
    ) as running:
        yield running


async def whoami(r: Any) -> str:
    """The caller's authenticated username."""
    return r.username


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
